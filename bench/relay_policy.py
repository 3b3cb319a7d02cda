"""Disconnection policy benchmark: what applying the policy after every rated batch costs.

    python -m bench.relay_policy [--accounts 1000] [--per-account 10] [--batches 15] [--repeats 3]

Prepaid accounts (one SDM120 with a relay each; odd ones on the seeded prepay cut-off
contract, even ones households on the statutory procedure) with opening balances from 20 to
119 RUB, so that within a run balances cross the warning thresholds and the limit, and cuts
are made or scheduled. The same batches (``bench.booking.batches``) are rated by
``rating.ledger.rate_batch`` on two databases migrated alike:

- policy: as shipped (``meterline.relay.decide_relays``);
- baseline: the prepaid rule before the policy (``bench.booking.old_rule``, one statement: cut
  at balance <= 0, connect above). Both keep the spend per day, which the journal's postings
  trigger maintains since migration 0130 (before it, the baseline ran without it).

Runs alternate; the figure is the median over batches of each run, then the median of runs.
It also times ``decide_relays`` alone on all accounts at once (median of repeats).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg

import rating.ledger
from bench.booking import PRICE, T0, batches, old_rule
from meterline import db
from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.relay import decide_relays
from meterline.tariffs.model import ProviderInfo
from meterline.tariffs.store import register_flat_rate
from meterline.units import Utility
from rating.ledger import load_tariffs, rate_batch
from rating.pricing import RoutedReadings
from rating.tariffs import Tariffs

_FLEET = """
INSERT INTO providers (id, name) VALUES ('bench', 'Bench provider');
INSERT INTO addresses (region, full_text) VALUES ('77', 'Moscow, Bench street 1');
INSERT INTO accounts (id, address_id, holder_name, billing_mode, contract_type)
SELECT 'B-' || n, (SELECT min(id) FROM addresses), 'Bench', 'prepaid',
       CASE WHEN n %% 2 = 1 THEN 'prepay_cutoff' ELSE 'household' END
  FROM generate_series(1, %(n)s) n;
INSERT INTO balances (account_id, provider_id) SELECT 'B-' || n, 'bench'
  FROM generate_series(1, %(n)s) n;
INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id, has_relay)
SELECT 'M-' || n, 'B-' || n, 'bench', 'electricity', 'SDM120', 'gw', true
  FROM generate_series(1, %(n)s) n;
INSERT INTO registers (meter_id, code, unit) SELECT 'M-' || n, 'active_import', 'kWh'
  FROM generate_series(1, %(n)s) n;
INSERT INTO register_state (meter_id, register, last_ts, last_value)
SELECT 'M-' || n, 'active_import', %(t0)s, 0 FROM generate_series(1, %(n)s) n;
"""


async def prepare(url: str, accounts: int, *, baseline: bool) -> None:
    await db.create_database(url, exist_ok=False)
    await db.migrate(url)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for statement in _FLEET.split(";")[:-1]:
            await conn.execute(statement, {"n": accounts, "t0": T0})
        await register_flat_rate(conn, ProviderInfo(id="bench", name="Bench"),
                                 Utility.ELECTRICITY, PRICE, date(2020, 1, 1))
        await post(conn, [
            Entry(EntryKind.OPENING, f"opening:B-{n}:bench", (
                Posting(Book.SUBSCRIBER, "bench", Decimal(20 + n % 100), account_id=f"B-{n}"),
                Posting(Book.OPENING, "bench", -Decimal(20 + n % 100))))
            for n in range(1, accounts + 1)])
        await conn.commit()


async def run(url: str, work: list[RoutedReadings], *, baseline: bool) -> float:
    """Median readings/s over the batches of one run."""
    # rating's booking calls the rule by this name: the baseline swaps in the old one
    setattr(rating.ledger, "decide_relays", old_rule if baseline else decide_relays)  # noqa: B010
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            book: Tariffs = await load_tariffs(conn)
            rates = []
            for batch in work:
                started = time.perf_counter()
                await rate_batch(conn, batch, book)
                rates.append(len(batch) / (time.perf_counter() - started))
    finally:
        setattr(rating.ledger, "decide_relays", decide_relays)  # noqa: B010
    return statistics.median(rates)


async def decide_alone(url: str, accounts: int, repeats: int) -> float:
    """Median seconds of one ``decide_relays`` over every account (a rolled-back
    transaction each, so every repeat decides the same)."""
    names = [f"B-{n}" for n in range(1, accounts + 1)]
    times = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for _ in range(repeats):
            started = time.perf_counter()
            await decide_relays(conn, names)
            times.append(time.perf_counter() - started)
            await conn.rollback()
    return statistics.median(times)


async def counted(url: str) -> tuple[int, int, int, int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM charges), (SELECT count(*) FROM relay_commands), "
            "(SELECT count(*) FROM events), (SELECT count(*) FROM disconnections_due)")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])


async def main(args: argparse.Namespace) -> None:
    base = os.environ.get("METERLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
    policy = f"{base}/meterline_bench_policy_{os.getpid()}"
    baseline = f"{base}/meterline_bench_prepaid_rule_{os.getpid()}"
    try:
        await prepare(policy, args.accounts, baseline=False)
        await prepare(baseline, args.accounts, baseline=True)
        size = args.accounts * args.per_account
        print(f"# disconnection policy benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
              f"{platform.machine()}, {os.cpu_count()} cores")
        print(f"batches of {size} readings ({args.accounts} prepaid accounts x "
              f"{args.per_account}), {args.batches} batches per run")
        ours: list[float] = []
        theirs: list[float] = []
        for r in range(args.repeats):
            work = batches(args.accounts, args.per_account, args.batches,
                           start=r * args.batches * args.per_account)
            ours.append(await run(policy, work, baseline=False))
            theirs.append(await run(baseline, work, baseline=True))
            print(f"  run {r}: with the policy {ours[-1]:,.0f} readings/s, "
                  f"old prepaid rule {theirs[-1]:,.0f} readings/s")
        alone = await decide_alone(policy, args.accounts, 5)
        ours_n, commands, events, waiting = await counted(policy)
        theirs_n, *_ = await counted(baseline)
        assert ours_n == theirs_n, "both ways must charge the same lines"
        mine, old = statistics.median(ours), statistics.median(theirs)
        print(f"rate_batch with the policy: {mine:,.0f} readings/s (median of runs); "
              f"with the old prepaid rule: {old:,.0f} readings/s; ratio {mine / old:.2f}")
        print(f"decide_relays alone on {args.accounts} accounts: {alone * 1000:.1f} ms "
              f"({args.accounts / alone:,.0f} accounts/s)")
        print(f"policy database after the runs: {commands} relay commands, {events} events, "
              f"{waiting} cuts waiting")
    finally:
        for url in (policy, baseline):
            await db.drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--per-account", type=int, default=10)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
