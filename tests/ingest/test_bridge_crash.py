"""No batch is lost when the bridge dies before Kafka acknowledged it: the MQTT message is
acknowledged only after Kafka did, so the broker delivers it again to the next bridge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer

from meterline.contracts import ReadingsBatch, ReadingsRecord, Sample
from meterline.kafka import free_port, start_broker, stop_process
from meterline.mqtt import MqttLink
from meterline.services import Child
from meterline.settings import Settings
from meterline.units import Register, Unit
from tests.conftest import unique
from tests.factories import customer
from tests.services import service
from tests.waiting import until

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


async def bridge_waits_on_kafka(conn: psycopg.AsyncConnection[Any]) -> bool:
    """The bridge stored the batch's readings and now sits in its open transaction,
    waiting for Kafka's acknowledgement before it commits and acknowledges MQTT."""
    cur = await conn.execute("""
        SELECT 1 FROM pg_stat_activity
         WHERE application_name = 'meterline-bridge' AND datname = current_database()
           AND state = 'idle in transaction' AND query LIKE '%%INSERT INTO readings%%'""")
    return await cur.fetchone() is not None


async def test_a_batch_survives_a_bridge_that_dies_waiting_for_kafka(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any], tmp_path: Path,
) -> None:
    port = free_port()
    settings = make_settings(kafka_bootstrap=f"127.0.0.1:{port}")
    meter = (await customer(conn, "10", gateway_id=settings.gateway_id, price="4.00")).meter_id
    batch = ReadingsBatch(gateway=settings.gateway_id, seq=1, polled_at=T0, samples=[
        Sample(meter=meter, register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
               value=Decimal("42.5"), ts=T0)])
    publisher = MqttLink(settings, unique("pub"))
    await publisher.connect()

    kafka = start_broker(port)
    first = Child("bridge", tmp_path / "first", settings.as_env())
    try:
        first.wait_ready(90)
        stop_process(kafka)  # Kafka goes away while the bridge runs
        await publisher.publish(settings.topic(settings.gateway_id, "readings"),
                                batch.model_dump_json())
        await until(lambda: bridge_waits_on_kafka(conn), what="the bridge to wait on Kafka")
        first.proc.kill()  # the bridge dies without a goodbye
        first.stop()
        # what it did not commit is gone, and the broker still holds the unacknowledged batch
        cur = await conn.execute("SELECT count(*) FROM readings WHERE meter_id = %s", (meter,))
        assert await cur.fetchone() == (0,)

        kafka = start_broker(port)  # Kafka is back (empty: memory storage)
        with service("bridge", settings, tmp_path / "second"):
            await until(lambda: _forwarded(conn, settings.gateway_id),
                        what="the batch to be delivered again and forwarded")
        records = await _records(settings)
    finally:
        first.stop()
        stop_process(kafka)
        await publisher.close()
    assert [value for r in records for value in r.value] == [42_500_000]  # micro-units
    cur = await conn.execute("SELECT count(*) FROM readings WHERE meter_id = %s", (meter,))
    assert await cur.fetchone() == (1,)


async def _forwarded(conn: psycopg.AsyncConnection[Any], gateway: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM ingest_batches WHERE gateway_id = %s AND seq = 1",
                             (gateway,))
    return await cur.fetchone() is not None


async def _records(settings: Settings) -> list[ReadingsRecord]:
    consumer = AIOKafkaConsumer(settings.readings_topic, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=unique("check"), auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                got = [ReadingsRecord.model_validate_json(m.value)
                       for messages in batches.values() for m in messages]
                if got:
                    return got
    finally:
        await consumer.stop()
