"""The bridge against the real Mosquitto, Kafka-compatible broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from ingest.bridge import Bridge
from meterline.contracts import ReadingsBatch, ReadingsRecord, Sample
from meterline.instants import micros
from meterline.kafka import AccountPartitions
from meterline.mqtt import MqttLink
from meterline.settings import Settings
from meterline.units import Register, Unit
from tests.conftest import unique
from tests.factories import customers
from tests.waiting import until

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def running_bridge(settings: Settings) -> AsyncIterator[Bridge]:
    bridge = Bridge(settings)
    task = asyncio.create_task(bridge.run())
    try:
        async with asyncio.timeout(20):
            await bridge.ready.wait()
        yield bridge
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def two_meters(conn: psycopg.AsyncConnection[Any], settings: Settings) -> list[str]:
    made = await customers(conn, ["100", "100"], gateway_id=settings.gateway_id, price="5.00")
    return [c.meter_id for c in made]


def batch(settings: Settings, seq: int, samples: list[dict[str, Any]]) -> bytes:
    return json.dumps({"v": 1, "gateway": settings.gateway_id, "seq": seq,
                       "polled_at": T0.isoformat(), "samples": samples}).encode()


def sample(meter: str, value: str, at: datetime = T0) -> dict[str, Any]:
    return {"meter": meter, "register": "active_import", "unit": "kWh", "value": value,
            "ts": at.isoformat()}


@pytest.fixture
async def publisher(make_settings: Callable[..., Settings]) -> AsyncIterator[MqttLink]:
    link = MqttLink(make_settings(), unique("pub"))
    await link.connect()
    yield link
    await link.close()


async def count(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> int:
    cur = await conn.execute(query, args)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Forwarded:
    """One reading as the bridge produced it to Kafka."""

    partition: int
    account: str
    meter: str
    ts: int  # microseconds
    value: int  # micro-units
    batches: tuple[tuple[str, int], ...]


async def kafka_records(settings: Settings, expected: int) -> list[Forwarded]:
    """The first ``expected`` readings on the readings topic (v2 records)."""
    consumer = AIOKafkaConsumer(settings.readings_topic, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=unique("check"), auto_offset_reset="earliest")
    await consumer.start()
    got: list[Forwarded] = []
    try:
        async with asyncio.timeout(20):
            while len(got) < expected:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for m in messages:
                        r = ReadingsRecord.model_validate_json(m.value)
                        got += [Forwarded(m.partition, r.account[i], r.meter[i], r.ts[i],
                                          r.value[i], tuple(r.batches)) for i in range(len(r))]
    finally:
        await consumer.stop()
    partitions = AccountPartitions(settings.kafka_partitions)
    assert all(f.partition == partitions.of(f.account) for f in got), "routed by account"
    return got


async def test_a_batch_is_stored_and_forwarded_once_per_account_and_redelivery_changes_nothing(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    publisher: MqttLink,
) -> None:
    settings = make_settings()
    serials = await two_meters(conn, settings)
    topic = settings.topic(settings.gateway_id, "readings")
    payload = ReadingsBatch(gateway=settings.gateway_id, seq=7, polled_at=T0, samples=[
        Sample(meter=s, register=Register.ACTIVE_IMPORT, unit=Unit.KWH, value=Decimal("12.345"),
               ts=T0) for s in serials
    ]).model_dump_json()
    async with running_bridge(settings):
        await publisher.publish(topic, payload)
        await publisher.publish(topic, payload)  # the same batch again
        await until(lambda: count(
            conn, "SELECT count(*) FROM ingest_batches WHERE gateway_id = %s", settings.gateway_id))
        stored = await until(lambda: count(
            conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)", serials))
    records = await kafka_records(settings, 2)
    assert stored == 2
    assert sorted(r.meter for r in records) == sorted(serials)
    assert all(r.value == 12_345_000 for r in records)
    assert all(r.batches == ((settings.gateway_id, 7),) for r in records)
    # the redelivered batch was skipped: each reading once
    assert len(records) == 2


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json at all", "malformed readings batch"),
    (b'{"v": 1, "gateway": "x"}', "malformed readings batch"),
    (b'{"v": 2, "gateway": "GW", "seq": 1, "polled_at": "2026-11-01T00:00:00Z", "samples": []}',
     "malformed readings batch"),
])
async def test_malformed_batches_are_dead_lettered(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    publisher: MqttLink, payload: bytes, reason: str,
) -> None:
    settings = make_settings()
    marker = unique("bad")
    payload = payload.replace(b'"GW"', json.dumps(settings.gateway_id).encode())
    topic = settings.topic(settings.gateway_id, "readings")
    async with running_bridge(settings):
        await publisher.publish(topic, payload + marker.encode())
        await publisher.publish(topic, payload + marker.encode())  # delivered again
        await publisher.publish(topic, batch(settings, 1, []))  # a good batch behind both
        await until(lambda: count(
            conn, "SELECT count(*) FROM ingest_batches WHERE gateway_id = %s", settings.gateway_id))
    row = await _dead_letter(conn, marker)
    assert row[0] == "mqtt" and row[1].startswith(reason)
    assert await count(conn, "SELECT count(*) FROM dead_letters WHERE payload LIKE %s",
                       f"%{marker}%") == 1


async def _dead_letter(conn: psycopg.AsyncConnection[Any], marker: str) -> Any:
    cur = await conn.execute(
        "SELECT source, reason, payload FROM dead_letters WHERE payload LIKE %s",
        (f"%{marker}%",))
    return await cur.fetchone()


async def test_bad_samples_are_dead_lettered_alone_and_the_rest_goes_on(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    publisher: MqttLink,
) -> None:
    settings = make_settings()
    good, other = await two_meters(conn, settings)
    stranger = unique("unknown")
    samples = [
        sample(good, "100.5"),
        sample(other, "-1"),  # negative
        sample(other, "lots", T0 + timedelta(seconds=1)),  # not a number
        sample(stranger, "3"),  # unknown meter
        {**sample(other, "5"), "unit": "m3"},  # wrong unit for that register
        sample(other, "6", datetime.now(UTC) + timedelta(hours=1)),  # from the future
    ]
    async with running_bridge(settings):
        await publisher.publish(settings.topic(settings.gateway_id, "readings"),
                                batch(settings, 1, samples))
        await until(lambda: count(
            conn, "SELECT count(*) FROM ingest_batches WHERE gateway_id = %s", settings.gateway_id))
    cur = await conn.execute(
        "SELECT reason FROM dead_letters WHERE reason LIKE %s ORDER BY id",
        (f"%{settings.gateway_id}/1%",))
    reasons = [r for (r,) in await cur.fetchall()]
    assert len(reasons) == 5
    assert any("greater than or equal to 0" in r for r in reasons)
    assert any("decimal" in r.lower() for r in reasons)
    assert any(f"unknown meter {stranger}" in r for r in reasons)
    assert any("is in kWh, sample says m3" in r for r in reasons)
    assert any("is from the future" in r for r in reasons)
    assert await count(conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)",
                       [good, other]) == 1
    records = await kafka_records(settings, 1)
    assert [r.meter for r in records] == [good]


async def test_a_batch_on_another_gateways_topic_is_refused(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    publisher: MqttLink,
) -> None:
    settings = make_settings()
    marker = unique("spoof")
    async with running_bridge(settings):
        await publisher.publish(settings.topic(marker, "readings"), batch(settings, 1, []))
        row = await until(lambda: _dead_letter(conn, settings.gateway_id))
    assert "came on" in row[1] and marker in row[1]


async def test_a_group_of_batches_is_taken_in_one_go_with_duplicates_inside_it_skipped(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
) -> None:
    settings = make_settings()
    serials = await two_meters(conn, settings)
    first = batch(settings, 1, [sample(s, "1.5") for s in serials])
    second = batch(settings, 2, [sample(s, "2.5", T0 + timedelta(seconds=1)) for s in serials])
    marker = unique("garbage")
    bridge = Bridge(settings)
    await bridge.producer.start()
    try:
        await bridge.forward(conn, [(settings.gateway_id, first), (settings.gateway_id, first),
                                    (settings.gateway_id, marker.encode()),
                                    (settings.gateway_id, second)])
    finally:
        await bridge.producer.stop()
    assert bridge.batches == 2
    assert await count(conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)",
                       serials) == 4
    assert await count(conn, "SELECT count(*) FROM ingest_batches WHERE gateway_id = %s",
                       settings.gateway_id) == 2
    assert await count(conn, "SELECT count(*) FROM dead_letters WHERE payload = %s",
                       marker) == 1
    records = await kafka_records(settings, 4)
    t0 = micros(T0)
    assert sorted((r.ts, r.meter) for r in records) == sorted(
        (t0 + k * 1_000_000, s) for k in (0, 1) for s in serials)
    assert {r.batches for r in records} == {((settings.gateway_id, 1), (settings.gateway_id, 2))}
