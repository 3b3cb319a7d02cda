"""The `meterline reminders` commands: one reminder run; the technician's work orders."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import typer

from billing.penalties.rules import load_rules
from billing.reminders.debtors import DebtorRule
from billing.reminders.run import RunResult, run_reminders
from meterline.errors import DomainError
from meterline.settings import Settings


def run_once(settings: Settings, *, months: Decimal, least: Decimal,
             provider: str | None) -> None:
    async def main() -> RunResult:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-reminders",
        ) as conn:
            return await run_reminders(
                conn, datetime.now(UTC),
                load_rules(settings.penalty_rules_file, settings.penalty_rates_file),
                DebtorRule(months, least, provider))

    done = asyncio.run(main())
    typer.echo(f"sequences started {done.started}, restricted {done.restricted}, suspended "
               f"{done.suspended}, closed {done.closed}; relay commands {done.relay_commands}, "
               f"work orders {done.work_orders}; events turned into notices {done.events}")


def list_work_orders(settings: Settings, *, provider: str | None, every: bool) -> None:
    """Print the technician's work orders, open ones (or all, relay commands included)."""
    from meterline.restrictions import work_orders

    async def main() -> list[dict[str, object]]:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            return await work_orders(conn, provider=provider, status=None if every else "open",
                                     via=None if every else "technician")

    rows = asyncio.run(main())
    for o in rows:
        what = f"meter {o['meter_id']} relay {o['relay_status']}" if o["via"] == "relay" \
            else "technician"
        typer.echo(f"{o['id']}\t{o['ordered_at']:%Y-%m-%d %H:%M}\t{o['action']}\t{o['status']}\t"
                   f"{o['provider_id']}\t{o['account_id']}\t{o['service']}\t{what}\t"
                   f"{o['address']}")
    typer.echo(f"{len(rows)} work order(s)")


def close_work_order(settings: Settings, order_id: int, *, by: str, note: str,
                     cancelled: bool) -> None:
    """Mark a technician's work order done (or cancelled)."""
    from meterline.restrictions import complete

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            await complete(conn, order_id, datetime.now(UTC), by=by, note=note,
                           cancelled=cancelled)
            await conn.commit()

    try:
        asyncio.run(main())
    except DomainError as exc:
        typer.echo(f"refused: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"work order {order_id} {'cancelled' if cancelled else 'done'}")
