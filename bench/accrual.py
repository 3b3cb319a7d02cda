"""Penalty accrual benchmark, the whole path on the journal: for N postpaid accounts, each
owing a month of maintenance (a third partly paid late), `meterline penalties accrue` reads
the debts and repayments from the postings, prices every part set-based, posts the
differences as one entry and writes the penalties register. Then a second day's accrual
(only the differences move). The baseline, in the same run on the same books: posting one
entry of one subscriber line per account through the same journal path (`post_lines`), the
least an accrual that moves every account's balance can cost; the ratio tells how far the
accrual is from it whatever else runs on the machine.

Between two days the tables the accrual rewrites are vacuumed (timed apart), as autovacuum
does in the day between two runs (this machine's PostgreSQL runs with autovacuum off): the
balances and the register are updated in place, on pages with room, only once the previous
day's versions are gone.

    python -m bench.accrual [--accounts 1000000] [--repeats 3]

Needs the machine's PostgreSQL; makes and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg

from billing.penalties.journal import accrue
from billing.penalties.rules import load_rules
from meterline import db
from meterline.ledger import Book, EntryKind, lines_table, post_lines

PROVIDER = "bench-uk"
PERIOD = date(2025, 1, 1)  # due 2025-02-10
AS_OF = date(2025, 6, 30)

_ACCOUNTS = """
WITH a AS (
    INSERT INTO addresses (region, full_text)
    SELECT '77', 'кв. ' || n FROM generate_series(1, %(n)s) n RETURNING id
), numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM a)
INSERT INTO accounts (id, address_id, holder_name, billing_mode, payer_group)
SELECT 'A' || n, id, 'Абонент', 'postpaid',
       (ARRAY['citizen', 'housing_org', 'other'])[1 + n %% 3]
  FROM numbered
"""

_BALANCES = "INSERT INTO balances (account_id, provider_id) SELECT id, %s FROM accounts"

_CHARGES = """
INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
SELECT id, %s, 'maintenance', %s, -(1000 + length(id) * 37) FROM accounts
"""

# The baseline: a kopeck off every account, outside any month (so no charge), as one entry.
_FLOOR = """
INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
SELECT id, %s, 'maintenance', NULL, -0.01 FROM accounts
"""

_PAYMENTS = """
INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
SELECT id, %s, 'maintenance', %s, 400 FROM accounts WHERE substr(id, 2)::int %% 3 = 0
"""


async def floor(conn: psycopg.AsyncConnection[object], n: int) -> float:
    """Post one line per account as one entry through the journal's bulk path; seconds."""
    await lines_table(conn)
    await conn.execute(_FLOOR, (PROVIDER,))
    started = time.perf_counter()
    await post_lines(conn, kind=EntryKind.ADJUSTMENT, key=f"bench-floor-{n}",
                     counter=Book.OPENING, reason="benchmark baseline")
    await conn.commit()
    return time.perf_counter() - started


async def vacuum(conn: psycopg.AsyncConnection[object]) -> float:
    """What autovacuum does between two days' runs; seconds."""
    started = time.perf_counter()
    await conn.set_autocommit(True)
    await conn.execute("VACUUM balances, penalty_accruals, postings, entries")
    await conn.set_autocommit(False)
    return time.perf_counter() - started


async def main(accounts: int, repeats: int) -> None:
    admin = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = admin.rsplit("/", 1)[0] + f"/meterline_bench_accrual_{uuid.uuid4().hex[:6]}"
    await db.create_database(url, exist_ok=False)
    rules = load_rules()
    try:
        await db.migrate(url)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            started = time.perf_counter()
            await conn.execute("INSERT INTO providers (id, name) VALUES (%s, %s)",
                               (PROVIDER, PROVIDER))
            await conn.execute(_ACCOUNTS, {"n": accounts})
            await conn.execute(_BALANCES, (PROVIDER,))
            await lines_table(conn)
            await conn.execute(_CHARGES, (PROVIDER, PERIOD))
            await post_lines(conn, kind=EntryKind.CHARGE, key="bench-charges",
                             counter=Book.REVENUE, booked_at=datetime(2025, 1, 31, tzinfo=UTC))
            await conn.execute(_PAYMENTS, (PROVIDER, PERIOD))
            await post_lines(conn, kind=EntryKind.PAYMENT, key="bench-payments",
                             counter=Book.CLEARING, booked_at=datetime(2025, 3, 20, 9, tzinfo=UTC))
            await conn.commit()
            await conn.execute("ANALYZE")
            await conn.commit()
            setup = time.perf_counter() - started
            print(f"  {accounts:,} accounts on the books in {setup:.1f} s")
            first: list[float] = []
            nexts: list[float] = []
            floors: list[float] = []
            for n in range(repeats):  # each repeat accrues two days later than the one before
                print(f"  vacuumed in {await vacuum(conn):.1f} s")
                floors.append(await floor(conn, n))
                print(f"  baseline: {accounts:,} lines posted in {floors[-1]:.1f} s")
                for day, timings in ((AS_OF + timedelta(days=2 * n), first),
                                     (AS_OF + timedelta(days=2 * n + 1), nexts)):
                    print(f"  vacuumed in {await vacuum(conn):.1f} s")
                    started = time.perf_counter()
                    done = await accrue(conn, rules, day)
                    timings.append(time.perf_counter() - started)
                    print(f"  accrual to {day}: {done.charges:,} charges, {done.amount:,.2f} "
                          f"posted in {timings[-1]:.1f} s")
    finally:
        await db.drop_database(url)
    base = statistics.median(floors)
    print(f"\n## penalty accrual on the journal: {accounts:,} accounts, {repeats} runs "
          "(median)\n")
    print("| step | time | accounts/s | / baseline |")
    print("|---|---|---|---|")
    print(f"| baseline: one line per account posted | {base:.1f} s | {accounts / base:,.0f} "
          "| 1.0 |")
    for name, timings in (("accrual, a day's whole penalty (first run)", first[:1]),
                          ("accrual, the next day's differences", nexts)):
        t = statistics.median(timings)
        print(f"| {name} | {t:.1f} s | {accounts / t:,.0f} | {t / base:.1f} |")
    print(f"\nbooks set up in {setup:.1f} s; runs: first "
          f"{', '.join(f'{t:.1f}' for t in first[:1])}; next days "
          f"{', '.join(f'{t:.1f}' for t in nexts)}; baselines "
          f"{', '.join(f'{t:.1f}' for t in floors)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.accounts, args.repeats))
