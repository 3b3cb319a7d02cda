"""Benchmark: the bill run of a generated town of ``--accounts`` accounts with six services
each (maintenance and capital repair per m², waste per resident, cold water by meters read
by people or the norm, sewerage from it, heating by house meters or the norm).

The town is generated once into a database of the benchmark's own and kept (``--fresh``
makes it again); each run empties the bills and bills the town's third month twice: the
first run (every bill new), then the same run again (nothing changed: the baseline of what
preparing and comparing cost), with what autovacuum would do before each (timed apart).
Times per phase; accounts per second.

    .venv/bin/python -m bench.billrun [--accounts 1000000] [--chunk 50000] [--workers 2]
                                      [--fresh]

To compare two versions of the bill run on the same town, run it as a script with the other
version's ``billing`` and ``meterline`` first on PYTHONPATH (e.g. from ``git archive``):
``PYTHONPATH=/tmp/before .venv/bin/python bench/billrun.py ...``; it prints which it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import date
from typing import Any

import psycopg

import billing.billrun.run
from billing.accounts.town import TownSpec, generate_town
from billing.billrun.run import Run, bill
from meterline import db
from meterline.bill_runs import Selection
from meterline.units import Service

# its own database (METERLINE_BENCH_DATABASE: another, so that two benchmarks do not share one)
DATABASE = os.environ.get("METERLINE_BENCH_DATABASE",
                          "postgresql://postgres@127.0.0.1:5432/meterline_bench_billrun")
PERIOD = date(2026, 3, 1)
SERVICES = (Service.MAINTENANCE, Service.CAPITAL_REPAIR, Service.WASTE, Service.COLD_WATER,
            Service.SEWERAGE, Service.HEATING)


async def town(conn: psycopg.AsyncConnection[Any], accounts: int) -> None:
    cur = await conn.execute("SELECT count(*) FROM accounts WHERE id LIKE 'M%%'")
    (have,) = await cur.fetchone() or (0,)
    if have >= accounts:
        return
    started = time.perf_counter()
    await generate_town(conn, TownSpec(prefix="M", accounts=accounts, months=3,
                                       services=SERVICES))
    await conn.execute("VACUUM ANALYZE")
    print(f"town of {accounts} accounts generated in {time.perf_counter() - started:.0f} s")


async def vacuum(conn: psycopg.AsyncConnection[Any]) -> None:
    """What autovacuum would have done between runs (it may be off on a development
    machine): the balances the last run moved vacuumed (so the next run's updates stay on
    their pages), the bill analysed. Timed apart from the runs."""
    started = time.perf_counter()
    await conn.execute("VACUUM (ANALYZE) balances, bill_lines, meter_volumes")
    print(f"(vacuum and analyze between runs: {time.perf_counter() - started:.1f} s)")


async def one_run(conn: psycopg.AsyncConnection[Any], chunk: int, workers: int,
                  label: str) -> float:
    started = time.perf_counter()
    prepared = started

    def on_start(_: Run) -> None:
        nonlocal prepared
        prepared = time.perf_counter()

    run = await bill(conn, PERIOD, Selection(), "bench", chunk_accounts=chunk,
                     workers=workers, database_url=DATABASE, on_start=on_start)
    done = time.perf_counter()
    cur = await conn.execute("SELECT changed FROM bill_runs WHERE id = %s", (run.id,))
    (changed,) = await cur.fetchone() or (0,)
    cur = await conn.execute("SELECT count(*) FROM bill_lines WHERE period = %s", (PERIOD,))
    (lines,) = await cur.fetchone() or (0,)
    seconds = done - started
    print(f"{label}: {run.accounts} accounts in {seconds:.1f} s ({run.accounts / seconds:,.0f} "
          f"accounts/s; start and prepare {prepared - started:.1f} s, {run.chunks} chunks on "
          f"{workers} workers {done - prepared:.1f} s); {changed} bills changed, {lines} "
          f"lines; load average "
          f"{os.getloadavg()[0]:.1f}")
    return seconds


async def main(accounts: int, chunk: int, workers: int, fresh: bool) -> None:
    if fresh:
        await db.drop_database(DATABASE)
    await db.create_database(DATABASE)
    await db.migrate(DATABASE)
    async with await psycopg.AsyncConnection.connect(DATABASE, autocommit=True) as conn:
        await town(conn, accounts)
        await conn.execute("TRUNCATE bill_lines, meter_volumes")
        await vacuum(conn)
        print(f"bill run code: {billing.billrun.run.__file__}")
        print(f"## bill run of {accounts} accounts, {len(SERVICES)} services each, chunks of "
              f"{chunk}; load average {os.getloadavg()[0]:.1f} at the start")
        first = await one_run(conn, chunk, workers, "first run (every bill new)")
        await vacuum(conn)
        again = await one_run(conn, chunk, workers, "again (nothing changed)")
        print(f"ratio first / again: {first / again:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="generate the town again")
    options = parser.parse_args()
    asyncio.run(main(options.accounts, options.chunk, options.workers, options.fresh))
