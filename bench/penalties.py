"""Penalty benchmark: the set-based calculation in PostgreSQL over one unpaid charge per
account for N accounts, against the per-charge Python calculation (the same rules, the same
lines) on a sample, in one run.

    python -m bench.penalties [--accounts 1000000] [--sample 20000] [--repeats 3]

The charges are spread over every law and payer group, due between 2022 and 2026 (so across
the 9.5 % cap), a third of them partly paid. Needs the machine's PostgreSQL; makes and drops
its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal

import psycopg

from billing.penalties.accrual import TOTALS, load_rules
from billing.penalties.calculation import Debt, Repayment, penalty
from billing.penalties.rules import PayerGroup
from billing.penalties.rules import load_rules as rules_from_files
from meterline import db

AS_OF = date(2026, 11, 28)
LAW_OF = {"ZhK-155.14": "maintenance", "ZhK-155.14.1": "capital_repair", "35-FZ": "electricity",
          "190-FZ": "heating", "416-FZ": "cold_water"}

# One part of a charge per account: the unpaid rest (rate of AS_OF) or, for every third, a part
# paid on its own day. Values from the row number, so every run prices the same charges.
_TRANCHES = """
INSERT INTO penalty_tranches (id, law, grp, due, last_day, base, rate_day)
SELECT n,
       (ARRAY['ZhK-155.14', 'ZhK-155.14.1', '35-FZ', '190-FZ', '416-FZ'])[1 + n %% 5],
       (ARRAY['citizen', 'housing_org', 'other'])[1 + (n / 5) %% 3],
       due, last_day, (1 + (n * 7919) %% 900000) / 100.0, last_day
  FROM generate_series(1::bigint, %(n)s) AS n,
       LATERAL (SELECT date '2022-01-10' + ((n * 104729) %% 1750)::int AS due) d,
       LATERAL (SELECT CASE WHEN n %% 3 = 0
                            THEN least(due + 1 + ((n * 31) %% 600)::int, %(as_of)s::date)
                            ELSE %(as_of)s::date END AS last_day) l
"""


async def sql_run(conn: psycopg.AsyncConnection[object], accounts: int) -> float:
    async with conn.transaction():
        await load_rules(conn, RULES)
        await conn.execute(_TRANCHES, {"n": accounts, "as_of": AS_OF})
        await conn.execute("ANALYZE penalty_tranches")
        started = time.perf_counter()
        await conn.execute(f"CREATE TEMP TABLE penalty_totals AS {TOTALS}")
        elapsed = time.perf_counter() - started
        cur = await conn.execute("SELECT count(*), sum(penalty) FROM penalty_totals")
        print(f"  sql: {accounts:,} charges priced in {elapsed:.1f} s "
              f"({await cur.fetchone()})")
        await conn.execute("DROP TABLE penalty_totals")
    return elapsed


def python_run(sample: int) -> float:
    rng = random.Random(5)
    cases = []
    for n in range(sample):
        law = list(LAW_OF)[n % 5]
        due = date(2022, 1, 10) + timedelta(days=rng.randrange(1750))
        debt = Debt("p", LAW_OF[law], due.replace(day=1), Decimal(rng.randint(1, 900000)) / 100,
                    due)
        paid = [Repayment(min(due + timedelta(days=rng.randrange(1, 600)), AS_OF), debt.amount)
                ] if n % 3 == 0 else []
        cases.append((debt, paid, list(PayerGroup)[(n // 5) % 3]))
    started = time.perf_counter()
    for debt, paid, group in cases:
        penalty(debt, paid, as_of=AS_OF, group=group, rules=RULES)
    return time.perf_counter() - started


RULES = rules_from_files()


async def main(accounts: int, sample: int, repeats: int) -> None:
    admin = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = admin.rsplit("/", 1)[0] + f"/meterline_bench_penalties_{uuid.uuid4().hex[:6]}"
    await db.create_database(url, exist_ok=False)
    try:
        await db.migrate(url)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            sql = [await sql_run(conn, accounts) for _ in range(repeats)]
        py = [python_run(sample) for _ in range(repeats)]
    finally:
        await db.drop_database(url)
    sql_rate = accounts / statistics.median(sql)
    py_rate = sample / statistics.median(py)
    print(f"\n## penalties: {accounts:,} unpaid charges (one per account), {repeats} runs "
          "(median)\n")
    print("| path | charges/s | time for the accounts |")
    print("|---|---|---|")
    print(f"| set-based SQL | {sql_rate:,.0f} | {statistics.median(sql):.1f} s |")
    print(f"| per charge, Python | {py_rate:,.0f} | {accounts / py_rate:.1f} s (from a sample "
          f"of {sample:,}) |")
    print(f"\nset-based / per charge: {sql_rate / py_rate:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.accounts, args.sample, args.repeats))
