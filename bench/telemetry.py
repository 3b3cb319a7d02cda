"""Telemetry store benchmarks: the readings writer against a bare binary COPY of the same rows
into the same table, and usage queries on a store of 30 million readings, in one run each.

    python -m bench.telemetry writer  [--meters 2000] [--days 1] [--batch 24000] [--repeats 3]
    python -m bench.telemetry queries [--meters 10000] [--year-accounts 5] [--samples 40]

writer: each run writes `meters` x `days` of 15-minute readings in batches (one transaction
each), alternating the writer (`meterline.telemetry.write_readings`: its state read under the
writers' lock, numpy binary COPY straight into readings in a savepoint, the merge only when
COPY refuses the batch) and a bare binary COPY of the same rows into ``readings``; every run
writes days of its own (fresh keys). Both include encoding. Readings are live (after the
rollups' threshold); a third figure writes late readings (below it), which the writer also
logs for the refresh; a fourth replays a batch already stored (COPY refused, the merge stores
nothing). Medians of the runs, and their ratio.
Database ``meterline_bench_writer`` is made fresh and dropped.

queries: database ``meterline_bench_usage`` (kept, reused when present; generation takes a few
minutes): ``meters`` meters read every 15 minutes for a month (31 days) and ``year_accounts``
accounts of 4 meters read every 15 minutes for a year; over 30 million readings, loaded by
binary COPY and materialized by `refresh_readings_rollups()`. Then, through the real API app
in-process (HTTP over ASGI, its connection pool, JSON or CSV): one meter-month at 1 hour, an
account-year at 1 day, a month's 15-minute load-profile CSV; p50 and p90 over ``samples``
requests, and as the baseline in the same run, fetching the same meter-month's raw readings.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import numpy as np
import psycopg

from api.app import create_app
from api.auth.tokens import access_token
from meterline import db
from meterline.consumption import QUARTER
from meterline.instants import micros
from meterline.settings import Settings
from meterline.telemetry import ReadingColumns, readings_payload, write_readings
from meterline.users import ROLE_SCOPES, Role, User, create_user, find_user, grant_accounts

Sample = Callable[[], Awaitable[Any]]
PG = "postgresql://postgres@127.0.0.1:5432/"
MONTH = datetime(2026, 9, 1, tzinfo=UTC)  # the month every meter was read
YEAR = datetime(2025, 10, 1, tzinfo=UTC)  # the year-long accounts from here to MONTH + 1 month


def quarter_hour_readings(
    rng: np.random.Generator, meters: list[str], start: datetime, quarters: int
) -> ReadingColumns:
    """Readings of every meter at each quarter-hour (a few seconds late, as meters are),
    registers growing by up to 0.5 kWh a quarter-hour."""
    n = len(meters)
    ts = micros(start) + np.arange(quarters, dtype=np.int64) * QUARTER
    jitter = rng.integers(0, 8, size=(n, quarters)) * 1_000_000
    rise = rng.integers(0, 500_000, size=(n, quarters))
    values = rng.integers(0, 10**10, size=n)[:, None] + np.cumsum(rise, axis=1)
    return ReadingColumns(
        meter=np.repeat(np.array(meters), quarters), register="active_import",
        ts=(ts[None, :] + jitter).ravel(), value=values.ravel(), gateway="gw-bench",
    )


# --- writer -------------------------------------------------------------------------------------

async def bare_copy(conn: psycopg.AsyncConnection[Any], columns: ReadingColumns) -> None:
    async with conn.transaction():
        cur = conn.cursor()
        async with cur.copy("COPY readings (meter_id, register, ts, value, gateway_id, source)"
                            " FROM STDIN (FORMAT BINARY)") as copy:
            await copy.write(readings_payload(columns))


async def through_writer(conn: psycopg.AsyncConnection[Any], columns: ReadingColumns) -> None:
    async with conn.transaction():
        await write_readings(conn, columns)


async def timed_run(
    conn: psycopg.AsyncConnection[Any], how: Callable[..., Awaitable[None]],
    columns: ReadingColumns, batch: int,
) -> float:
    batches = [columns.take(np.arange(i, min(i + batch, len(columns))))
               for i in range(0, len(columns), batch)]
    started = time.perf_counter()
    for one in batches:
        await how(conn, one)
    return len(columns) / (time.perf_counter() - started)


async def writer(args: argparse.Namespace) -> None:
    url = PG + "meterline_bench_writer"
    await db.drop_database(url)
    await db.create_database(url, exist_ok=False)
    try:
        await db.migrate(url)
        rng = np.random.default_rng(1)
        meters = [f"W{n:07d}" for n in range(args.meters)]
        quarters = 96 * args.days
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cur = await conn.execute("SELECT watermark FROM readings_rollups WHERE name = '15m'")
            row = await cur.fetchone()
            assert row is not None
            live, late = row[0] + timedelta(hours=1), row[0] - timedelta(days=40)
            day = 0
            rates: dict[str, list[float]] = {"bare": [], "writer": [], "late": [], "replay": []}
            for run in range(args.repeats):
                for name, how, start in (("bare", bare_copy, live), ("writer", through_writer,
                                          live), ("late", through_writer, late)):
                    columns = quarter_hour_readings(
                        rng, meters, start + timedelta(days=day), quarters)
                    day += args.days
                    rates[name].append(await timed_run(conn, how, columns, args.batch))
                rates["replay"].append(await timed_run(conn, through_writer, columns, args.batch))
                print(f"  run {run}: bare COPY {rates['bare'][-1]:,.0f}/s, writer "
                      f"{rates['writer'][-1]:,.0f}/s, late {rates['late'][-1]:,.0f}/s, "
                      f"replayed {rates['replay'][-1]:,.0f}/s", flush=True)
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"\n## readings writer: {args.meters} meters x {quarters} quarter-hours per run, "
              f"batches of {args.batch}, {args.repeats} runs (median)")
        print(f"bare binary COPY into readings: {med['bare']:,.0f} readings/s")
        print(f"writer, live readings: {med['writer']:,.0f} readings/s")
        print(f"writer, late readings (logged for the refresh): {med['late']:,.0f} readings/s")
        print(f"writer, a batch replayed (all stored before): {med['replay']:,.0f} readings/s")
        print(f"ratio writer / bare COPY: {med['writer'] / med['bare']:.0%} "
              f"(late: {med['late'] / med['bare']:.0%})")
    finally:
        await db.drop_database(url)


# --- queries ------------------------------------------------------------------------------------

_FLEET = [
    "INSERT INTO providers (id, name) VALUES ('bench', 'Bench energy') ON CONFLICT DO NOTHING",
    "INSERT INTO addresses (region, full_text)"
    " SELECT '77', 'Bench street ' || n FROM generate_series(1, %(accounts)s) n",
    "INSERT INTO accounts (id, address_id, holder_name, billing_mode)"
    " SELECT 'BA-' || lpad(row_number() OVER (ORDER BY id)::text, 6, '0'), id, 'Bench',"
    " 'postpaid' FROM addresses",
    "INSERT INTO balances (account_id, provider_id) SELECT id, 'bench' FROM accounts",
    "INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id)"
    " SELECT m, 'BA-' || lpad((((k - 1) / 4) + 1)::text, 6, '0'), 'bench', 'electricity',"
    " 'SDM120', 'gw-bench' FROM unnest(%(meters)s::text[]) WITH ORDINALITY AS x(m, k)",
    "INSERT INTO registers (meter_id, code, unit)"
    " SELECT id, 'active_import', 'kWh' FROM meters",
]


async def generate(url: str, meters: int, year_accounts: int) -> None:
    month_meters = [f"M{n:07d}" for n in range(meters)]
    year_meters = [f"Y{n:07d}" for n in range(year_accounts * 4)]
    rng = np.random.default_rng(2)
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        # year accounts first: their accounts are BA-000001.. (4 meters each)
        everyone = year_meters + month_meters
        async with conn.transaction():
            for statement in _FLEET:
                await conn.execute(statement, {"accounts": -(-len(everyone) // 4),
                                               "meters": everyone})
        await conn.execute("SELECT ensure_readings_partitions(-15, 0)")
        total = 0
        month_quarters = 31 * 96
        for i in range(0, len(month_meters), 400):
            columns = quarter_hour_readings(rng, month_meters[i:i + 400], MONTH, month_quarters)
            await bare_copy(conn, columns)
            total += len(columns)
        year_quarters = (micros(MONTH + timedelta(days=30)) - micros(YEAR)) // QUARTER
        for i in range(0, len(year_meters), 20):
            columns = quarter_hour_readings(rng, year_meters[i:i + 20], YEAR, year_quarters)
            await bare_copy(conn, columns)
            total += len(columns)
        loaded = time.perf_counter()
        print(f"loaded {total:,} readings in {loaded - started:.0f} s "
              f"({total / (loaded - started):,.0f}/s, bare binary COPY)", flush=True)
        await conn.execute("UPDATE readings_rollups SET watermark = %s", (YEAR,))
        await conn.execute("SELECT refresh_readings_rollups()")
        refreshed = time.perf_counter()
        print(f"materialized the rollups in {refreshed - loaded:.0f} s "
              f"({total / (refreshed - loaded):,.0f} readings/s)", flush=True)
        await conn.execute("VACUUM ANALYZE")


async def percentiles(samples: list[Sample]) -> tuple[float, float]:
    times = []
    for sample in samples:
        started = time.perf_counter()
        await sample()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


async def queries(args: argparse.Namespace) -> None:
    url = PG + "meterline_bench_usage"
    if await db.create_database(url):
        await db.migrate(url)
        await generate(url, args.meters, args.year_accounts)
    else:
        await db.migrate(url)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT count(*) FROM readings")
        row = await cur.fetchone()
        print(f"readings in the store: {row[0] if row else 0:,}")
    settings = Settings(_env_file=None, database_url=url)
    app = create_app(settings)
    rng = np.random.default_rng(3)
    # the caller: an industrial customer granted every account of the store (the scoping query runs)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        user_id = await create_user(conn, "bench-industrial", None, Role.INDUSTRIAL)
        if user_id is None:
            found = await find_user(conn, "bench-industrial")
            assert found is not None
            user_id = found.id
        cur = await conn.execute("SELECT id FROM accounts")
        await grant_accounts(conn, user_id, [a for (a,) in await cur.fetchall()])
    user = User(user_id, "bench-industrial", Role.INDUSTRIAL, "", "ru")
    token = access_token(settings, user, ROLE_SCOPES[Role.INDUSTRIAL])
    month = MONTH.strftime("%Y-%m")
    year_accounts = [f"BA-{n:06d}" for n in range(1, args.year_accounts + 1)]

    async def get(http: httpx.AsyncClient, path: str, **params: str) -> None:
        response = await http.get(path, params=params)
        response.raise_for_status()

    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench",
        headers={"Authorization": f"Bearer {token}"},
    ) as http, await psycopg.AsyncConnection.connect(url) as raw:
        meters = [f"M{int(n):07d}" for n in rng.integers(0, args.meters, args.samples)]
        warm = [get(http, f"/meters/{m}/usage", **{"from": "2026-09-01"}) for m in meters[:3]]
        await asyncio.gather(*warm)

        async def raw_month(m: str) -> None:
            cur = await raw.execute(
                "SELECT ts, value FROM readings WHERE meter_id = %s AND register = %s"
                " AND ts >= %s AND ts < %s", (m, "active_import", MONTH, MONTH + timedelta(31)))
            await cur.fetchall()

        def requests(path: str, ids: list[str], **params: str) -> list[Sample]:
            return [partial(get, http, path.format(id=i), **params) for i in ids]

        cases: list[tuple[str, float, list[Sample]]] = [
            ("one meter-month at 1h (GET /meters/{id}/usage)", 20, requests(
                "/meters/{id}/usage", meters, **{
                    "from": "2026-09-01", "to": "2026-10-01", "bucket": "1h"})),
            ("an account-year (4 meters) at 1d (GET /accounts/{id}/usage)", 100, requests(
                "/accounts/{id}/usage",
                year_accounts * max(1, args.samples // len(year_accounts)),
                **{"from": "2025-10-01", "to": "2026-10-01", "bucket": "1d"})),
            ("a month's 15-minute load-profile CSV (GET /meters/{id}/load-profile.csv)", 200,
             requests("/meters/{id}/load-profile.csv", meters, month=month)),
            ("baseline: the same meter-month's raw readings (SELECT, 2,976 rows)", 0,
             [partial(raw_month, m) for m in meters]),
        ]
        print(f"\n## usage queries on {args.meters} meters x a month + {args.year_accounts} "
              f"accounts x a year, {args.samples} requests each")
        for name, target, samples in cases:
            p50, p90 = await percentiles(samples)
            goal = f" (target p50 < {target:.0f} ms)" if target else ""
            print(f"{name}: p50 {p50:.1f} ms, p90 {p90:.1f} ms{goal}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--meters", type=int, default=2000)
    w.add_argument("--days", type=int, default=1)
    w.add_argument("--batch", type=int, default=24_000)
    w.add_argument("--repeats", type=int, default=3)
    q = sub.add_parser("queries")
    q.add_argument("--meters", type=int, default=10_000)
    q.add_argument("--year-accounts", type=int, default=5)
    q.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(writer(args) if args.command == "writer" else queries(args))


if __name__ == "__main__":
    main()
