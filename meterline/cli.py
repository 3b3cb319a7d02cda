"""The `meterline` command: each service on its own, the local stack, and the demo.

Every command reads its settings from the environment and `.env` (`meterline config` lists
them). Service modules are imported inside their command, so one service's dependencies are
loaded only by the command that runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import typer

from meterline import db
from meterline.bill_runs import Selection
from meterline.services import configure_logging, serve, stop_on_sigterm_as_on_ctrl_c
from meterline.settings import Settings, get_settings
from meterline.tariffs.commands import app as tariffs_app

app = typer.Typer(
    help="meterline: run each service on its own, or the whole platform with `meterline demo`. "
    "Settings come from METERLINE_* environment variables and .env (`meterline config`).",
    no_args_is_help=True, add_completion=False,
)
app.add_typer(tariffs_app, name="tariffs")


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
    """Run the local Kafka-compatible broker (Tansu, memory storage) on the kafka_bootstrap port;
    Ctrl-C or SIGTERM stops it."""
    from meterline.kafka import start_broker, stop_process

    settings = _settings()
    port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
    stop_on_sigterm_as_on_ctrl_c()
    proc = start_broker(port)
    try:
        typer.echo(f"Kafka-compatible broker ready on 127.0.0.1:{port}")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
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
def acquirer() -> None:
    """Run the local test acquirer (payment provider) on acquirer_port: what online top-ups
    pay through in the demo and the tests."""
    from simulators.acquirer import run

    settings = _settings()
    serve(lambda: run(settings))


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


@app.command()
def loadgen(
    meters: Annotated[int, typer.Option(help="Virtual meters.")] = 100_000,
    interval: Annotated[float, typer.Option(help="Seconds between two batches of a gateway.")]
    = 2.0,
    per_gateway: Annotated[int, typer.Option(help="Meters behind one virtual gateway.")] = 500,
    seconds: Annotated[float | None, typer.Option(help="Stop after this long (default: "
                                                       "until interrupted).")] = None,
    register: Annotated[bool, typer.Option(help="Register the virtual meters in the "
                                                "database first (idempotent).")] = False,
    prefix: Annotated[str, typer.Option(help="Virtual gateway ids: PREFIX-0, PREFIX-1, ...")]
    = "vgw",
) -> None:
    """Publish realistic readings batches of virtual gateways at meters/interval readings/s."""
    from simulators.loadgen import VirtualFleet, run

    settings = _settings()
    fleet = VirtualFleet(meters=meters, per_gateway=per_gateway, prefix=prefix)
    serve(lambda: _loadgen(run(settings, fleet, interval, seconds, register)))


async def _loadgen(publishing: Awaitable[int]) -> None:
    published = await publishing
    typer.echo(f"published {published} readings")


@app.command("seed-demo")
def seed_demo(
    meters: Annotated[int, typer.Option(help="Simulated meters (Modbus unit ids 1..N).")] = 20,
) -> None:
    """Register the demo fleet (accounts, meters, tariff, opening balances); idempotent."""
    from meterline.demo import prepare

    asyncio.run(prepare(_settings(), meters))
    typer.echo(f"{meters} demo meters registered")


ledger_app = typer.Typer(help="The journal ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("check")
def ledger_check(
    account: Annotated[str | None, typer.Option(help="Check one account only.")] = None,
) -> None:
    """Prove the books: every entry balances, every cached balance equals the sum of its
    postings, every charge line's money is in its entry. Prints what is wrong; exits 1 if
    anything is."""
    import psycopg

    from meterline.errors import NotFound
    from meterline.ledger import check

    settings = _settings()

    async def main() -> list[str]:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            return await check(conn, account)

    try:
        problems = asyncio.run(main())
    except NotFound as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{len(problems)} problem(s) found", err=True)
        raise typer.Exit(1)
    typer.echo(f"the books of account {account} balance" if account else "the books balance")


meters_app = typer.Typer(help="Meters on accounts.", no_args_is_help=True)
app.add_typer(meters_app, name="meters")


def _register_readings(texts: list[str], at: datetime) -> tuple[Any, ...]:
    from decimal import Decimal, InvalidOperation

    from meterline.replacements import RegisterReading

    readings = []
    for text in texts:
        register, _, value = text.partition("=")
        try:
            readings.append(RegisterReading(register.strip(), Decimal(value.strip()), at))
        except InvalidOperation as exc:
            raise typer.BadParameter(f"{text!r} is not REGISTER=VALUE") from exc
    return tuple(readings)


@meters_app.command("replace")
def meters_replace(
    old: Annotated[str, typer.Argument(help="The serial of the meter taken out.")],
    new: Annotated[str, typer.Argument(help="The serial of the meter put in its place.")],
    at: Annotated[datetime, typer.Option(help="When it was replaced (ISO, with its offset).")],
    closing: Annotated[list[str], typer.Option(
        help="The old meter's closing reading, REGISTER=VALUE (repeat per register).")],
    opening: Annotated[list[str] | None, typer.Option(
        help="The new meter's opening reading, REGISTER=VALUE (default: its first reading "
             "is its baseline).")] = None,
    profile: Annotated[str | None, typer.Option(help="The new meter's device profile "
                                                     "(default: the old one's).")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """Register a meter replacement an operator made: the old meter is charged up to its
    closing readings and closed, the new one opened on the same account (a meter_replaced
    event). Exits 2 with the reason when it cannot be recorded."""
    from meterline.errors import DomainError
    from meterline.replacements import Replacement
    from rating.commands import register_replacement

    if at.tzinfo is None:
        raise typer.BadParameter("--at needs its UTC offset, e.g. 2026-10-05T09:00+03:00")
    replacement = Replacement(old_meter=old, new_meter=new, at=at, source="operator",
                              closing=_register_readings(closing, at),
                              opening=_register_readings(opening or [], at), profile=profile,
                              reason=reason)
    settings = _settings()

    async def main() -> str:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            replaced, result = await register_replacement(conn, replacement)
            await conn.commit()
        if not replaced.new:
            return f"meter {old} was replaced by {new} already: nothing changed"
        return (f"meter {old} replaced by {new} on account {replaced.account_id}; "
                f"{result.charges} charge line(s) up to its closing reading")

    try:
        typer.echo(asyncio.run(main()))
    except DomainError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


contracts_app = typer.Typer(
    help="Contract types and their disconnection policies (README: the disconnection policy).",
    no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")


@contracts_app.command("list")
def contracts_list() -> None:
    """Every contract type: its policy, the policy's rule, how many accounts have it."""
    import psycopg

    from meterline.relay import ContractType, contract_types

    settings = _settings()

    async def main() -> list[ContractType]:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            return await contract_types(conn)

    for c in asyncio.run(main()):
        typer.echo(f"{c.code}\t{c.policy}\t{c.rule}\t{c.accounts} account(s)\t{c.name}"
                   f"{': ' + c.description if c.description else ''}")


@contracts_app.command("assign")
def contracts_assign(
    account: Annotated[str, typer.Argument(help="The personal account.")],
    contract_type: Annotated[str, typer.Argument(help="A code of `meterline contracts list`.")],
) -> None:
    """Put an account on a contract type; its policy decides at once."""
    import psycopg

    from meterline.errors import DomainError
    from meterline.relay import assign_contract_type

    settings = _settings()

    async def main() -> str:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            before = await assign_contract_type(conn, account, contract_type)
            await conn.commit()
            return before

    try:
        before = asyncio.run(main())
    except DomainError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"account {account}: contract type {before} -> {contract_type}")


@app.command()
def demo(
    meters: Annotated[int, typer.Option(help="Simulated meters (Modbus unit ids 1..N).")] = 20,
) -> None:
    """Run everything (broker, migrations, simulated fleet, gateway, bridge, rating, API) with
    a live summary; Ctrl-C or SIGTERM stops all it started."""
    from meterline.demo import run_demo

    stop_on_sigterm_as_on_ctrl_c()
    run_demo(_settings(), meters)


# --- the back office (billing/)

def _selection(region: str | None, city: str | None, house: int | None,
               provider: str | None, account: list[str] | None,
               group: str | None = None) -> Selection:
    return Selection(region=region, city=city, house=house, provider=provider,
                     accounts=tuple(account or ()), group=group)


Region = Annotated[str | None, typer.Option(help="Only this region (code).")]
City = Annotated[str | None, typer.Option(help="Only this city (name).")]
House = Annotated[int | None, typer.Option(help="Only this house (id).")]
ProviderOption = Annotated[str | None, typer.Option("--provider",
                                                    help="Only this provider's services.")]
Accounts = Annotated[list[str] | None, typer.Option("--account",
                                                    help="Only these accounts (repeat).")]
Group = Annotated[str | None, typer.Option(
    help="Only the accounts of this saved group (`meterline group save`).")]


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


payments_app = typer.Typer(help="Payments in: bank registries.", no_args_is_help=True)
app.add_typer(payments_app, name="payments")


@payments_app.command("import")
def payments_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="The bank's registry file.")],
    layout: Annotated[str, typer.Option(
        help="The registry's layout: a name (sberbank, post) or a layout file (.toml).")]
    = "sberbank",
) -> None:
    """Post a bank registry's payments, each once; the same file is never imported twice. A
    bad line is refused with its line number and reason (exit 1); a file whose totals do not
    match is refused whole (exit 2)."""
    from billing.payments.commands import import_registry_file as run

    run(_settings(), path, layout)


@payments_app.command("cash")
def payments_cash(
    account: Annotated[str, typer.Argument(help="The personal account.")],
    amount: Annotated[str, typer.Argument(help="Roubles, e.g. 1500.00.")],
    receipt: Annotated[str, typer.Option(help="The cash desk's receipt number.")],
    desk: Annotated[str, typer.Option(help="The cash desk.")] = "main",
    period: Annotated[str | None, typer.Option(help="The month the payer names, YYYY-MM.")]
    = None,
    provider: Annotated[str | None, typer.Option(
        help="Credit this provider's wallet whole (a prepaid top-up).")] = None,
) -> None:
    """Take a payment at a cash desk: one entry, split over what the account owes; the same
    receipt again moves nothing."""
    from decimal import Decimal

    from billing.payments.commands import cash_payment as run

    run(_settings(), account, Decimal(amount), receipt, desk=desk,
        period=_month(period) if period else None, provider=provider)


@payments_app.command("settle")
def payments_settle(
    period: Annotated[str, typer.Option(help="The month to settle, YYYY-MM.")],
    export: Annotated[Path | None, typer.Option(
        help="Write the transfers to the providers here (1CClientBankExchange).")] = None,
) -> None:
    """Settle with every provider what the channels collected for it up to the end of the
    month: collected, the agent's commission, the transfer due."""
    from billing.payments.commands import settle_period as run

    year, month = (int(part) for part in period.split("-"))
    run(_settings(), date(year, month, 1), export)


penalties_app = typer.Typer(help="Penalties for late payment (DOMAIN.md §1).",
                            no_args_is_help=True)
app.add_typer(penalties_app, name="penalties")


def _day(text: str | None) -> date:
    return date.fromisoformat(text) if text else datetime.now(UTC).date()


@penalties_app.command("explain")
def penalties_explain(
    account: Annotated[str, typer.Argument(help="The personal account.")],
    as_of: Annotated[str | None, typer.Option(help="Day of calculation, YYYY-MM-DD "
                                                    "(default: today).")] = None,
) -> None:
    """Print the penalty on every charge of the account paid late or overdue, line by line:
    days, tier, rate, base, amount; the lines add up to the total."""
    from billing.payments.commands import explain_penalties as run

    run(_settings(), account, _day(as_of))


@penalties_app.command("accrue")
def penalties_accrue(
    as_of: Annotated[str | None, typer.Option(help="Accrue up to this day, YYYY-MM-DD "
                                                    "(default: today).")] = None,
    account: Annotated[str | None, typer.Option(help="One account only.")] = None,
) -> None:
    """Accrue penalties as ledger lines (set-based, every postpaid account); running it again
    for the same day posts nothing more. The scheduler runs it daily."""
    from billing.payments.commands import accrue_penalties as run

    run(_settings(), _day(as_of), account)


reminders_app = typer.Typer(help="Reminders to debtors (DOMAIN.md §7).", no_args_is_help=True)
app.add_typer(reminders_app, name="reminders")


@reminders_app.command("run")
def reminders_run(
    months: Annotated[str, typer.Option(help="A debtor owes more than this many months of "
                                             "charges for one service.")] = "2",
    least: Annotated[str, typer.Option(help="... and at least this much, roubles.")] = "0.01",
    provider: Annotated[str | None, typer.Option(help="One provider only.")] = None,
) -> None:
    """Start the notice -> restriction -> suspension sequence for new debtors, take the steps
    that are due (20 days after a notice was delivered, 10 after a restriction), close the
    paid; turn rating's events into notices. The notifier delivers them. Safe to rerun."""
    from decimal import Decimal

    from billing.reminders.commands import run_once

    run_once(_settings(), months=Decimal(months), least=Decimal(least), provider=provider)


@reminders_app.command("work-orders")
def reminders_work_orders(
    provider: Annotated[str | None, typer.Option(help="One provider only.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Done and cancelled ones too, and the "
                                                      "relay commands.")] = False,
) -> None:
    """The technician's open work orders to restrict, suspend or reconnect a service (one per
    line: id, ordered, action, status, provider, account, service, how, address)."""
    from billing.reminders.commands import list_work_orders

    list_work_orders(_settings(), provider=provider, every=every)


@reminders_app.command("work-done")
def reminders_work_done(
    order: Annotated[int, typer.Argument(help="The work order's id.")],
    by: Annotated[str, typer.Option(help="Who carried it out.")],
    note: Annotated[str, typer.Option(help="What was done.")] = "",
    cancel: Annotated[bool, typer.Option(help="Cancelled, not done.")] = False,
) -> None:
    """Mark a technician's work order carried out (or cancelled)."""
    from billing.reminders.commands import close_work_order

    close_work_order(_settings(), order, by=by, note=note, cancelled=cancel)


reports_app = typer.Typer(help="Reports: turnover sheet, debtors, penalties register "
                          "(CSV or PDF).", no_args_is_help=True)
app.add_typer(reports_app, name="reports")

OutOption = Annotated[Path | None, typer.Option(
    "--out", help="Write to this .csv or .pdf file (default: CSV to standard output).")]


def _month(text: str) -> date:
    year, month = (int(part) for part in text.split("-"))
    return date(year, month, 1)


@reports_app.command("turnover")
def reports_turnover(
    provider: Annotated[str, typer.Option(help="The provider.")],
    period: Annotated[str, typer.Option(help="The month, YYYY-MM.")],
    service: Annotated[str | None, typer.Option(help="One service only.")] = None,
    out: OutOption = None,
) -> None:
    """The turnover sheet of a provider for a month, per account and service: debt at the
    start, charged, paid, penalties, other, debt at the end (reconciles with the journal)."""
    from billing.reports.commands import write_report
    from billing.reports.statements import turnover_sheet

    settings = _settings()
    write_report(settings, out, lambda conn: turnover_sheet(
        conn, provider, _month(period), time_zone=settings.agent_time_zone, service=service))


@reports_app.command("debtors")
def reports_debtors(
    as_of: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today).")] = None,
    provider: Annotated[str | None, typer.Option(help="One provider.")] = None,
    region: Annotated[str | None, typer.Option(help="One region (code).")] = None,
    house: Annotated[int | None, typer.Option(help="One house (id).")] = None,
    least: Annotated[str, typer.Option(help="The least overdue amount, roubles.")] = "0.01",
    out: OutOption = None,
) -> None:
    """Accounts overdue to a provider, the largest first, with their debt by age."""
    from decimal import Decimal

    from billing.reports.commands import write_report
    from billing.reports.statements import debtors_list

    write_report(_settings(), out, lambda conn: debtors_list(
        conn, _day(as_of), provider=provider, region=region, house=house,
        least=Decimal(least)))


@reports_app.command("penalties")
def reports_penalties(
    period: Annotated[str, typer.Option(help="The month, YYYY-MM.")],
    provider: Annotated[str | None, typer.Option(help="One provider.")] = None,
    out: OutOption = None,
) -> None:
    """The penalties register: per unpaid charge, the penalty accrued and its principal."""
    from billing.reports.commands import write_report
    from billing.reports.statements import penalties_register

    write_report(_settings(), out, lambda conn: penalties_register(
        conn, _month(period), provider=provider))


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

@app.command()
def billrun(
    period: Annotated[str, typer.Option(help="The month billed, YYYY-MM.")],
    region: Region = None, city: City = None, house: House = None,
    provider: ProviderOption = None, account: Accounts = None, group: Group = None,
    chunk_accounts: Annotated[int | None, typer.Option(
        min=1, help="Accounts a transaction bills (whole houses); default: the setting.")]
    = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Connections billing chunks at once; default: the setting.")] = None,
    started_by: Annotated[str | None, typer.Option(help="Who runs it (default: cli:<user>)."
                                                   )] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Bill a period for all housing accounts or a selection; an unfinished run of the same
    period and selection is resumed. Billing again with nothing changed changes nothing."""
    import getpass

    from billing.commands import billrun as run

    settings = _settings()
    run(settings, period, _selection(region, city, house, provider, account, group),
        started_by=started_by or f"cli:{getpass.getuser()}",
        chunk_accounts=chunk_accounts or settings.billrun_chunk_accounts,
        workers=workers or settings.billrun_workers, progress=progress)


@app.command()
def documents(
    period: Annotated[str, typer.Option(help="The month billed, YYYY-MM.")],
    out: Annotated[Path, typer.Option(help="Folder the PDFs are written to.")],
    region: Region = None, city: City = None, house: House = None,
    provider: ProviderOption = None, account: Accounts = None, group: Group = None,
    processes: Annotated[int, typer.Option(min=1, help="Rendering processes.")] = 2,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Render the payment documents (PDF with the payment QR) of the accounts billed for a
    period, or of a selection of them."""
    from billing.commands import documents as run

    run(_settings(), period, _selection(region, city, house, provider, account, group), out,
        processes=processes, progress=progress)


@app.command()
def export(
    period: Annotated[str, typer.Option(help="The month billed, YYYY-MM.")],
    out: Annotated[Path, typer.Option(help="File written.")],
    format: Annotated[str, typer.Option(help="csv or json (print shops), gis (ГИС ЖКХ).")]
    = "csv",
    region: Region = None, city: City = None, house: House = None,
    provider: ProviderOption = None, account: Accounts = None, group: Group = None,
) -> None:
    """Export the payment documents of a period for print shops (CSV, JSON) or for the state
    housing information system (gis: its attribute set, billing/documents/GIS_ZHKH.md)."""
    from billing.commands import export as run

    run(_settings(), period, _selection(region, city, house, provider, account, group),
        format, out)


group_app = typer.Typer(help="Saved groups of accounts a bill run, documents and exports "
                        "select by name (--group).", no_args_is_help=True)
app.add_typer(group_app, name="group")


@group_app.command("save")
def group_save(
    name: Annotated[str, typer.Argument(help="The group's name.")],
    account: Accounts = None,
    file: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="A file of account ids, one a line.")] = None,
    region: Region = None, city: City = None, house: House = None,
    description: Annotated[str, typer.Option(help="What the group is for.")] = "",
) -> None:
    """Save a group (replacing its members): the accounts named, those of a file, or those of
    a region, city or house now. An account that does not exist refuses the group whole."""
    from billing.commands import save_group as run

    accounts = list(account or ())
    if file is not None:
        accounts += file.read_text(encoding="utf-8-sig").split()
    run(_settings(), name, accounts, _selection(region, city, house, None, None),
        description=description)


@group_app.command("list")
def group_list() -> None:
    """The saved groups and how many accounts each holds."""
    from billing.commands import list_groups as run

    run(_settings())


@app.command("close-period")
def close_period(
    period: Annotated[str, typer.Option(help="The month closed, YYYY-MM.")],
    provider: ProviderOption = None,
) -> None:
    """Close a billed period for every provider billed in it (or one): it is never billed
    again; a correction goes into the next period."""
    from billing.commands import close_period as run

    run(_settings(), period, provider)


@app.command()
def scheduler() -> None:
    """Run the scheduler service: jobs on their schedules (setting `schedules`), bill runs
    asked for through the API, bill runs a crash left unfinished."""
    from billing.scheduler.service import run

    settings = _settings()
    serve(lambda: run(settings))


@app.command()
def job(
    name: Annotated[str, typer.Argument(help="A scheduler job: billrun, ...")],
) -> None:
    """Run a scheduler job now, recorded like a scheduled one (started by cli:<user>)."""
    from billing.commands import run_job_now

    run_job_now(_settings(), name)


# --- users and MQTT credentials (issue 9)

users_app = typer.Typer(help="People and machines who use the API: users, roles, accounts.",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="subscriber, industrial, operator or admin.")],
    account: Annotated[list[str] | None, typer.Option(
        help="A personal account the user may see (repeat for several).")] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Add a user; the password is read from the terminal (or METERLINE_NEW_PASSWORD)."""
    import os

    from meterline.users import Role, create_user

    settings = _settings()
    password = os.environ.get("METERLINE_NEW_PASSWORD") or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)

    async def main() -> int | None:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            user_id = await create_user(conn, username, password, Role(role), display_name=name,
                                        accounts=account or [])
            await conn.commit()
            return user_id

    if asyncio.run(main()) is None:
        raise typer.BadParameter(f"user {username} exists")
    typer.echo(f"user {username} ({role}) added")


mqtt_app = typer.Typer(help="MQTT credentials of gateways and bridges, and the broker's ACL.",
                       no_args_is_help=True)
app.add_typer(mqtt_app, name="mqtt")


@mqtt_app.command("add-client")
def mqtt_add_client(
    username: Annotated[str, typer.Argument(help="A gateway id, or the bridge's user name.")],
    kind: Annotated[str, typer.Option(help="gateway or bridge.")] = "gateway",
) -> None:
    """Register a gateway or bridge (or give it a new password); prints the password once.
    With METERLINE_MQTT_CONFIG_DIR set, the broker's password file and ACL are rewritten at
    once (and the broker reloaded, with METERLINE_MQTT_BROKER_PID_FILE)."""
    from meterline.mqtt_access import add_client, publish_config

    if kind not in ("gateway", "bridge"):
        raise typer.BadParameter("kind is gateway or bridge")
    settings = _settings()

    async def main() -> str:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            password = await add_client(conn, username, "gateway" if kind == "gateway"
                                        else "bridge")
            await conn.commit()
            if settings.mqtt_config_dir is not None:
                await publish_config(conn, settings.mqtt_topic_root, settings.mqtt_config_dir,
                                     settings.mqtt_broker_pid_file)
            return password

    typer.echo(asyncio.run(main()))


@mqtt_app.command("remove-client")
def mqtt_remove_client(
    username: Annotated[str, typer.Argument(help="The gateway id or bridge user name.")],
) -> None:
    """Forget a gateway's or bridge's credentials (retired or compromised); with
    METERLINE_MQTT_CONFIG_DIR set, the broker's files are rewritten and reloaded at once."""
    from meterline.mqtt_access import publish_config, remove_client

    settings = _settings()

    async def main() -> bool:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            removed = await remove_client(conn, username)
            await conn.commit()
            if removed and settings.mqtt_config_dir is not None:
                await publish_config(conn, settings.mqtt_topic_root, settings.mqtt_config_dir,
                                     settings.mqtt_broker_pid_file)
            return removed

    if not asyncio.run(main()):
        raise typer.BadParameter(f"no MQTT client {username}")
    typer.echo(f"{username} removed")


@mqtt_app.command("write-config")
def mqtt_write_config(
    folder: Annotated[Path, typer.Argument(help="Where to write `passwd` and `acl`.")],
) -> None:
    """Write Mosquitto's password file and ACL for every registered client (then send the
    broker SIGHUP to reload them)."""
    from meterline.mqtt_access import MqttClient, clients, write_config

    settings = _settings()

    async def main() -> list[MqttClient]:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            return await clients(conn)

    passwd, acl = write_config(settings.mqtt_topic_root, asyncio.run(main()), folder)
    typer.echo(f"wrote {passwd} and {acl}")
