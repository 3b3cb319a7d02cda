"""The payments and penalties commands of `meterline` (the command line itself, with its
options and help, is in `meterline.cli`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import typer

from billing.payments.imports import import_registry
from billing.payments.registries import RegistryRefused, load_layout
from billing.payments.settlement import Settlement, agent_party, settle, transfers_file
from billing.penalties.explain import explain
from billing.penalties.journal import Accrued, accrue, explain_account
from billing.penalties.rules import PenaltyRules, load_rules
from meterline.errors import DomainError
from meterline.settings import Settings


def import_registry_file(settings: Settings, path: Path, layout_name: str) -> None:
    """Import a bank registry; print the summary and every refused line. Exit 1 when a line
    was refused (the others are posted), 2 when the file was refused whole or imported
    before."""

    data = path.read_bytes()

    async def main() -> None:
        layout = load_layout(layout_name)
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-payments",
        ) as conn:
            done = await import_registry(conn, data, layout, path.name)
        typer.echo(done.summary())
        for line in done.refused:
            typer.echo(f"  line {line.line}: {line.reason}", err=True)
        if done.refused:
            raise typer.Exit(1)

    try:
        asyncio.run(main())
    except RegistryRefused as exc:
        typer.echo(f"refused whole: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    except DomainError as exc:
        typer.echo(f"refused: {exc.detail}", err=True)
        raise typer.Exit(2) from exc


def _rules(settings: Settings) -> PenaltyRules:
    return load_rules(settings.penalty_rules_file, settings.penalty_rates_file)


def explain_penalties(settings: Settings, account: str, as_of: date) -> None:
    """Print the penalty calculation of an account, line by line."""

    async def main() -> str:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, application_name="meterline-penalties",
        ) as conn:
            charges = await explain_account(
                conn, _rules(settings), account, as_of,
                count_payment_day=settings.penalty_count_payment_day,
                stale_after_days=settings.penalty_rates_stale_days)
        return explain(account, as_of, charges,
                       count_payment_day=settings.penalty_count_payment_day)

    try:
        typer.echo(asyncio.run(main()))
    except DomainError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc


def accrue_penalties(settings: Settings, as_of: date, account: str | None) -> None:
    """Accrue penalties up to a day as ledger lines; print what was posted."""

    async def main() -> Accrued:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, application_name="meterline-penalties",
        ) as conn:
            return await accrue(conn, _rules(settings), as_of, account=account,
                                count_payment_day=settings.penalty_count_payment_day,
                                time_zone=settings.agent_time_zone)

    try:
        done = asyncio.run(main())
    except DomainError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"penalties to {as_of:%Y-%m-%d}: {done.charges} charges changed, "
               f"{done.amount:.2f} posted" + (f" (entry {done.entry_id})" if done.charges
                                               else ""))


def settle_period(settings: Settings, period: date, export: Path | None) -> None:
    """Settle every provider for a period; print each; write the transfers file if asked."""

    async def main() -> tuple[list[Settlement], bytes | None]:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, application_name="meterline-settlement",
        ) as conn:
            done = await settle(conn, period, time_zone=settings.agent_time_zone)
            data = None
            if export is not None and done:
                now = datetime.now(UTC)
                data = await transfers_file(conn, period, agent_party(settings), created=now,
                                            day=now.date())
            return done, data

    try:
        done, data = asyncio.run(main())
    except DomainError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    for s in done:
        typer.echo(f"{s.provider_id} {s.period:%Y-%m}: collected {s.collected:.2f}, commission "
                   f"{s.commission:.2f}, transfer {s.transfer:.2f}"
                   + ("" if s.new else " (settled before)"))
    if export is not None and data is not None:
        export.write_bytes(data)
        typer.echo(f"transfers written to {export}")
