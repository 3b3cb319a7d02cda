"""The `meterline` command: each service on its own, the local stack, and the demo.

Every command reads its settings from the environment and `.env` (`meterline config` lists
them). Service modules are imported inside their command, so one service's dependencies are
loaded only by the command that runs it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from meterline import db
from meterline.services import configure_logging, serve
from meterline.settings import Settings, get_settings

app = typer.Typer(
    help="meterline: run each service on its own, or the whole platform with `meterline demo`. "
    "Settings come from METERLINE_* environment variables and .env (`meterline config`).",
    no_args_is_help=True, add_completion=False,
)


def _settings() -> Settings:
    configure_logging()
    return get_settings()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


@app.command()
def config() -> None:
    """Print every setting: environment variable, current value, meaning."""
    settings = get_settings()
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if "password" in name and value:
            value = "***"
        elif name == "database_url":
            value = _without_password(value)
        typer.echo(f"METERLINE_{name.upper()}={value}\n    {field.description}")


@app.command()
def migrate() -> None:
    """Create the database if it is missing and apply the pending migrations."""
    settings = _settings()

    async def main() -> list[str]:
        await db.create_database(settings.database_url)
        return await db.migrate(settings.database_url)

    applied = asyncio.run(main())
    typer.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@app.command()
def broker() -> None:
    """Run the local Kafka-compatible broker (Tansu, memory storage) on the kafka_bootstrap port."""
    from meterline.kafka import start_broker, stop_process

    settings = _settings()
    port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
    proc = start_broker(port)
    typer.echo(f"Kafka-compatible broker ready on 127.0.0.1:{port}")
    try:
        proc.wait()
    except KeyboardInterrupt:
        stop_process(proc)


@app.command()
def simulators() -> None:
    """Run the Modbus TCP meter simulators (sim_meters meters on sim_host:sim_port)."""
    from simulators.service import run

    settings = _settings()
    serve(lambda: run(settings))


@app.command()
def gateway() -> None:
    """Run a gateway: poll gateway_meters over Modbus, publish readings over MQTT."""
    from gateway.service import run

    settings = _settings()
    serve(lambda: run(settings))


@app.command()
def bridge() -> None:
    """Run the MQTT -> Kafka bridge, telemetry writer and relay command dispatcher."""
    from ingest.bridge import run

    settings = _settings()
    serve(lambda: run(settings))


@app.command()
def rating() -> None:
    """Run a Faust rating worker (scale out: more workers, same rating_group)."""
    from rating.app import run

    run(get_settings())  # Faust's worker sets up logging itself


@app.command()
def api() -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    from api.service import run

    settings = _settings()
    serve(lambda: run(settings))


@app.command()
def notifier() -> None:
    """Run the notifier: deliver notices by e-mail, SMS, phone and the cabinet, and serve the
    channels' callbacks (delivery reports, call results, links followed)."""
    from billing.reminders.service import run

    settings = _settings()
    serve(lambda: run(settings))


@app.command("seed-demo")
def seed_demo(
    meters: Annotated[int, typer.Option(help="Simulated meters (Modbus unit ids 1..N).")] = 20,
) -> None:
    """Register the demo fleet (accounts, meters, tariff, opening balances); idempotent."""
    from meterline.demo import prepare

    asyncio.run(prepare(_settings(), meters))
    typer.echo(f"{meters} demo meters registered")


@app.command()
def demo(
    meters: Annotated[int, typer.Option(help="Simulated meters (Modbus unit ids 1..N).")] = 20,
) -> None:
    """Run everything (broker, migrations, simulated fleet, gateway, bridge, rating, API) with
    a live summary; Ctrl-C stops all it started."""
    from meterline.demo import run_demo

    run_demo(_settings(), meters)


# --- the back office (billing/)

@app.command("import")
def import_file(
    kind: Annotated[str, typer.Argument(
        help="providers, accounts, services, meters, house-meters, benefits, norms or readings")],
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file (UTF-8).")],
    check: Annotated[bool, typer.Option(help="Check every row, write nothing.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the report of every row here.")]
    = None,
) -> None:
    """Import an account file (CSV with a header): each row is taken whole or refused with its
    reason; importing the same file again changes nothing. Exits 1 if a row was refused."""
    from billing.commands import import_file as run

    run(_settings(), kind, path, check=check, report=report)


@app.command()
def town(
    accounts: Annotated[int, typer.Option(min=1, help="Accounts (one per apartment).")] = 1000,
    prefix: Annotated[str, typer.Option(help="Account ids are PREFIX + 8 digits.")] = "T",
    region: Annotated[str, typer.Option(help="Region code: one town a region.")] = "50",
    name: Annotated[str, typer.Option(help="The town's name.")] = "Берёзовск",
    seed: Annotated[int, typer.Option(help="Same seed, same town.")] = 1,
    first_month: Annotated[str, typer.Option(help="First month of services and readings, "
                                             "YYYY-MM.")] = "2026-01",
    months: Annotated[int, typer.Option(min=1, help="Months of readings.")] = 7,
) -> None:
    """Generate a town: houses with house meters, apartments with accounts, providers and
    their services, meters read by people with their readings, norms. Idempotent."""
    from billing.commands import town as run

    run(_settings(), prefix=prefix, accounts=accounts, region=region, town=name, seed=seed,
        first_month=first_month, months=months)
