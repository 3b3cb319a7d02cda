"""Registry import benchmark: a bank registry of N payments, each allocated over its
account's providers and services and posted as its own journal entry, imported in batches
(`meterline payments import`), against a naive import that receives one payment per
transaction, in one run.

    python -m bench.registry [--payments 100000] [--naive 3000] [--repeats 1]

Every account buys maintenance, electricity and cold water from three providers and owes one
month; its payment pays that month and splits three ways. The naive import runs on its own
accounts (a sample: it is slow) and its rate is per payment as well. Needs the machine's
PostgreSQL; makes and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg

from billing.payments.imports import import_registry, payment_key
from billing.payments.posting import Payment, receive
from billing.payments.registries import load_layout
from meterline import db
from meterline.ledger import Book, EntryKind, lines_table, post_lines

PERIOD = date(2025, 1, 1)
PAID_ON = "2025-02-05"
PROVIDERS = {"maintenance": "bench-uk", "electricity": "bench-sbyt", "cold_water": "bench-voda"}
CHARGES = {"maintenance": Decimal("1234.56"), "electricity": Decimal("456.78"),
           "cold_water": Decimal("321.09")}
LAYOUT = load_layout("sberbank")

_ACCOUNTS = """
WITH a AS (
    INSERT INTO addresses (region, full_text)
    SELECT '77', 'Москва, ул. Стендовая, д. 1, кв. ' || n FROM generate_series(1, %(n)s) n
    RETURNING id
), numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM a)
INSERT INTO accounts (id, address_id, holder_name, billing_mode)
SELECT %(prefix)s || n, id, 'Абонент ' || n, 'postpaid' FROM numbered
"""

_BALANCES = """
INSERT INTO balances (account_id, provider_id)
SELECT a.id, s.provider FROM accounts a, unnest(%(providers)s::text[]) s(provider)
 WHERE a.id LIKE %(like)s
"""

_SERVICES = """
INSERT INTO account_services (account_id, service, provider_id, valid_from)
SELECT a.id, s.service, s.provider, '2024-01-01'
  FROM accounts a, unnest(%(services)s::text[], %(providers)s::text[]) s(service, provider)
 WHERE a.id LIKE %(like)s
"""

_CHARGES = """
INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
SELECT a.id, s.provider, s.service, %(period)s, -s.amount
  FROM accounts a, unnest(%(services)s::text[], %(providers)s::text[], %(amounts)s::numeric[])
       s(service, provider, amount)
 WHERE a.id LIKE %(like)s
"""


async def accounts(conn: psycopg.AsyncConnection[object], prefix: str, n: int) -> list[str]:
    """``n`` accounts of three services each, owing January."""
    async with conn.transaction():
        await conn.execute(_ACCOUNTS, {"n": n, "prefix": prefix})
        params = {"like": f"{prefix}%", "services": list(PROVIDERS),
                  "providers": list(PROVIDERS.values()), "period": PERIOD,
                  "amounts": [CHARGES[s] for s in PROVIDERS]}
        await conn.execute(_BALANCES, params)
        await conn.execute(_SERVICES, params)
        await lines_table(conn)
        await conn.execute(_CHARGES, params)
        await post_lines(conn, kind=EntryKind.CHARGE, key=f"bench-charges:{prefix}",
                         counter=Book.REVENUE, booked_at=datetime(2025, 1, 31, tzinfo=UTC))
    return [f"{prefix}{k}" for k in range(1, n + 1)]


def registry(account_ids: list[str], run: str) -> bytes:
    total = sum(CHARGES.values(), Decimal(0))
    amount = f"{total:.2f}".replace(".", ",")
    d, m, y = PAID_ON[8:], PAID_ON[5:7], PAID_ON[:4]
    lines = [f"{d}-{m}-{y};10-00-00;9038;1;{run}{n};{a};АБОНЕНТ;АДРЕС;0125;{amount};{amount};"
             "0,00" for n, a in enumerate(account_ids)]
    grand = f"{total * len(account_ids):.2f}".replace(".", ",")
    lines.append(f"={len(account_ids)};{grand};{grand};0,00;0,00;1;{d}-{m}-{y}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


async def batched(conn: psycopg.AsyncConnection[object], n: int) -> float:
    run = uuid.uuid4().hex[:6]
    ids = await accounts(conn, f"B{run}-", n)
    data = registry(ids, run)
    started = time.perf_counter()
    done = await import_registry(conn, data, LAYOUT, f"bench-{run}.txt")
    elapsed = time.perf_counter() - started
    assert done.posted == n and not done.refused, done.summary()
    return elapsed


async def naive(conn: psycopg.AsyncConnection[object], n: int) -> float:
    run = uuid.uuid4().hex[:6]
    ids = await accounts(conn, f"N{run}-", n)
    paid_at = datetime(2025, 2, 5, 9, tzinfo=UTC)
    total = sum(CHARGES.values(), Decimal(0))
    started = time.perf_counter()
    for k, account in enumerate(ids):
        async with conn.transaction():
            await receive(conn, Payment(payment_key(LAYOUT, f"{run}{k}"), "registry", account,
                                        total, paid_at, period=PERIOD))
    return time.perf_counter() - started


async def main(payments: int, sample: int, repeats: int) -> None:
    admin = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = admin.rsplit("/", 1)[0] + f"/meterline_bench_registry_{uuid.uuid4().hex[:6]}"
    await db.create_database(url, exist_ok=False)
    try:
        await db.migrate(url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("INSERT INTO providers (id, name) "
                               "SELECT p, p FROM unnest(%s::text[]) p", (list(PROVIDERS.values()),))
            fast, slow = [], []
            for n in range(repeats):
                fast.append(await batched(conn, payments))
                slow.append(await naive(conn, sample))
                print(f"  run {n}: batched {payments / fast[-1]:,.0f} payments/s, "
                      f"one per transaction {sample / slow[-1]:,.0f} payments/s")
    finally:
        await db.drop_database(url)
    fast_rate, slow_rate = payments / statistics.median(fast), sample / statistics.median(slow)
    print(f"\n## registry import: {payments:,} payments, three providers each, "
          f"{repeats} run(s) (median)\n")
    print("| import | payments/s | per payment | time for the registry |")
    print("|---|---|---|---|")
    print(f"| batched ({payments:,}) | {fast_rate:,.0f} | {1e3 / fast_rate:.2f} ms | "
          f"{statistics.median(fast):.1f} s |")
    print(f"| one transaction per payment ({sample:,}) | {slow_rate:,.0f} | "
          f"{1e3 / slow_rate:.2f} ms | {payments / slow_rate:.1f} s (at that rate) |")
    print(f"\nbatched / one per transaction: {fast_rate / slow_rate:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=3_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.payments, args.naive, args.repeats))
