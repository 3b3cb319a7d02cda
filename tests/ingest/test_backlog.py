"""A gateway's backlog larger than the broker's queue arrives complete (issue 6).

Mosquitto keeps at most ``max_queued_messages`` QoS 1 messages for a subscriber that is away
or slow and drops the rest. A gateway emptying hours of outbox would lose them if it let a
batch go once the broker has it; it keeps each batch until the platform confirms it has
committed it, with at most ``gateway_window`` out at a time, so the backlog arrives whole.

Here: a broker of our own keeping QUEUE messages, a backlog of BACKLOG batches in the
gateway's outbox, and a bridge that is away while the gateway starts sending. The second case
is the same run without the platform's confirmations: the broker drops what does not fit.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.outbox import Outbox
from gateway.service import Gateway
from meterline.contracts import ReadingsBatch, Sample
from meterline.kafka import free_port, port_open
from meterline.metrics import GATEWAY
from meterline.settings import Settings
from meterline.units import Register, Unit
from tests.factories import customers
from tests.ingest.test_bridge import count, running_bridge
from tests.waiting import until

QUEUE = 40  # the broker's queue per subscriber
WINDOW = 30  # batches out and unconfirmed, at most: below the queue
BACKLOG = 300
T0 = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def small_broker(tmp_path: Path) -> Iterator[int]:
    """Mosquitto of our own, keeping at most QUEUE messages for a subscriber."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                      f"persistence false\nmax_queued_messages {QUEUE}\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)  # polling a port another process opens
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    gateway = Gateway(settings, modbus_timeout=0.2)
    task = asyncio.create_task(gateway.run())
    try:
        yield gateway
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def gateway_metric(name: str) -> float:
    return GATEWAY.get_sample_value(name) or 0.0


def fill_outbox(settings: Settings, meters: list[str]) -> None:
    """Hours of interval readings waiting after an outage."""
    outbox = Outbox(settings.gateway_state_dir, settings.gateway_id)
    for k in range(BACKLOG):
        at = T0 + timedelta(minutes=15 * k)
        batch = ReadingsBatch(gateway=settings.gateway_id, seq=k, polled_at=at, samples=[
            Sample(meter=m, register=Register.ACTIVE_IMPORT, unit=Unit.KWH, value=Decimal(k),
                   ts=at) for m in meters])
        assert outbox.add(partial(_payload, batch)) == k
    outbox.close()


def _payload(batch: ReadingsBatch, seq: int) -> str:
    assert seq == batch.seq
    return batch.model_dump_json()


@pytest.mark.parametrize("confirmed", [True, False],
                         ids=["kept until confirmed", "let go on the broker's ack"])
async def test_a_backlog_larger_than_the_brokers_queue_arrives_complete(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    small_broker: int, confirmed: bool,
) -> None:
    settings = make_settings(
        mqtt_port=small_broker, gateway_window=WINDOW, gateway_await_confirmation=confirmed,
        gateway_meters=f"127.0.0.1:{free_port()}/1",  # no meter answers: empty new batches
        poll_interval=0.5,
    )
    made = await customers(conn, ["1000", "1000"], gateway_id=settings.gateway_id)
    meters = [c.meter_id for c in made]
    fill_outbox(settings, meters)
    async with running_bridge(settings):
        pass  # the bridge's persistent session exists; the bridge is away from now on

    acked = gateway_metric("meterline_gateway_batches_acknowledged_total")
    async with running_gateway(settings):
        if confirmed:  # a window out, waiting for the platform
            await until(lambda: _at_least("meterline_gateway_in_flight_batches", WINDOW),
                        what="the gateway to send its window")
        else:  # the broker acknowledged the whole backlog: the outbox let it go
            await until(lambda: _at_least("meterline_gateway_batches_acknowledged_total",
                                          acked + BACKLOG), what="the backlog to leave")
        async with running_bridge(settings):
            # the broker delivers in order: once a batch newer than the backlog is
            # forwarded, everything of the backlog that reached the bridge has
            await until(lambda: _newer_forwarded(conn, settings.gateway_id), 120,
                        "a batch newer than the backlog to be forwarded")

    forwarded = await count(conn, "SELECT count(*) FROM ingest_batches WHERE gateway_id = %s "
                                  "AND seq < %s", settings.gateway_id, BACKLOG)
    stored = await count(conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)", meters)
    if confirmed:
        assert (forwarded, stored) == (BACKLOG, 2 * BACKLOG)
    else:  # what waiting for confirmations prevents: the broker dropped what did not fit
        assert forwarded <= QUEUE + 20  # its queue and its in-flight window for the bridge
        assert stored == 2 * forwarded


async def _at_least(name: str, value: float) -> bool:
    return gateway_metric(name) >= value


async def _newer_forwarded(conn: psycopg.AsyncConnection[Any], gateway: str) -> bool:
    return await count(conn, "SELECT count(*) FROM ingest_batches WHERE gateway_id = %s "
                             "AND seq >= %s", gateway, BACKLOG) > 0
