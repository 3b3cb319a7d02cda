"""The scheduler: each slot of a schedule run once and recorded with who started it, bill
runs asked for through the API made, the service answering /ready and stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from billing.scheduler.jobs import JobContext, month_before, run_job
from billing.scheduler.service import Schedule, Scheduler
from meterline.bill_runs import Selection, queue
from meterline.errors import NotFound
from meterline.kafka import free_port
from meterline.settings import Settings
from meterline.units import Service
from tests.conftest import unique
from tests.factories import housing
from tests.services import service
from tests.waiting import until


def test_a_schedule_names_its_slots_in_its_time_zone() -> None:
    monthly = Schedule("billrun", "0 3 1 * *")
    now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    assert monthly.last_due(now, "Europe/Moscow") == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert monthly.next_due(now, "Europe/Moscow") == datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
    assert monthly.last_due(datetime(2026, 3, 1, 0, 0, tzinfo=UTC), "Europe/Moscow") == (
        datetime(2026, 3, 1, 0, 0, tzinfo=UTC))  # a slot is due at its own moment
    assert month_before(datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "Europe/Moscow") == (
        datetime(2025, 12, 1).date())


async def test_a_slot_runs_once_and_is_recorded_with_who_started_it(
    conn: psycopg.AsyncConnection[Any], make_settings: Callable[..., Settings],
) -> None:
    name, ran = unique("job").lower(), []

    async def job(ctx: JobContext) -> str:
        ran.append(ctx.due_at)
        return f"did it for {ctx.due_at:%Y-%m-%d}"

    due = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    settings = make_settings()
    assert await run_job(conn, settings, name, due, "scheduler:0 3 1 * *", {name: job}) == (
        "did it for 2026-05-01")
    assert await run_job(conn, settings, name, due, "cli:someone", {name: job}) is None
    assert ran == [due]
    cur = await conn.execute(
        "SELECT started_by, status, detail FROM scheduled_runs WHERE job = %s", (name,))
    assert await cur.fetchall() == [("scheduler:0 3 1 * *", "done", "did it for 2026-05-01")]
    with pytest.raises(NotFound, match="no job 'nothing'"):
        await run_job(conn, settings, "nothing", due, "cli:someone", {name: job})


async def test_the_service_runs_due_slots_and_queued_bill_runs(
    conn: psycopg.AsyncConnection[Any], make_settings: Callable[..., Settings],
) -> None:
    name, ran = unique("job").lower(), asyncio.Event()

    async def job(ctx: JobContext) -> str:
        ran.set()
        return "ran"

    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    run_id = await queue(conn, datetime(2026, 4, 1).date(), Selection(region=house.region),
                         "api:operator")
    settings = make_settings(schedules={name: "* * * * *"}, scheduler_poll=0.5)
    scheduler = Scheduler(settings, {name: job})
    task = asyncio.create_task(scheduler.run())
    try:
        async with asyncio.timeout(60):
            await ran.wait()  # the slot of the minute just begun, caught up at start

        async def done() -> bool:
            cur = await conn.execute("SELECT status, billed FROM bill_runs WHERE id = %s",
                                     (run_id,))
            return await cur.fetchone() == ("done", 1)

        await until(done, what="the queued bill run to be made")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    cur = await conn.execute("SELECT started_by FROM scheduled_runs WHERE job = %s", (name,))
    assert await cur.fetchall() == [("scheduler:* * * * *",)]


async def test_the_service_process_is_ready_and_stops_on_sigterm(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    port = free_port()
    settings = make_settings(schedules={}, scheduler_metrics_port=port)
    with service("scheduler", settings, tmp_path) as child:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/ready")).status_code == 200
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert "meterline_scheduler_jobs" in metrics
        child.proc.terminate()
        assert child.proc.wait(timeout=30) == 0


class RolledBack(Exception):
    """Ends a transaction whose work other tests must not see."""


async def test_payments_daily_jobs_accrue_penalties_and_run_reminders(
    conn: psycopg.AsyncConnection[Any], make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    slot = datetime(2026, 5, 2, 1, 0, tzinfo=UTC)
    # the jobs work on every account of the database (other tests' too): rolled back after
    with pytest.raises(RolledBack):
        async with conn.transaction():
            penalties = await run_job(conn, settings, "penalties", slot, "cli:test")
            assert penalties is not None and penalties.startswith("penalties to 2026-05-01: ")
            reminders = await run_job(conn, settings, "reminders", slot, "cli:test")
            assert reminders is not None and reminders.startswith("reminders: ")
            cur = await conn.execute(
                "SELECT job, status FROM scheduled_runs WHERE due_at = %s "
                "AND job IN ('penalties', 'reminders') ORDER BY job", (slot,))
            assert await cur.fetchall() == [("penalties", "done"), ("reminders", "done")]
            raise RolledBack
