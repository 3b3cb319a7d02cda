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

    python -m bench.accrual [--accounts 1000000] [--repeats 3] [--books DATABASE] [--as-of DAY]

Needs the machine's PostgreSQL; makes and drops its own database. With ``--books NAME`` the
books are set up once in database NAME and kept, and each run works on a copy of it (so a
1,000,000-account rerun starts at once, from the same day).
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
from psycopg import sql

from billing.penalties.journal import Accrued, accrue
from billing.penalties.rules import PenaltyRules, load_rules
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


async def floor(url: str, n: int) -> float:
    """Post one line per account as one entry through the journal's bulk path; seconds."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await lines_table(conn)
        await conn.execute(_FLOOR, (PROVIDER,))
        started = time.perf_counter()
        await post_lines(conn, kind=EntryKind.ADJUSTMENT, key=f"bench-floor-{n}",
                         counter=Book.OPENING, reason="benchmark baseline")
        await conn.commit()
        return time.perf_counter() - started


async def vacuum(url: str) -> float:
    """What autovacuum does between two days' runs; seconds."""
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("VACUUM balances, penalty_accruals, postings, entries")
    return time.perf_counter() - started


async def accrual(url: str, rules: PenaltyRules, day: date) -> tuple[float, Accrued]:
    """One day's accrual in a session of its own, as `meterline penalties accrue` runs it."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        started = time.perf_counter()
        done = await accrue(conn, rules, day)
        return time.perf_counter() - started, done


async def set_up_books(url: str, accounts: int) -> float:
    """Migrate and fill an empty database with the books; seconds."""
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
        await conn.set_autocommit(True)
        await conn.execute("VACUUM ANALYZE")
        return time.perf_counter() - started


async def books_kept(base: str, name: str, accounts: int) -> float | None:
    """The books in database ``name``, set up once and kept; seconds when set up now."""
    url = f"{base}/{name}"
    if await db.create_database(url, exist_ok=True):
        return await set_up_books(url, accounts)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT count(*) FROM accounts")
        row = await cur.fetchone()
        if row is None or row[0] != accounts:
            raise SystemExit(f"{name} holds {row[0] if row else 0:,} accounts, not {accounts:,}")
    return None


async def main(accounts: int, repeats: int, books: str | None, as_of: date) -> None:
    admin = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    base = admin.rsplit("/", 1)[0]
    url = f"{base}/meterline_bench_accrual_{uuid.uuid4().hex[:6]}"
    rules = load_rules()
    if books is None:
        await db.create_database(url, exist_ok=False)
        setup: float | None = await set_up_books(url, accounts)
    else:  # a copy of the kept books, so every run starts from the same day
        setup = await books_kept(base, books, accounts)
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(url.rsplit("/", 1)[1]), sql.Identifier(books)))
        await db.migrate(url)  # migrations added since the books were set up
    print(f"  {accounts:,} accounts on the books" + (
        f", set up in {setup:.1f} s" if setup is not None else f" (kept in {books})"))
    first: list[float] = []
    nexts: list[float] = []
    floors: list[float] = []
    try:
        for n in range(repeats):  # each repeat accrues two days later than the one before
            print(f"  vacuumed in {await vacuum(url):.1f} s")
            floors.append(await floor(url, n))
            print(f"  baseline: {accounts:,} lines posted in {floors[-1]:.1f} s")
            for day, timings in ((as_of + timedelta(days=2 * n), first),
                                 (as_of + timedelta(days=2 * n + 1), nexts)):
                print(f"  vacuumed in {await vacuum(url):.1f} s")
                took, done = await accrual(url, rules, day)
                timings.append(took)
                print(f"  accrual to {day}: {done.charges:,} charges, {done.amount:,.2f} "
                      f"posted in {took:.1f} s")
    finally:
        await db.drop_database(url)
    floor_s = statistics.median(floors)
    print(f"\n## penalty accrual on the journal: {accounts:,} accounts, {repeats} runs "
          "(median)\n")
    print("| step | time | accounts/s | / baseline |")
    print("|---|---|---|---|")
    print(f"| baseline: one line per account posted | {floor_s:.1f} s | "
          f"{accounts / floor_s:,.0f} "
          "| 1.0 |")
    for name, timings in (("accrual, a day's whole penalty (first run)", first[:1]),
                          ("accrual, the next day's differences", nexts)):
        t = statistics.median(timings)
        print(f"| {name} | {t:.1f} s | {accounts / t:,.0f} | {t / floor_s:.1f} |")
    print(f"\nbooks set up in {f'{setup:.1f} s' if setup is not None else 'an earlier run'}; "
          "runs: first "
          f"{', '.join(f'{t:.1f}' for t in first[:1])}; next days "
          f"{', '.join(f'{t:.1f}' for t in nexts)}; baselines "
          f"{', '.join(f'{t:.1f}' for t in floors)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--books", metavar="DATABASE",
                        help="keep the books in this database (set up on the first run) and run "
                             "on a copy of it, dropped after")
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF,
                        help="the first day accrued (default %(default)s: the next day is a "
                             "month's first, when the register opens the month's rows)")
    args = parser.parse_args()
    asyncio.run(main(args.accounts, args.repeats, args.books, args.as_of))
