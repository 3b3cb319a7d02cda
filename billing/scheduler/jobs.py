"""The jobs the scheduler runs, by name. Adding a job is one line in ``JOBS`` (and its
schedule in the ``schedules`` setting): a function of a ``JobContext`` that does the work and
says in a sentence what it did."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from billing.billrun.run import bill
from billing.penalties.journal import accrue
from billing.penalties.rules import PenaltyRules, load_rules
from billing.reminders.run import run_reminders
from meterline.bill_runs import Selection
from meterline.errors import DomainError, NotFound
from meterline.settings import Settings
from meterline.tariffs.benefit_entries import book_benefits
from meterline.tariffs.standing import book_standing_charges


@dataclass(frozen=True)
class JobContext:
    conn: psycopg.AsyncConnection[Any]  # autocommit: a job makes its own transactions
    settings: Settings
    due_at: datetime  # the slot of the schedule being run (aware)
    started_by: str


Job = Callable[[JobContext], Awaitable[str]]


def month_before(moment: datetime, time_zone: str) -> date:
    local = moment.astimezone(ZoneInfo(time_zone))
    return date(local.year - (local.month == 1), (local.month - 2) % 12 + 1, 1)


async def bill_previous_month(ctx: JobContext) -> str:
    """Bill every housing account for the month before the slot (a run of the 1st bills the
    month just ended), then book the month's benefits on the bills (the tariffs' benefits:
    a benefit by area rests on what the bill run charged)."""
    period = month_before(ctx.due_at, ctx.settings.scheduler_time_zone)
    run = await bill(ctx.conn, period, Selection(), ctx.started_by,
                     chunk_accounts=ctx.settings.billrun_chunk_accounts,
                     workers=ctx.settings.billrun_workers,
                     database_url=ctx.settings.database_url)
    booked = await book_benefits(ctx.conn, period)
    changed = sum(1 for b in booked if b.action in ("posted", "corrected"))
    return (f"bill run {run.id} of {period:%Y-%m}: {run.accounts} accounts; benefits: "
            f"{changed} booked")


async def standing_charges_of_yesterday(ctx: JobContext) -> str:
    """Book the standing charges of the day before the slot (a run after midnight charges the
    day just ended)."""
    day = ctx.due_at.astimezone(ZoneInfo(ctx.settings.scheduler_time_zone)).date()
    booked = await book_standing_charges(ctx.conn, day - timedelta(days=1))
    return f"standing charges of {booked.day}: {booked.charges}, {booked.amount:.2f} RUB"


async def benefits_of_previous_month(ctx: JobContext) -> str:
    """Book the benefits of the month before the slot (before the bill run shows them)."""
    period = month_before(ctx.due_at, ctx.settings.scheduler_time_zone)
    booked = await book_benefits(ctx.conn, period)
    changed = sum(1 for b in booked if b.action in ("posted", "corrected"))
    return f"benefits of {period:%Y-%m}: {len(booked)} grants, {changed} booked"


async def penalties_to_yesterday(ctx: JobContext) -> str:
    """Accrue penalties up to the day before the slot (payments' ``penalties accrue``)."""
    day = ctx.due_at.astimezone(ZoneInfo(ctx.settings.agent_time_zone)).date()
    done = await accrue(ctx.conn, _penalty_rules(ctx.settings), day - timedelta(days=1),
                        count_payment_day=ctx.settings.penalty_count_payment_day,
                        time_zone=ctx.settings.agent_time_zone)
    return (f"penalties to {day - timedelta(days=1)}: {done.charges} charges changed, "
            f"{done.amount:.2f} RUB")


async def reminders(ctx: JobContext) -> str:
    """One reminder run at the slot (payments' ``reminders run``)."""
    done = await run_reminders(ctx.conn, ctx.due_at, _penalty_rules(ctx.settings))
    return (f"reminders: {done.started} sequences started, {done.restricted} restricted, "
            f"{done.suspended} suspended, {done.closed} closed, {done.events} notices")


def _penalty_rules(settings: Settings) -> PenaltyRules:
    return load_rules(settings.penalty_rules_file, settings.penalty_rates_file)


JOBS: dict[str, Job] = {
    "billrun": bill_previous_month,
    "standing-charges": standing_charges_of_yesterday,
    "benefits": benefits_of_previous_month,
    "penalties": penalties_to_yesterday,
    "reminders": reminders,
}


async def run_job(conn: psycopg.AsyncConnection[Any], settings: Settings, name: str,
                  due_at: datetime, started_by: str,
                  jobs: dict[str, Job] | None = None) -> str | None:
    """Claim the slot (``name``, ``due_at``) and run the job, recording its outcome; None when
    the slot was claimed before (by this or another scheduler, or by hand)."""
    registry = JOBS if jobs is None else jobs
    if name not in registry:
        raise NotFound(f"no job {name!r}; jobs: {', '.join(sorted(registry))}")
    cur = await conn.execute("""
        INSERT INTO scheduled_runs (job, due_at, started_by) VALUES (%s, %s, %s)
        ON CONFLICT (job, due_at) DO NOTHING RETURNING id""", (name, due_at, started_by))
    claimed = await cur.fetchone()
    if claimed is None:
        return None
    try:
        detail = await registry[name](JobContext(conn, settings, due_at, started_by))
    except (DomainError, psycopg.Error) as exc:
        await _record(conn, claimed[0], "failed", f"{type(exc).__name__}: {exc}")
        raise
    await _record(conn, claimed[0], "done", detail)
    return detail


async def _record(conn: psycopg.AsyncConnection[Any], run_id: int, status: str,
                  detail: str) -> None:
    await conn.execute("""
        UPDATE scheduled_runs SET status = %s, detail = %s, finished_at = now()
         WHERE id = %s""", (status, detail, run_id))
