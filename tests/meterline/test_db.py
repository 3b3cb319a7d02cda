"""Migrations on the machine's PostgreSQL (the TimescaleDB branch: test_timescale.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from meterline import db
from tests.conftest import PG_ADMIN
from tests.factories import customer


@pytest.fixture
async def fresh_url() -> AsyncIterator[str]:
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/meterline_mig_{uuid.uuid4().hex[:8]}"
    await db.create_database(url, exist_ok=False)
    yield url
    await db.drop_database(url)


async def fetch(url: str, query: str) -> list[Any]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(query)
        return await cur.fetchall()


async def test_migrations_apply_once_in_order(fresh_url: str) -> None:
    applied = await db.migrate(fresh_url)
    assert applied == [version for version, _ in db.migration_files()]
    assert applied == sorted(applied)
    assert await db.migrate(fresh_url) == []
    rows = await fetch(fresh_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == applied


async def test_without_timescaledb_readings_are_range_partitioned_with_a_default(
    fresh_url: str,
) -> None:
    await db.migrate(fresh_url)
    (kind,) = (await fetch(fresh_url, "SELECT relkind FROM pg_class WHERE relname = 'readings'"))[0]
    assert kind == "p"
    partitions = [r[0] for r in await fetch(fresh_url, """
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'readings'::regclass""")]
    assert "readings_default" in partitions
    assert len(partitions) > 30  # monthly partitions around today
    # a reading far outside the monthly partitions still lands (default partition)
    async with await psycopg.AsyncConnection.connect(fresh_url) as conn:
        for _ in range(2):
            await conn.execute("""INSERT INTO readings (meter_id, register, ts, value, gateway_id)
                                  VALUES ('m', 'active_import', '1999-01-01Z', 1, 'g')
                                  ON CONFLICT DO NOTHING""")
        cur = await conn.execute("SELECT count(*) FROM readings_default")
        assert await cur.fetchone() == (1,)


async def test_a_migration_changed_after_it_was_applied_is_refused(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await db.migrate(fresh_url)
    files = db.migration_files()
    edited = [*files[:-1], (files[-1][0], files[-1][1] + "\n-- edited afterwards\n")]
    monkeypatch.setattr(db, "migration_files", lambda: edited)
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        await db.migrate(fresh_url)


async def test_a_failing_migration_leaves_nothing_half_applied(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = [*db.migration_files(), ("9999_broken", "CREATE TABLE half (x int); SELECT 1/0;")]
    monkeypatch.setattr(db, "migration_files", lambda: broken)
    with pytest.raises(psycopg.errors.DivisionByZero):
        await db.migrate(fresh_url)
    assert await fetch(fresh_url, "SELECT 1 FROM pg_class WHERE relname = 'half'") == []
    versions = [r[0] for r in await fetch(fresh_url, "SELECT version FROM schema_migrations")]
    assert "9999_broken" not in versions and len(versions) == len(broken) - 1


async def test_partitions_for_the_months_ahead_are_created_when_missing(fresh_url: str) -> None:
    await db.migrate(fresh_url)
    async with await psycopg.AsyncConnection.connect(fresh_url, autocommit=True) as conn:
        cur = await conn.execute("""
            SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC')
                           + interval '2 months', 'YYYY_MM')""")
        row = await cur.fetchone()
        assert row is not None
        partition = f"readings_{row[0]}"
        await conn.execute(f"DROP TABLE {partition}")
        cur = await conn.execute("SELECT ensure_readings_partitions(0, 3)")
        assert await cur.fetchone() == (1,)
        cur = await conn.execute("SELECT ensure_readings_partitions(0, 3)")
        assert await cur.fetchone() == (0,)
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (partition,))
        assert await cur.fetchone() == (True,)


async def test_a_reading_says_where_it_came_from(conn: psycopg.AsyncConnection[Any]) -> None:
    meter = (await customer(conn)).meter_id
    insert = """INSERT INTO readings (meter_id, register, ts, value, gateway_id, source)
                VALUES (%s, 'active_import', %s, 1, %s, %s)"""
    await conn.execute(insert, (meter, "2026-10-01T00:00Z", None, "app"))
    await conn.execute(insert, (meter, "2026-10-02T00:00Z", "gw-1", "gateway"))
    cur = await conn.execute("SELECT source FROM readings WHERE meter_id = %s ORDER BY ts",
                             (meter,))
    assert await cur.fetchall() == [("app",), ("gateway",)]
    for gateway, source in ((None, "gateway"), ("gw-1", "phone"), (None, "fax")):
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(insert, (meter, "2026-10-03T00:00Z", gateway, source))
