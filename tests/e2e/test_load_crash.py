"""Killing a bridge and a rating worker during a load run: totals exact (issue 6).

The load generator publishes virtual gateways' batches; two bridges share them (an MQTT
shared subscription) and two rating workers share the readings topic's partitions. Mid-run
one bridge and one worker are killed (SIGKILL: no goodbye). The bridge comes back under its
own client id, and its session gives it the batches it had not acknowledged; the surviving
worker takes the dead one's partitions over. In the end every published reading is stored
once, and every balance is exactly minus consumption x tariff.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from meterline.kafka import free_port
from meterline.services import Child
from meterline.settings import Settings
from simulators.loadgen import PRICE, SERIAL_BASE, VirtualFleet, register_virtual_fleet
from tests.conftest import unique
from tests.kafka_probe import rating_caught_up
from tests.waiting import until

METERS = 1000
PER_GATEWAY = 100
SECONDS = 8  # of load, one batch per gateway a second: METERS readings a second


async def _count(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> int:
    cur = await conn.execute(query, args)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_killing_a_bridge_and_a_rating_worker_under_load_leaves_totals_exact(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any], tmp_path: Path,
) -> None:
    settings = make_settings(bridge_share=unique("bridges"), rating_session_timeout=6.0,
                             rating_stop_grace=2.0)
    fleet = VirtualFleet(meters=METERS, per_gateway=PER_GATEWAY, prefix=unique("lg"))
    await register_virtual_fleet(conn, fleet)
    serials = [str(SERIAL_BASE + n) for n in range(METERS)]

    def child(name: str, label: str, **overrides: Any) -> Child:
        return Child(name, tmp_path, settings.model_copy(update=overrides).as_env(),
                     label=label)

    def bridge(label: str, client: str) -> Child:
        return child("bridge", label, bridge_client_id=client, bridge_metrics_port=free_port())

    def worker(label: str) -> Child:
        return child("rating", label, rating_web_port=free_port(),
                     rating_data_dir=tmp_path / label)

    a, b = unique("bridge-a"), unique("bridge-b")
    running = [bridge("bridge-a", a), bridge("bridge-b", b), worker("rating-a"),
               worker("rating-b")]
    try:
        for service in running:
            service.wait_ready(90)
        load = Child("loadgen", tmp_path, settings.model_copy(update={
            "loadgen_metrics_port": free_port()}).as_env(), args=[
            "--meters", str(METERS), "--interval", "1", "--per-gateway", str(PER_GATEWAY),
            "--seconds", str(SECONDS), "--prefix", fleet.prefix])
        running.append(load)
        load.wait_ready(60)
        await until(lambda: _count(conn, "SELECT count(*) FROM charges WHERE meter_id = ANY(%s)",
                                   serials), what="charges under load")
        running[0].proc.kill()  # a bridge dies mid-run
        running[2].proc.kill()  # and so does a rating worker
        running.append(bridge("bridge-a-again", a))  # the bridge is restarted, same identity
        running[-1].wait_ready(60)
        assert load.proc.wait(SECONDS + 60) == 0
        published = _published(load.log_path)
        assert published == METERS * SECONDS
        await until(lambda: _stored(conn, serials, published), 120,
                    "every published reading to be stored")
        await rating_caught_up(settings)
    finally:
        for service in running:
            service.stop()

    assert await _count(conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)",
                        serials) == published
    cur = await conn.execute("""
        SELECT b.account_id, b.amount, s.last_value, r.first, r.last, c.quantity
          FROM meters m
          JOIN balances b ON b.account_id = m.account_id
          JOIN register_state s ON s.meter_id = m.id
          JOIN (SELECT meter_id, min(value) AS first, max(value) AS last FROM readings
                 WHERE meter_id = ANY(%(serials)s) GROUP BY meter_id) r ON r.meter_id = m.id
          LEFT JOIN (SELECT meter_id, sum(quantity) AS quantity FROM charges
                      WHERE meter_id = ANY(%(serials)s) GROUP BY meter_id) c ON c.meter_id = m.id
         WHERE m.id = ANY(%(serials)s)""", {"serials": serials})
    rows = await cur.fetchall()
    assert len(rows) == METERS
    for account, balance, state, first, last, quantity in rows:
        assert state == last, account  # rating took every reading up to the last
        assert (quantity or Decimal(0)) == last - first, account  # each interval once
        assert balance == -(last - first) * PRICE, account  # charged exactly once


def _published(log: Path) -> int:
    found = re.findall(r"published (\d+) readings", log.read_text())
    assert found, f"the load generator did not say what it published; see {log}"
    return int(found[-1])


async def _stored(conn: psycopg.AsyncConnection[Any], serials: list[str], n: int) -> bool:
    return await _count(conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)",
                        serials) >= n
