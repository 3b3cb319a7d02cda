"""Benchmark: where a bill run's time goes, statement by statement, for a run that changes
nothing (the town billed before, billed again): the bill run's own reading, pricing and
comparing, without the journal's writing.

The town (``--accounts``, prefix Q) is generated once into the benchmark's database and
billed once (``--first``); each later call bills it again with nothing changed and prints
the run's time and its most costly statements. To compare two versions of the bill run on the
same town, alternate calls of each (another version's ``billing`` and ``meterline`` first on
PYTHONPATH, e.g. from ``git archive``); the machine's load is printed with each.

    .venv/bin/python -m bench.billrun_statements --accounts 100000 --chunk 5000 [--first]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from collections import defaultdict
from datetime import date
from typing import Any

import psycopg

import billing.billrun.run
from billing.accounts.town import TownSpec, generate_town
from billing.billrun.run import bill
from meterline import db
from meterline.bill_runs import Selection
from meterline.units import Service

DATABASE = os.environ.get("METERLINE_BENCH_DATABASE",
                          "postgresql://postgres@127.0.0.1:5432/meterline_bench_statements")
PERIOD = date(2026, 3, 1)
SERVICES = (Service.MAINTENANCE, Service.CAPITAL_REPAIR, Service.WASTE, Service.COLD_WATER,
            Service.SEWERAGE, Service.HEATING)

spent: dict[str, float] = defaultdict(float)
_execute = psycopg.AsyncConnection.execute


async def _timed(self: psycopg.AsyncConnection[Any], query: Any, params: Any = None,
                 **kwargs: Any) -> Any:
    started = time.perf_counter()
    try:
        return await _execute(self, query, params, **kwargs)
    finally:
        text = query if isinstance(query, str) else str(getattr(query, "_obj", query))
        spent[re.sub(r"\s+", " ", text.strip())[:70]] += time.perf_counter() - started


async def main(accounts: int, chunk: int, first: bool) -> None:
    print(f"bill run code: {billing.billrun.run.__file__}")
    await db.create_database(DATABASE, exist_ok=True)
    await db.migrate(DATABASE)
    async with await psycopg.AsyncConnection.connect(DATABASE, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM accounts WHERE id LIKE 'Q%%'")
        (have,) = await cur.fetchone() or (0,)
        if have < accounts:
            await generate_town(conn, TownSpec(prefix="Q", accounts=accounts, months=3,
                                               services=SERVICES))
            await conn.execute("VACUUM ANALYZE")
        started = time.perf_counter()
        if first:
            await bill(conn, PERIOD, Selection(), "bench", chunk_accounts=chunk, workers=1)
            print(f"first run: {time.perf_counter() - started:.1f} s")
            return
        psycopg.AsyncConnection.execute = _timed  # type: ignore[method-assign]
        await bill(conn, PERIOD, Selection(), "bench", chunk_accounts=chunk, workers=1)
        print(f"again (nothing changed), {accounts} accounts in chunks of {chunk}, 1 worker: "
              f"{time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.1f}")
        for statement, seconds in sorted(spent.items(), key=lambda x: -x[1])[:8]:
            print(f"  {seconds:7.2f} s  {statement}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--first", action="store_true", help="bill the town a first time")
    options = parser.parse_args()
    asyncio.run(main(options.accounts, options.chunk, options.first))
