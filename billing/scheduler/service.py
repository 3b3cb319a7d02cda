"""The scheduler service: jobs on their cron schedules, bill runs asked for through the API,
and bill runs a crash left unfinished, one at a time.

Each slot of a schedule (a job and the moment its cron expression names, in the scheduler's
time zone) is claimed in ``scheduled_runs`` before the job runs, so a slot runs once however
many schedulers there are; a slot missed while no scheduler ran is run when one comes up, if
it is recent enough (``scheduler_catch_up``). Between slots the service waits on PostgreSQL
notifications of queued bill runs, at most ``scheduler_poll`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from croniter import croniter

from billing.billrun.run import bill
from billing.scheduler.jobs import Job, run_job
from meterline.bill_runs import Selection
from meterline.errors import Conflict, DomainError
from meterline.metrics import SCHEDULER, SCHEDULER_JOBS, serving
from meterline.settings import Settings

log = logging.getLogger("meterline.scheduler")


@dataclass(frozen=True)
class Schedule:
    job: str
    cron: str

    def last_due(self, now: datetime, time_zone: str) -> datetime:
        """The latest slot at or before ``now``."""
        local = now.astimezone(ZoneInfo(time_zone))
        due: datetime = croniter(self.cron, local + timedelta(microseconds=1)).get_prev(datetime)
        return due.astimezone(UTC)

    def next_due(self, now: datetime, time_zone: str) -> datetime:
        due: datetime = croniter(self.cron, now.astimezone(ZoneInfo(time_zone))).get_next(
            datetime)
        return due.astimezone(UTC)


def schedules(settings: Settings) -> list[Schedule]:
    return [Schedule(job, cron) for job, cron in sorted(settings.schedules.items())]


_QUEUED = "SELECT id, period, selection FROM bill_runs WHERE status = 'queued' ORDER BY id"
_UNFINISHED = """
SELECT DISTINCT ON (period, selection) period, selection
  FROM bill_runs WHERE status = 'running' ORDER BY period, selection, id
"""


class Scheduler:
    def __init__(self, settings: Settings, jobs: dict[str, Job] | None = None) -> None:
        self.settings = settings
        self.jobs = jobs
        self.schedules = schedules(settings)
        self.ready = asyncio.Event()

    async def run(self) -> None:
        url = self.settings.database_url
        async with (
            await psycopg.AsyncConnection.connect(
                url, autocommit=True, application_name="meterline-scheduler") as conn,
            await psycopg.AsyncConnection.connect(
                url, autocommit=True, application_name="meterline-scheduler-listen")
            as listener,
        ):
            await listener.execute("LISTEN bill_runs")
            self.ready.set()
            log.info("meterline scheduler ready: %s",
                     ", ".join(f"{s.job} at {s.cron!r}" for s in self.schedules) or "no jobs")
            while True:
                await self.tick(conn)
                await self.wait(listener)

    async def tick(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Run what is due now: scheduled slots, queued bill runs, unfinished bill runs."""
        now = datetime.now(UTC)
        window = timedelta(seconds=self.settings.scheduler_catch_up)
        for schedule in self.schedules:
            due = schedule.last_due(now, self.settings.scheduler_time_zone)
            if due >= now - window:
                await self._job(conn, schedule, due)
        cur = await conn.execute(_QUEUED)
        for run_id, period, selection in await cur.fetchall():
            await self._bill(conn, period, selection, queued=run_id)
        cur = await conn.execute(_UNFINISHED)
        for period, selection in await cur.fetchall():
            await self._bill(conn, period, selection)

    async def _job(self, conn: psycopg.AsyncConnection[Any], schedule: Schedule,
                   due: datetime) -> None:
        try:
            detail = await run_job(conn, self.settings, schedule.job, due,
                                   f"scheduler:{schedule.cron}", self.jobs)
        except (DomainError, psycopg.Error) as exc:
            SCHEDULER_JOBS.labels(schedule.job, "failed").inc()
            log.error("job %s of %s failed: %s", schedule.job, due.isoformat(), exc)
            return
        if detail is not None:
            SCHEDULER_JOBS.labels(schedule.job, "done").inc()
            log.info("job %s of %s: %s", schedule.job, due.isoformat(), detail)

    async def _bill(self, conn: psycopg.AsyncConnection[Any], period: Any,
                    selection: dict[str, Any], queued: int | None = None) -> None:
        started_by = "scheduler:queued" if queued else "scheduler:resume"
        try:
            run = await bill(conn, period, Selection.from_json(selection), started_by,
                             chunk_accounts=self.settings.billrun_chunk_accounts,
                             workers=self.settings.billrun_workers,
                             database_url=self.settings.database_url, queued=queued)
        except Conflict as exc:  # a run of that period is going on elsewhere
            log.info("bill run of %s left for later: %s", period, exc.detail)
            return
        except (DomainError, psycopg.Error) as exc:
            SCHEDULER_JOBS.labels("billrun", "failed").inc()
            log.error("bill run of %s (%s) failed: %s", period, selection, exc)
            return
        SCHEDULER_JOBS.labels("billrun", "done").inc()
        log.info("bill run %s of %s done (%s)", run.id, period, started_by)

    async def wait(self, listener: psycopg.AsyncConnection[Any]) -> None:
        """Until the next slot, a bill run notification, or ``scheduler_poll`` seconds."""
        now = datetime.now(UTC)
        seconds = float(self.settings.scheduler_poll)
        for schedule in self.schedules:
            due = schedule.next_due(now, self.settings.scheduler_time_zone)
            seconds = min(seconds, max((due - now).total_seconds(), 0.0) + 0.01)
        async for _ in listener.notifies(timeout=seconds, stop_after=1):
            pass


async def run(settings: Settings) -> None:
    """Run the scheduler, with its /metrics and /ready, until cancelled."""
    scheduler = Scheduler(settings)
    async with serving(SCHEDULER, settings.metrics_host, settings.scheduler_metrics_port,
                       scheduler.ready.is_set):
        await scheduler.run()
