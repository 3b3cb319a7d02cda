"""Booking benchmark: readings/s of charges priced and booked in PostgreSQL by
``rating.ledger.rate_batch`` (charge lines + one journal entry per batch, debits aggregated
per account), against the same booking on the schema before migration 0120 (foreign keys and
the balance guard checked per row) and against the skeleton's booking (charge lines + a direct
balance update, no journal), in the same run, on the same batches.

    python -m bench.booking [--accounts 1000] [--per-account 10] [--batches 15] [--repeats 3]

Each batch holds ``accounts x per-account`` readings (one meter per account), fed as columns
(``RoutedReadings``, as a Kafka v2 adapter would) straight to the rating step, one
transaction per batch on the machine's PostgreSQL: no Kafka, no Faust. Every way runs the
same pricing (``price_batch``); the skeleton's runs on a database migrated to just before
the journal, with that schema's owner check and register state. Runs alternate;
the figure is the median over batches of each run, then the median of the runs. Each way's
CPU per batch is given too, of its PostgreSQL session (when the server runs on this machine)
and of this process: on a machine shared with others it is what the load disturbs least.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
import psycopg

from meterline import db
from meterline.db import copy_rows
from meterline.money import from_micro, from_pico, to_micro
from meterline.tariffs.model import Basis, ProviderInfo, TariffPlan, TariffVersion
from meterline.tariffs.pricing import BandState, PlanStep, TariffSet, Track
from meterline.tariffs.store import register_flat_rate
from meterline.tariffs.zones import FLAT
from meterline.units import Service, Utility
from rating.core import NO_STATE, from_micros, micros
from rating.ledger import load_tariffs, rate_batch
from rating.pricing import BatchTariffs, RoutedReadings, price_batch
from rating.tariffs import Tariffs

BEFORE_THE_JOURNAL = "0006_reading_sources"
SET_BASED_CACHE = "0120_balance_cache_set_based"
PRICE = Decimal("5.47")
T0 = datetime(2026, 11, 1, tzinfo=UTC)
MINUTE = 60_000_000  # microseconds

_FLEET = """
INSERT INTO providers (id, name) VALUES ('bench', 'Bench provider');
INSERT INTO addresses (region, full_text) VALUES ('77', 'Moscow, Bench street 1');
INSERT INTO accounts (id, address_id, holder_name, billing_mode)
SELECT 'B-' || n, (SELECT min(id) FROM addresses), 'Bench', 'postpaid'
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
INSERT INTO tariffs (provider_id, utility, unit, price, valid_from)
VALUES ('bench', 'electricity', 'kWh', 5.47, '2020-01-01Z');
"""

# the skeleton had no tariff books: its one flat tariff, priced by the same core
_SKELETON_PLAN = TariffPlan(
    provider_id="bench", code="flat", name="Flat", service=Service.ELECTRICITY,
    utility=Utility.ELECTRICITY, basis=Basis.KWH, default=True,
    versions=(TariffVersion(valid_from=date(2020, 1, 1),
                            zones=FLAT, prices=((PRICE,),)),))
_SKELETON_SET = TariffSet({1: _SKELETON_PLAN})


def skeleton_tariffs(batch: RoutedReadings) -> BatchTariffs:
    accounts: dict[str, int] = {}
    key = np.array([accounts.setdefault(a, len(accounts)) for a in batch.account],
                   dtype=np.int64)
    return BatchTariffs(
        set=_SKELETON_SET, version_ids=np.ones(len(_SKELETON_SET.rates), dtype=np.int64),
        tracks=[Track("Europe/Moscow", (PlanStep(None, 1),))],
        track=np.zeros(len(batch), dtype=np.int64), key=key, volumes=BandState())


def batches(accounts: int, per_account: int, count: int, start: int) -> list[RoutedReadings]:
    """``count`` batches; reading k of a meter is taken ``start + k`` minutes after T0 and
    its register grows by 0.1 to 1 kWh each time."""
    names = [f"{n}" for n in range(1, accounts + 1)]
    # each meter's register grows by its own step (micro-kWh), the same in every run
    increment = np.random.default_rng(0).integers(100_000, 1_000_000, accounts, dtype=np.int64)
    rng = np.random.default_rng(start)
    size = accounts * per_account
    out = []
    for b in range(count):
        steps = np.arange(per_account, dtype=np.int64) + start + b * per_account
        ts = np.tile(micros(T0) + (steps + 1) * MINUTE, accounts)  # account after account
        value = (increment[:, None] * (steps + 1)[None, :]).ravel()
        order = rng.permutation(size)  # readings arrive mixed up, as in a real batch
        meter_of = np.repeat(np.arange(accounts), per_account)[order]
        out.append(RoutedReadings(
            account=[f"B-{names[m]}" for m in meter_of], meter=[f"M-{names[m]}" for m in meter_of],
            register=["active_import"] * size, unit=["kWh"] * size,
            provider=["bench"] * size, utility=["electricity"] * size,
            ts=ts[order], value=value[order]))
    return out


# --- the skeleton's booking: charge lines and a direct balance update ----------------------

_SKELETON_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS charges_in (
    meter_id text, register text, interval_start timestamptz, interval_end timestamptz,
    quantity numeric, unit text, tariff_id bigint, unit_price numeric, amount numeric,
    account_id text, provider_id text
) ON COMMIT DELETE ROWS
"""
_SKELETON_COLUMNS = (
    "meter_id", "register", "interval_start", "interval_end", "quantity", "unit", "tariff_id",
    "unit_price", "amount", "account_id", "provider_id",
)
_SKELETON_TYPES = (
    "text", "text", "timestamptz", "timestamptz", "numeric", "text", "int8", "numeric",
    "numeric", "text", "text",
)
_SKELETON_BOOK = """
WITH inserted AS (
    INSERT INTO charges (meter_id, register, interval_start, interval_end, quantity, unit,
                         tariff_id, unit_price, amount, account_id, provider_id, rated_at)
    SELECT meter_id, register, interval_start, interval_end, quantity, unit,
           tariff_id, unit_price, amount, account_id, provider_id, clock_timestamp()
      FROM charges_in
    ON CONFLICT (meter_id, register, interval_end) DO NOTHING
    RETURNING account_id, provider_id, amount
), totals AS (
    SELECT account_id, provider_id, sum(amount) AS amount, count(*) AS n
      FROM inserted GROUP BY account_id, provider_id
)
UPDATE balances b
   SET amount = b.amount - totals.amount, updated_at = now()
  FROM totals
 WHERE b.account_id = totals.account_id AND b.provider_id = totals.provider_id
RETURNING b.account_id
"""
_SAVE_STATE = """
INSERT INTO register_state (meter_id, register, last_ts, last_value)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::numeric[])
ON CONFLICT (meter_id, register) DO UPDATE
   SET last_ts = excluded.last_ts, last_value = excluded.last_value
 WHERE register_state.last_ts < excluded.last_ts
"""


_SKELETON_OWNERS = "SELECT id, account_id, provider_id FROM meters WHERE id = ANY(%s)"
_SKELETON_STATE = """
SELECT s.meter_id, s.register, s.last_ts, s.last_value
  FROM register_state s
  JOIN unnest(%s::text[], %s::text[]) AS k(meter_id, register)
    ON s.meter_id = k.meter_id AND s.register = k.register
   FOR UPDATE OF s
"""


async def skeleton_owned(conn: psycopg.AsyncConnection[Any],
                         batch: RoutedReadings) -> npt.NDArray[np.bool_]:
    """The skeleton's owner check (its meters table had no profiles or replacements)."""
    cur = await conn.execute(_SKELETON_OWNERS, (sorted(set(batch.meter)),))
    owners = {meter: (account, provider) for meter, account, provider in await cur.fetchall()}
    return np.fromiter((owners.get(m) == (a, p) for m, a, p in zip(
        batch.meter, batch.account, batch.provider, strict=True)), dtype=bool, count=len(batch))


async def skeleton_state(conn: psycopg.AsyncConnection[Any], keys: Sequence[tuple[str, str]]
                         ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The skeleton's register state (last reading only), locked as rating locks it."""
    index = {key: i for i, key in enumerate(keys)}
    ts = np.full(len(keys), NO_STATE, dtype=np.int64)
    value = np.zeros(len(keys), dtype=np.int64)
    cur = await conn.execute(_SKELETON_STATE, ([k[0] for k in keys], [k[1] for k in keys]))
    for meter, register, last_ts, last_value in await cur.fetchall():
        ts[index[(meter, register)]] = micros(last_ts)
        value[index[(meter, register)]] = to_micro(last_value)
    return ts, value


# the skeleton's prepaid rule, before the disconnection policy: every prepaid account cut at
# zero, at any hour, reconnected when positive (bench.booking's and bench.relay_policy's baseline)
_OLD_RULE = """
WITH wanted AS (
    SELECT m.id, CASE WHEN b.amount > 0 THEN 'connected' ELSE 'disconnected' END AS state
      FROM meters m
      JOIN accounts a ON a.id = m.account_id
      JOIN balances b ON b.account_id = m.account_id AND b.provider_id = m.provider_id
     WHERE m.account_id = ANY(%(accounts)s) AND a.billing_mode = 'prepaid' AND m.has_relay
), changed AS (
    UPDATE meters m SET relay_state = w.state
      FROM wanted w
     WHERE m.id = w.id AND m.relay_state <> w.state
    RETURNING m.id, w.state
)
INSERT INTO relay_commands (meter_id, action, reason)
SELECT id, CASE state WHEN 'connected' THEN 'connect' ELSE 'disconnect' END,
       CASE state WHEN 'connected' THEN 'balance positive' ELSE 'balance exhausted' END
  FROM changed
RETURNING meter_id, action
"""


async def old_rule(conn: psycopg.AsyncConnection[Any], account_ids: Collection[str],
                   **_: Any) -> list[tuple[str, str]]:
    cur = await conn.execute(_OLD_RULE, {"accounts": list(account_ids)})
    return [(m, a) for m, a in await cur.fetchall()]


async def skeleton_rate_batch(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings,
                              _: Tariffs | None) -> None:
    """The skeleton's rating step (before the journal), on the same pricing."""
    series, keys = batch.series()
    async with conn.transaction():
        owned = await skeleton_owned(conn, batch)
        state_ts, state_value = await skeleton_state(conn, keys)
        priced = price_batch(batch, series, owned, state_ts, state_value,
                             skeleton_tariffs(batch))
        lines = priced.lines
        await conn.execute(_SKELETON_STAGING)
        async with conn.cursor() as cur:
            await copy_rows(cur, "charges_in", _SKELETON_COLUMNS, _SKELETON_TYPES, (
                (batch.meter[i], batch.register[i], from_micros(start), from_micros(end),
                 from_micro(q), batch.unit[i], 1, from_micro(p), from_pico(amount),
                 batch.account[i], batch.provider[i])
                for i, start, end, q, p, amount in zip(
                    lines.reading.tolist(), lines.start.tolist(), lines.end.tolist(),
                    lines.quantity.tolist(), lines.unit_price.tolist(), lines.amount,
                    strict=True)))
            await cur.execute(_SKELETON_BOOK)
            accounts = sorted({a for (a,) in await cur.fetchall()})
        await conn.execute(_SAVE_STATE, (
            [keys[s][0] for s in priced.state_series.tolist()],
            [keys[s][1] for s in priced.state_series.tolist()],
            [from_micros(t) for t in priced.state_ts.tolist()],
            [from_micro(v) for v in priced.state_value.tolist()]))
        await old_rule(conn, accounts)


async def journal_rate_batch(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings,
                             tariffs: Tariffs | None) -> None:
    assert tariffs is not None
    await rate_batch(conn, batch, tariffs)


Booker = Callable[[psycopg.AsyncConnection[Any], RoutedReadings, Tariffs | None],
                  Awaitable[None]]


@dataclass(frozen=True)
class Run:
    rate: float  # median readings/s over the batches
    postgres_ms: float | None  # CPU of the database session per batch (None: not local)
    rating_ms: float  # CPU of this process per batch (pricing, encoding, the driver)


def backend_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of the PostgreSQL backend ``pid``, when it runs here."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.Error, OSError):
        return None
    return float(times.user + times.system)


async def run(url: str, booker: Booker, work: list[RoutedReadings]) -> Run:
    """Median readings/s over the batches of one run, and the CPU both sides spent on them:
    on a machine shared with others the CPU time is what the load disturbs least."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        book = await load_tariffs(conn) if booker is journal_rate_batch else None
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
        assert row is not None
        backend_before, own_before = backend_cpu(row[0]), time.process_time()
        rates = []
        for batch in work:
            started = time.perf_counter()
            await booker(conn, batch, book)
            rates.append(len(batch) / (time.perf_counter() - started))
        backend_after, own_after = backend_cpu(row[0]), time.process_time()
    postgres = (None if backend_before is None or backend_after is None
                else (backend_after - backend_before) / len(work) * 1000)
    return Run(statistics.median(rates), postgres, (own_after - own_before) / len(work) * 1000)


def cpu_text(runs: Sequence[Run]) -> str:
    """The median CPU per batch of ``runs``, both sides."""
    rating = statistics.median(r.rating_ms for r in runs)
    known = [r.postgres_ms for r in runs if r.postgres_ms is not None]
    postgres = f"postgres {statistics.median(known):.0f} ms + " if known else ""
    return f"{postgres}rating {rating:.0f} ms CPU a batch"


async def counted(url: str) -> tuple[int, Decimal]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT count(*), coalesce(sum(amount), 0) FROM charges")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), row[1]


def before_the_set_based_cache() -> str:
    """The last migration before the balance cache and the journal's references were checked
    per statement (0120): the journal's booking as it was, for the ratio."""
    return max(v for v, _ in db.migration_files() if v < SET_BASED_CACHE)


async def main(args: argparse.Namespace) -> None:
    base = os.environ.get("METERLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
    ways = {  # name: (database, migrated until, booking)
        "journal": (f"{base}/meterline_bench_booking_journal_{os.getpid()}", None,
                    journal_rate_batch),
        "journal before 0120": (f"{base}/meterline_bench_booking_rowwise_{os.getpid()}",
                                before_the_set_based_cache(), journal_rate_batch),
        "skeleton": (f"{base}/meterline_bench_booking_skeleton_{os.getpid()}", BEFORE_THE_JOURNAL,
                     skeleton_rate_batch),
    }
    try:
        for url, until, _ in ways.values():
            await db.create_database(url, exist_ok=False)
            await db.migrate(url, until=until)
            async with await psycopg.AsyncConnection.connect(url) as conn:
                for statement in _FLEET.split(";")[:-1]:  # one by one: they take parameters
                    await conn.execute(statement, {"n": args.accounts, "t0": T0})
                if until != BEFORE_THE_JOURNAL:  # the journal's databases have tariff books
                    await register_flat_rate(conn, ProviderInfo(id="bench", name="Bench"),
                                             Utility.ELECTRICITY, PRICE, date(2020, 1, 1))
                await conn.commit()
        size = args.accounts * args.per_account
        print(f"# booking benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
              f"{platform.machine()}, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f} at the start")
        print(f"batches of {size} readings ({args.accounts} accounts x {args.per_account}), "
              f"{args.batches} batches per run")
        runs: dict[str, list[Run]] = {name: [] for name in ways}
        for r in range(args.repeats):
            work = batches(args.accounts, args.per_account, args.batches,
                           start=r * args.batches * args.per_account)
            for name, (url, _, booker) in ways.items():  # alternating, on the same batches
                runs[name].append(await run(url, booker, work))
            print(f"  run {r}: " + ", ".join(f"{name} {done[-1].rate:,.0f}"
                                             for name, done in runs.items()) + " readings/s")
        charged = {name: await counted(url) for name, (url, _, _) in ways.items()}
        expected = args.repeats * args.batches * size
        assert len(set(charged.values())) == 1, f"every way must charge the same: {charged}"
        lines, amount = charged["journal"]
        assert lines == expected, f"{lines} lines charged, {expected} expected"
        median = {name: statistics.median(r.rate for r in done) for name, done in runs.items()}
        print(f"\n## booking, {args.repeats} runs (median of per-batch medians), "
              f"load average {os.getloadavg()[0]:.1f} at the end")
        print(f"journal (charge lines + one entry per batch): {median['journal']:,.0f} "
              f"readings/s ({cpu_text(runs['journal'])})")
        print(f"journal before 0120 (row-wise references and balance guard): "
              f"{median['journal before 0120']:,.0f} readings/s "
              f"({cpu_text(runs['journal before 0120'])})")
        print(f"skeleton (charge lines + direct balance update): "
              f"{median['skeleton']:,.0f} readings/s ({cpu_text(runs['skeleton'])})")
        print(f"ratio journal / journal before 0120: "
              f"{median['journal'] / median['journal before 0120']:.2f}x; "
              f"journal / skeleton: {median['journal'] / median['skeleton']:.2f}x; "
              f"each charged {lines:,} lines, {amount:,.2f} RUB")
    finally:
        for url, _, _ in ways.values():
            await db.drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--per-account", type=int, default=10)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
