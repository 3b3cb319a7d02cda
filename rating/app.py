"""The Faust rating worker: a thin adapter from the readings topic to ``rating.ledger``.

Events are taken in batches (``rating_batch_size`` within ``rating_batch_window`` seconds) and
acknowledged only after their batch is committed to PostgreSQL; a crash before that makes Kafka
deliver them again, and the ledger's natural keys make the second delivery change nothing.

The worker's HTTP server (``rating_web_port``) serves ``/metrics`` and ``/ready`` (ready once
it has partitions assigned) in place of Faust's own pages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import faust
import mode
import psycopg
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from meterline.db import make_pool
from meterline.metrics import (
    RATING,
    RATING_BATCH_READINGS,
    RATING_BATCH_RECORDS,
    RATING_BATCH_SECONDS,
    RATING_CHARGES,
    RATING_LAG,
    RATING_READINGS,
    RATING_RECORDS,
    RATING_RELAY_COMMANDS,
    MetricsServer,
)
from meterline.services import settle_heap
from meterline.settings import Settings
from rating.ledger import BatchResult, load_tariffs, rate_batch
from rating.records import decode, replacements, routed
from rating.tariffs import Tariffs

log = logging.getLogger("meterline.rating")

E = TypeVar("E")


class Rater:
    """Holds the worker's database pool and tariff cache; prices batches of Kafka values."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: AsyncConnectionPool = make_pool(
            settings.database_url, name="meterline-rating", max_size=2
        )
        self._book: Tariffs | None = None
        self._book_at = 0.0
        self._lock = asyncio.Lock()
        self._open = False
        self.announced: list[int] | None = None  # partitions last logged as assigned
        self.readings = 0

    async def start(self) -> None:
        async with self._lock:
            if not self._open:
                await self.pool.open(wait=True)
                self._open = True
                settle_heap()

    async def stop(self) -> None:
        await self.pool.close()

    async def _tariffs(self, conn: psycopg.AsyncConnection[Any]) -> Tariffs:
        if self._book is None or time.monotonic() - self._book_at > self.settings.tariff_refresh:
            self._book = await load_tariffs(conn)
            self._book_at = time.monotonic()
        return self._book

    async def rate(self, payloads: list[bytes]) -> BatchResult:
        """Price and book Kafka values in one transaction."""
        started = time.perf_counter()
        decoded, rejected = decode(payloads)
        records = routed(decoded)
        replaced = replacements(decoded)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_exponential(multiplier=0.2, max=10),
            reraise=True,
        ):
            with attempt:
                async with self._lock, self.pool.connection() as conn:
                    result = await rate_batch(conn, records, await self._tariffs(conn), rejected,
                                              replaced)
        self.readings += result.readings
        RATING_BATCH_SECONDS.observe(time.perf_counter() - started)
        RATING_BATCH_RECORDS.observe(len(payloads))
        RATING_BATCH_READINGS.observe(result.readings)
        RATING_RECORDS.inc(len(payloads))
        RATING_READINGS.inc(result.readings)
        RATING_CHARGES.inc(result.charges)
        for _, action in result.relay_commands:
            RATING_RELAY_COMMANDS.labels(action).inc()
        if result.relay_commands:
            log.info("relay commands requested: %s", result.relay_commands)
        return result


class WebServer(mode.Service):
    """The worker's HTTP server, started by Faust with the worker: /metrics and /ready."""

    def __init__(self, settings: Settings, rater: Rater, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = MetricsServer(RATING, settings.metrics_host, settings.rating_web_port,
                                    lambda: rater.announced is not None)

    async def on_start(self) -> None:
        await self.server.start()

    async def on_stop(self) -> None:
        await self.server.stop()


def transactions(events: Sequence[E], size: Callable[[E], int], most: int) -> list[list[E]]:
    """Kafka events split into runs of about ``most`` readings (by the size of their values:
    a v2 record of many readings is large), each priced in one transaction, in order."""
    runs: list[list[E]] = [[]]
    taken = 0
    budget = most * _BYTES_PER_READING
    for event in events:
        length = size(event)
        if runs[-1] and taken + length > budget:
            runs.append([])
            taken = 0
        runs[-1].append(event)
        taken += length
    return runs


_BYTES_PER_READING = 100  # about what a reading takes in a v2 record (JSON)


def _record_lag(app: faust.App, events: list[Any]) -> None:
    """Set the consumer-lag gauge of the partitions these (acknowledged) events came from."""
    last: dict[Any, int] = {}
    for event in events:
        tp = event.message.tp
        last[tp] = max(last.get(tp, -1), event.message.offset)
    for tp, offset in last.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            RATING_LAG.labels(str(tp.partition)).set(max(0, highwater - offset - 1))


def build_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.rating_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.rating_data_dir),
        web_port=settings.rating_web_port,
        web_host=settings.metrics_host,
        topic_partitions=settings.kafka_partitions,
        broker_session_timeout=settings.rating_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.rating_session_timeout / 3),
        consumer_auto_offset_reset="earliest",
    )
    readings = app.topic(
        settings.readings_topic, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    rater = Rater(settings)

    @app.on_partitions_assigned.connect
    async def announce(_: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await rater.start()
        assigned = kwargs.get("assigned", args[0] if args else set())
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.readings_topic)
        if rater.announced == mine:
            return
        rater.announced = mine
        RATING_LAG.clear()  # partitions no longer ours leave the gauge
        log.info("rating worker ready (group %s, topic %s, partitions %s)",
                 settings.rating_group, settings.readings_topic, mine)

    @app.agent(readings)
    async def rate(stream: faust.StreamT[bytes]) -> None:
        await rater.start()
        async for events in stream.noack_take(  # type: ignore[attr-defined]
            settings.rating_batch_size, within=settings.rating_batch_window
        ):
            # each transaction's events are acknowledged as soon as it commits: a large
            # backlog taken at once moves the committed offsets on as it is priced
            for run in transactions(events, lambda event: len(event.value),
                                    settings.rating_batch_readings):
                await rater.rate([event.value for event in run])
                for event in run:
                    await stream.ack(event)
                _record_lag(app, run)

    app.web_server(WebServer(settings, rater, beacon=app.beacon))
    app.rater = rater  # type: ignore[attr-defined]
    return app


class Worker(faust.Worker):
    """Faust's worker, whose stop is bounded: Faust waits forever for a Kafka broker that went
    away before it could leave its group, so ``grace`` seconds after SIGTERM or Ctrl-C the
    process exits.
    Nothing is lost: offsets are committed only after the batch is, so a batch in flight is
    priced by the next worker (and charged once: the ledger's keys)."""

    def __init__(self, app: faust.App, grace: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.grace = grace

    def _schedule_shutdown(self, received: signal.Signals) -> None:
        if not self._signal_stop_time:
            timer = threading.Timer(self.grace, _exit_now, args=(received, self.grace))
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(received)


def _exit_now(received: signal.Signals, grace: float) -> None:
    log.warning("rating worker did not stop within %gs of %s: exiting", grace, received.name)
    logging.shutdown()
    os._exit(1)


def run(settings: Settings) -> None:
    """Run one rating worker until interrupted."""
    app = build_app(settings)
    worker = Worker(app, settings.rating_stop_grace, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
