"""The `meterline reminders` command: one reminder run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import typer

from billing.penalties.rules import load_rules
from billing.reminders.run import DebtorRule, RunResult, run_reminders
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
               f"{done.suspended}, closed {done.closed}; events turned into notices "
               f"{done.events}")
