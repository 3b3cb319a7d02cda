"""A meter replaced behind a gateway, through the real bridge (Mosquitto, the Kafka-compatible
broker, PostgreSQL) and then rating: the new meter's readings, in the batch that reports the
replacement and in the next one, go on to the old meter's account before the platform has
registered the new serial; rating registers it and charges it, nothing is dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from meterline.contracts import (
    ClockSync,
    ClosingReading,
    MeterReplacement,
    ReadingsBatchV2,
    SampleV2,
)
from meterline.mqtt import MqttLink
from meterline.settings import Settings
from meterline.units import Register, Unit
from rating.ledger import load_tariffs, rate_batch
from rating.records import decode, replacements, routed
from tests.conftest import unique
from tests.factories import customer
from tests.ingest.test_bridge import count, running_bridge
from tests.waiting import until

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def publisher(make_settings: Callable[..., Settings]) -> AsyncIterator[MqttLink]:
    link = MqttLink(make_settings(), unique("pub"))
    await link.connect()
    yield link
    await link.close()


def batch(settings: Settings, seq: int, samples: list[tuple[str, str, int]],
          swap: MeterReplacement | None = None) -> str:
    return ReadingsBatchV2(
        gateway=settings.gateway_id, seq=seq, polled_at=T0 + timedelta(minutes=seq),
        clock=ClockSync(state="synced"), replacements=[swap] if swap else [],
        samples=[SampleV2(meter=m, register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                          value=Decimal(v), ts=T0 + timedelta(minutes=minute))
                 for m, v, minute in samples]).model_dump_json()


async def payloads(settings: Settings, readings: int) -> list[bytes]:
    """The readings topic's records until they hold ``readings`` readings."""
    consumer = AIOKafkaConsumer(settings.readings_topic, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=unique("check"), auto_offset_reset="earliest")
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(20):
            while len(routed(decode(got)[0])) < readings:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    got += [m.value for m in messages]
    finally:
        await consumer.stop()
    return got


async def test_a_replaced_meter_s_new_serial_is_forwarded_and_charged(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    publisher: MqttLink,
) -> None:
    settings = make_settings()
    made = await customer(conn, "100", gateway_id=settings.gateway_id, price="5.00",
                          installation_reading=Decimal(1000), installed_at=T0)
    old, new = made.meter_id, unique("m")
    swap = MeterReplacement(
        device="tcp-1-3", old_meter=old, new_meter=new, profile="eastron-sdm120",
        closing=[ClosingReading(register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                                value=Decimal(1004), ts=T0 + timedelta(minutes=1))],
        detected_at=T0 + timedelta(minutes=2))
    topic = settings.topic(settings.gateway_id, "readings")
    async with running_bridge(settings):
        await publisher.publish(topic, batch(settings, 1, [(new, "2", 2)], swap))
        await publisher.publish(topic, batch(settings, 2, [(new, "3.5", 3)]))

        async def both_stored() -> bool:
            return await count(conn, "SELECT count(*) FROM readings WHERE meter_id = %s",
                               new) == 2

        assert await until(both_stored)
    assert await count(conn, "SELECT count(*) FROM dead_letters WHERE payload LIKE %s",
                       f"%{new}%") == 0
    records, rejected = decode(await payloads(settings, 2))
    result = await rate_batch(conn, routed(records), await load_tariffs(conn), rejected,
                              replacements(records))
    assert (result.replacements, result.dead_letters) == (1, 0)
    # 1000 -> 1004 on the old meter, 2 -> 3.5 on the new one
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s",
                             (made.account_id,))
    assert await cur.fetchone() == (Decimal(100) - Decimal("5.5") * 5,)
