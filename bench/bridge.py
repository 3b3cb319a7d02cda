"""Bridge benchmark: gateway batches/s from MQTT to Kafka and PostgreSQL, taking the batches
that wait in groups (one transaction each) against one batch per transaction, in one run.

    python -m bench.bridge [--batches 900] [--meters 20] [--repeats 3]

A backlog of gateway batches (each one sample per meter) is published to the machine's
Mosquitto, as a gateway emptying its outbox after an outage would, and the bridge forwards
it; the time from the first publish to the last batch recorded is measured. Needs the
machine's PostgreSQL and Mosquitto; starts its own Kafka-compatible broker and database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from ingest.bridge import GROUP, Bridge
from meterline import db
from meterline.contracts import ReadingsBatch, Sample
from meterline.fleet import Fleet, FleetMeter, register_fleet
from meterline.kafka import free_port, start_broker, stop_process
from meterline.mqtt import MqttLink
from meterline.settings import Settings
from meterline.units import Register, Unit

T0 = datetime(2026, 11, 1, tzinfo=UTC)


async def one_run(base: Settings, group: int, batches: int, meters: int) -> float:
    run = uuid.uuid4().hex[:8]
    gateway = f"bench-{run}"
    settings = base.model_copy(update={
        "gateway_id": gateway, "readings_topic": f"bench-readings-{run}",
        "bridge_client_id": f"bench-bridge-{run}", "mqtt_topic_root": f"bench-{run}/v1",
    })
    serials = [f"{run}-{n}" for n in range(meters)]
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        await register_fleet(conn, Fleet(gateway_id=gateway, price=Decimal(5), meters=[
            FleetMeter(serial=s, account_id=f"B-{s}", opening_balance=Decimal(100),
                       address="Bench street") for s in serials]))
        await conn.commit()
    payloads = [
        ReadingsBatch(gateway=gateway, seq=k, polled_at=T0 + timedelta(seconds=k), samples=[
            Sample(meter=s, register=Register.ACTIVE_IMPORT, unit=Unit.KWH, value=Decimal(k),
                   ts=T0 + timedelta(seconds=k)) for s in serials]).model_dump_json()
        for k in range(batches)
    ]
    bridge = Bridge(settings, group=group)
    task = asyncio.create_task(bridge.run())
    publisher = MqttLink(settings, f"bench-pub-{run}")
    try:
        await bridge.ready.wait()
        await publisher.connect()
        topic = settings.topic(gateway, "readings")
        start = time.perf_counter()
        for payload in payloads:
            publisher.publish_nowait(topic, payload)
        async with bridge.progress:
            await bridge.progress.wait_for(lambda: bridge.batches >= batches)
        return batches / (time.perf_counter() - start)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await publisher.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=900,
                        help="backlog size; below Mosquitto's per-client queue (1000)")
    parser.add_argument("--meters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    broker = start_broker(port)
    url = f"postgresql://postgres@127.0.0.1:5432/meterline_bench_bridge_{os.getpid()}"
    base = Settings(_env_file=None, database_url=url, kafka_bootstrap=f"127.0.0.1:{port}")
    try:
        await db.create_database(url, exist_ok=False)
        await db.migrate(url)
        grouped: list[float] = []
        single: list[float] = []
        for r in range(args.repeats):
            grouped.append(await one_run(base, GROUP, args.batches, args.meters))
            single.append(await one_run(base, 1, args.batches, args.meters))
            print(f"  run {r}: grouped {grouped[-1]:.0f} batches/s, "
                  f"one per transaction {single[-1]:.0f} batches/s")
        mg, ms = statistics.median(grouped), statistics.median(single)
        print(f"\n## bridge: backlog of {args.batches} batches x {args.meters} samples, "
              f"{args.repeats} runs (median)")
        print(f"grouped (up to {GROUP} batches per transaction): {mg:.0f} batches/s "
              f"({mg * args.meters:.0f} readings/s)")
        print(f"one batch per transaction: {ms:.0f} batches/s ({ms * args.meters:.0f} readings/s)")
        print(f"ratio grouped / one per transaction: {mg / ms:.1f}x")
    finally:
        stop_process(broker)
        await db.drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
