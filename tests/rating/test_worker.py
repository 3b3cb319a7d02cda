"""The Faust rating worker as a real process: Kafka records in, ledger and balances out."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from meterline.contracts import AccountReadings, Reading
from meterline.fleet import Provider
from meterline.kafka import ensure_topics, free_port, start_broker, stop_process
from meterline.services import Child
from meterline.settings import Settings
from meterline.units import Register, Unit, Utility
from tests.factories import customer
from tests.kafka_probe import rating_caught_up
from tests.services import service
from tests.waiting import until

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
PRICE = Decimal("5.470000")
PROVIDER = Provider(id="rating-test", name="Rating test provider")


async def produce(settings: Settings, records: list[AccountReadings]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(settings.readings_topic, record.model_dump_json().encode(),
                                         key=record.account.encode())
    finally:
        await producer.stop()


def record(account: str, meter: str, points: list[tuple[int, str]]) -> AccountReadings:
    return AccountReadings(account=account, gateway="gw", seq=0, readings=[
        Reading(meter=meter, register=Register.ACTIVE_IMPORT, unit=Unit.KWH, value=Decimal(v),
                ts=T0 + timedelta(seconds=s), provider=PROVIDER.id,
                utility=Utility.ELECTRICITY) for s, v in points
    ])


async def fetch(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> Any:
    cur = await conn.execute(query, args)
    return await cur.fetchone()


async def test_worker_debits_exactly_and_ignores_redelivery_and_backwards_readings(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any], tmp_path: Path,
) -> None:
    settings = make_settings()
    made = await customer(conn, "1000", seller=PROVIDER, price=PRICE)
    meter, account = made.meter_id, made.account_id
    await ensure_topics(settings.kafka_bootstrap, [settings.readings_topic], 4)
    first = record(account, meter, [(0, "100.000"), (1, "100.250"), (2, "100.125"),
                                    (3, "101.5")])
    second = record(account, meter, [(4, "102.000001")])
    await produce(settings, [first, first, second])  # `first` delivered twice

    def balance() -> Any:
        return fetch(conn, """SELECT b.amount FROM balances b JOIN register_state s
                                ON s.meter_id = %s WHERE b.account_id = %s
                               AND s.last_ts = %s""", meter, account, T0 + timedelta(seconds=4))

    with service("rating", settings, tmp_path):
        (amount,) = await until(balance)
        # the last record again, after it was booked; then a sentinel on the same key (so the
        # same partition, read after it): once the sentinel is booked, the redelivery was seen
        sentinel = record(account, meter, [(5, "103")])
        await produce(settings, [second, sentinel])
        await until(lambda: fetch(conn, "SELECT 1 FROM charges WHERE meter_id = %s AND "
                                        "interval_end = %s", meter, T0 + timedelta(seconds=5)))
    consumed = Decimal("102.000001") - Decimal("100.000")
    assert amount == Decimal(1000) - consumed * PRICE
    (final,) = await fetch(conn, "SELECT amount FROM balances WHERE account_id = %s", account)
    assert final == Decimal(1000) - (Decimal(103) - Decimal(100)) * PRICE
    (ledger,) = await fetch(conn, "SELECT sum(amount) FROM ledger WHERE account_id = %s", account)
    assert ledger == final  # the opening balance is an entry too
    (charges,) = await fetch(conn, "SELECT count(*) FROM charges WHERE meter_id = %s", meter)
    assert charges == 4
    cur = await conn.execute("SELECT reason FROM dead_letters WHERE payload LIKE %s",
                             (f"%{meter}%",))
    reasons = [reason for (reason,) in await cur.fetchall()]
    assert len(reasons) == 1  # `first` was read twice, its bad reading kept once
    assert reasons[0].startswith("register went backwards: 100.125 kWh < 100.250000 kWh")


async def rating_waits_on_lock(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("""
        SELECT 1 FROM pg_stat_activity
         WHERE application_name = 'meterline-rating' AND datname = current_database()
           AND wait_event_type = 'Lock'""")
    return await cur.fetchone() is not None


async def test_a_worker_that_dies_mid_batch_leaves_it_to_the_next_worker_charged_once(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any], tmp_path: Path,
    pg_url: str,
) -> None:
    settings = make_settings(rating_session_timeout=6.0)  # how soon the dead member expires
    made = await customer(conn, "500", seller=PROVIDER, price=PRICE)
    meter, account = made.meter_id, made.account_id
    await ensure_topics(settings.kafka_bootstrap, [settings.readings_topic], 4)
    await produce(settings, [record(account, meter, [(0, "10"), (1, "11")])])

    first = Child("rating", tmp_path / "first", settings.as_env())
    try:
        first.wait_ready(90)
        await rating_caught_up(settings)  # the first record is booked and committed
        async with await psycopg.AsyncConnection.connect(pg_url) as blocker:
            # hold the balance: the worker's next transaction stops at it, uncommitted
            await blocker.execute("SELECT 1 FROM balances WHERE account_id = %s FOR UPDATE",
                                  (account,))
            await produce(settings, [record(account, meter, [(2, "13.5")])])
            await until(lambda: rating_waits_on_lock(conn), what="the worker to wait")
            first.proc.kill()  # the worker dies mid-batch, its offsets not committed
            first.stop()
        # a new worker of the same group takes the partition over (after the dead member's
        # session times out) and prices the record the dead one never finished
        with service("rating", settings, tmp_path / "second"):
            await rating_caught_up(settings)
    finally:
        first.stop()
    (balance,) = await fetch(conn, "SELECT amount FROM balances WHERE account_id = %s", account)
    assert balance == Decimal(500) - (Decimal("13.5") - Decimal(10)) * PRICE
    (charges,) = await fetch(conn, "SELECT count(*) FROM charges WHERE meter_id = %s", meter)
    assert charges == 2


async def test_a_worker_stops_on_sigterm_even_when_kafka_is_gone(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    port = free_port()
    settings = make_settings(kafka_bootstrap=f"127.0.0.1:{port}", rating_stop_grace=2.0)
    kafka = start_broker(port)
    worker = Child("rating", tmp_path, settings.as_env())
    try:
        worker.wait_ready(90)
        stop_process(kafka)  # Kafka goes away; Faust alone would wait for it forever
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(30) is not None
    finally:
        worker.stop()
        stop_process(kafka)
