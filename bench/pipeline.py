"""Pipeline benchmark: readings/s and poll-to-balance latency through every service, and the
rating step batched against the same step done per event, in one run.

    python -m bench.pipeline [--meters 200] [--gateways 2] [--seconds 30] [--repeats 3]

Part 1 (steady load): simulators -> gateways -> Mosquitto -> bridge -> Kafka -> rating ->
PostgreSQL, every service its own process. Reports readings/s stored and priced, and the
latency from the moment a meter was polled to the commit of the balance update it caused
(charges.rated_at - charges.interval_end), p50 and p99.

Part 2 (rating step): the readings topic is filled with one-reading records (one Faust event
per reading), then drained by a rating worker that prices batches with numpy in one
transaction each (rating_batch_size) and, as the baseline, by one that prices every event on
its own (rating_batch_size=1). Rate = charges booked / (last - first commit). Repeated, medians.

Needs the machine's PostgreSQL and Mosquitto; starts its own Kafka-compatible broker and
database (dropped at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from meterline import db
from meterline.contracts import AccountReadings, Reading
from meterline.fleet import Fleet, FleetMeter, register_fleet
from meterline.kafka import ensure_topics, free_port, start_broker, stop_process
from meterline.services import Child
from meterline.settings import Settings
from meterline.units import Register, Unit, Utility

PRICE = Decimal("5.47")


@contextmanager
def services(names: list[tuple[str, Settings]], log_dir: Path) -> Iterator[None]:
    with ExitStack() as stack:
        for name, settings in names:
            child = Child(name, log_dir, settings.as_env())
            stack.callback(child.stop)
            child.wait_ready(120)
        yield


async def fleet(settings: Settings, gateway: str, serials: list[int]) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        await register_fleet(conn, Fleet(gateway_id=gateway, price=PRICE, meters=[
            FleetMeter(serial=str(s), account_id=f"B-{s}", opening_balance=Decimal(10**9),
                       address=f"Bench street, flat {s}") for s in serials]))
        await conn.commit()


async def query(settings: Settings, sql: str, *args: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        cur = await conn.execute(sql, args)
        return await cur.fetchone()


# --- part 1 --------------------------------------------------------------------------------
_LATENCY = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM rated_at - interval_end)),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM rated_at - interval_end))
  FROM charges WHERE rated_at >= %s AND rated_at < %s
"""
_STORED = "SELECT count(*) FROM readings WHERE received_at >= %s AND received_at < %s"


def steady_load(base: Settings, meters: int, gateways: int, seconds: float,
                log_dir: Path) -> dict[str, float]:
    per_gateway = meters // gateways
    children: list[tuple[str, Settings]] = [("bridge", base), ("rating", base)]
    for g in range(gateways):
        port = free_port()
        serial_base = 50_000_000 + g * 1_000
        gw = base.model_copy(update={
            "gateway_id": f"bench-gw-{g}", "sim_port": port, "sim_meters": per_gateway,
            "sim_serial_base": serial_base, "sim_seed": g + 1,
            "gateway_meters": f"127.0.0.1:{port}/1-{per_gateway}",
            "gateway_state_dir": log_dir / "gateway",
            "gateway_metrics_port": free_port(), "sim_metrics_port": free_port(),
        })
        asyncio.run(fleet(base, gw.gateway_id, list(range(serial_base,
                                                          serial_base + per_gateway))))
        children += [("simulators", gw), ("gateway", gw)]
    with services(children, log_dir):
        time.sleep(10)  # warm-up: let every service reach its steady state before measuring
        start = datetime.now(UTC)
        time.sleep(seconds)  # the measurement window itself
        end = datetime.now(UTC)
        time.sleep(3)  # let readings polled inside the window finish their way to the ledger
    (stored,) = asyncio.run(query(base, _STORED, start, end))
    charged, p50, p99 = asyncio.run(query(base, _LATENCY, start, end))
    return {"offered": meters / base.poll_interval, "stored": stored / seconds,
            "charged": charged / seconds, "p50_ms": float(p50) * 1000, "p99_ms": float(p99) * 1000}


# --- part 2 --------------------------------------------------------------------------------
async def fill_topic(settings: Settings, serials: list[int], per_meter: int) -> int:
    await ensure_topics(settings.kafka_bootstrap, [settings.readings_topic],
                        settings.kafka_partitions)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        sent = []
        for k in range(per_meter):
            for s in serials:
                record = AccountReadings(account=f"B-{s}", gateway="bench", seq=k, readings=[
                    Reading(meter=str(s), register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                            value=Decimal(k) + Decimal("0.125"), ts=t0 + timedelta(seconds=k),
                            provider="energosbyt", utility=Utility.ELECTRICITY)])
                sent.append(await producer.send(settings.readings_topic,
                                                record.model_dump_json().encode(),
                                                key=record.account.encode()))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(serials) * (per_meter - 1)  # the first reading of each meter is its baseline


_DRAINED = """
SELECT count(*), extract(epoch FROM max(rated_at) - min(rated_at))
  FROM charges WHERE meter_id = ANY(%s)
"""


def drain(base: Settings, batch_size: int, meters: int, per_meter: int, run: str,
          log_dir: Path) -> float:
    serial_base = 60_000_000 + int(uuid.uuid4().int % 1000) * 10_000
    serials = list(range(serial_base, serial_base + meters))
    names = [str(s) for s in serials]
    settings = base.model_copy(update={
        "readings_topic": f"bench-{run}", "rating_group": f"bench-{run}",
        "rating_batch_size": batch_size, "rating_web_port": free_port(),
    })
    asyncio.run(fleet(settings, "bench", serials))
    expected = asyncio.run(fill_topic(settings, serials, per_meter))
    with services([("rating", settings)], log_dir / run):
        while True:
            count, span = asyncio.run(query(settings, _DRAINED, names))
            if count >= expected:
                break
            time.sleep(0.5)  # polling the database from outside the worker
    return float(count) / float(span)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batched-readings", type=int, default=40_000)
    parser.add_argument("--per-event-readings", type=int, default=4_000)
    args = parser.parse_args()

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="meterline-bench-"))
    broker = start_broker(port, workdir / "broker.log")
    url = f"postgresql://postgres@127.0.0.1:5432/meterline_bench_{os.getpid()}"
    base = Settings(_env_file=None, database_url=url,
                    kafka_bootstrap=f"127.0.0.1:{port}", poll_interval=args.poll,
                    mqtt_topic_root=f"bench-{os.getpid()}/v1",
                    bridge_client_id=f"bench-bridge-{os.getpid()}",
                    rating_group=f"bench-rating-{os.getpid()}", rating_web_port=free_port(),
                    api_port=free_port(), rating_data_dir=workdir / "rating",
                    bridge_metrics_port=free_port(), gateway_metrics_port=free_port(),
                    sim_metrics_port=free_port())
    try:
        asyncio.run(db.create_database(url, exist_ok=False))
        asyncio.run(db.migrate(url))
        print(f"# pipeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
              f"{platform.machine()}, {os.cpu_count()} cores; logs in {workdir}")

        steady = steady_load(base, args.meters, args.gateways, args.seconds, workdir / "steady")
        print(f"\n## steady load: {args.meters} meters, {args.gateways} gateways, poll every "
              f"{args.poll}s, {args.seconds:.0f}s window")
        print(f"offered {steady['offered']:.0f} readings/s | stored {steady['stored']:.0f}/s | "
              f"priced {steady['charged']:.0f}/s | poll->balance latency p50 "
              f"{steady['p50_ms']:.0f} ms, p99 {steady['p99_ms']:.0f} ms")

        meters = 500
        batched: list[float] = []
        per_event: list[float] = []
        for r in range(args.repeats):
            batched.append(drain(base, base.rating_batch_size, meters,
                                 args.batched_readings // meters, f"batched-{r}", workdir))
            per_event.append(drain(base, 1, meters, args.per_event_readings // meters,
                                   f"per-event-{r}", workdir))
            print(f"  run {r}: batched {batched[-1]:.0f}/s, per event {per_event[-1]:.0f}/s")
        mb, me = statistics.median(batched), statistics.median(per_event)
        print(f"\n## rating step, one reading per Faust event, {args.repeats} runs (median)")
        print(f"batched (rating_batch_size={base.rating_batch_size}): {mb:.0f} readings/s")
        print(f"per event (rating_batch_size=1): {me:.0f} readings/s")
        print(f"ratio batched / per event: {mb / me:.1f}x")
    finally:
        stop_process(broker)
        asyncio.run(db.drop_database(url))


if __name__ == "__main__":
    main()
