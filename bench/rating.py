"""The rating step alone, by phase: what a rating worker does with a transaction's worth of
Kafka records, without Faust or Kafka, against the machine's PostgreSQL.

    python -m bench.rating [--meters 10000] [--rounds 5] [--per-meter 1]

Each round gives every meter ``--per-meter`` new readings (1: live; more: a gateway emptying
a backlog; v2 records of 2,000 readings, as the bridge produces them) and prices them in
transactions of ``rating_batch_readings``: decoding the records (pydantic, per record),
putting them in one columnar batch, and booking
(``rating.ledger.rate_batch``: database work and the Python around it). Microseconds a
reading per phase, medians of the rounds (the first round only sets each register's
baseline and is left out).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime

import psutil
import psycopg

from meterline import db
from meterline.contracts import ReadingsRecord
from meterline.instants import micros
from meterline.settings import Settings
from rating.ledger import load_tariffs, rate_batch
from rating.records import decode, routed
from simulators.loadgen import PROVIDER, SERIAL_BASE, VirtualFleet, register_virtual_fleet

PER_RECORD = 2_000


def round_payloads(meters: int, k: int, per_meter: int) -> list[bytes]:
    """Round ``k``: ``per_meter`` readings of each meter, a minute apart (a backlog when more
    than one), as v2 records of PER_RECORD readings, each meter's readings in one record."""
    first = micros(datetime(2026, 11, 1, tzinfo=UTC)) + k * per_meter * 60_000_000
    rows = [(n, j) for n in range(meters) for j in range(per_meter)]
    payloads = []
    for start in range(0, len(rows), PER_RECORD):
        chunk = rows[start:start + PER_RECORD]
        serials = [str(SERIAL_BASE + n) for n, _ in chunk]
        payloads.append(ReadingsRecord(
            batches=[("bench", k)], account=[f"V-{s}" for s in serials], meter=serials,
            register=["active_import"] * len(chunk), unit=["kWh"] * len(chunk),
            provider=[PROVIDER.id] * len(chunk), utility=["electricity"] * len(chunk),
            ts=[first + j * 60_000_000 for _, j in chunk],
            value=[1_000_000 * (100 + k * per_meter + j) + n for n, j in chunk],
        ).model_dump_json().encode())
    return payloads


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-meter", type=int, default=1,
                        help="readings of each meter per round (more than 1: a backlog)")
    args = parser.parse_args()
    url = f"postgresql://postgres@127.0.0.1:5432/meterline_bench_rating_{os.getpid()}"
    per_transaction = Settings(_env_file=None).rating_batch_readings
    await db.create_database(url, exist_ok=False)
    try:
        await db.migrate(url)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute("SELECT pg_backend_pid()")
            row = await cur.fetchone()
            assert row is not None
            backend = psutil.Process(row[0])  # PostgreSQL's side of the work: its CPU time
            await register_virtual_fleet(conn, VirtualFleet(args.meters, per_gateway=500))
            await conn.commit()
            book = await load_tariffs(conn)
            phases: dict[str, list[float]] = {"decode": [], "shape": [], "book": []}
            # booking's own Python (CPU time of this process) and PostgreSQL's (its backend's)
            python: list[float] = []
            database: list[float] = []
            for k in range(args.rounds + 1):
                payloads = round_payloads(args.meters, k, args.per_meter)
                step = per_transaction // PER_RECORD or 1
                spent = dict.fromkeys(phases, 0.0)
                booking_cpu = backend_cpu = 0.0
                for start in range(0, len(payloads), step):
                    t0 = time.perf_counter()
                    records, rejected = decode(payloads[start:start + step])
                    t1 = time.perf_counter()
                    shaped = routed(records)
                    t2 = time.perf_counter()
                    cpu, pg = time.process_time(), sum(backend.cpu_times()[:2])
                    await rate_batch(conn, shaped, book, rejected)
                    booking_cpu += time.process_time() - cpu
                    backend_cpu += sum(backend.cpu_times()[:2]) - pg
                    t3 = time.perf_counter()
                    for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                        spent[name] += seconds
                if k:  # round 0 only sets the registers' baselines
                    for name in phases:
                        phases[name].append(spent[name] / (args.meters * args.per_meter) * 1e6)
                    python.append(booking_cpu / (args.meters * args.per_meter) * 1e6)
                    database.append(backend_cpu / (args.meters * args.per_meter) * 1e6)
        medians = {name: statistics.median(values) for name, values in phases.items()}
        whole = sum(medians.values())
        print(f"# rating step, {args.meters} meters x {args.per_meter} readings a round, "
              f"{args.rounds} rounds, transactions of {per_transaction} readings, "
              f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        for name, us in medians.items():
            print(f"{name:7s} {us:7.1f} us/reading")
        print(f"total   {whole:7.1f} us/reading = {1e6 / whole:,.0f} readings/s on one core")
        print(f"CPU of book: the worker's Python {statistics.median(python):.1f} us/reading, "
              f"PostgreSQL's backend {statistics.median(database):.1f} us/reading "
              f"(load average {os.getloadavg()[0]:.1f})")
    finally:
        await db.drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
