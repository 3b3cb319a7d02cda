"""The readings writer and the rollups of the plain-PostgreSQL path, against the session's
database: what is stored, what is flagged, and what the aggregates hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pytest

from meterline.instants import micros
from meterline.telemetry import (
    MICRO,
    ReadingColumns,
    maintain_readings,
    readings_payload,
    refresh_rollups,
    write_readings,
)
from tests.conftest import unique
from tests.factories import customer, random_readings
from tests.telemetry_oracle import rollup_1h, rollup_15m, stored_rollup

STORED = """
SELECT meter_id, register, ts, value, gateway_id, source, period_closed
  FROM readings WHERE meter_id = ANY(%s) ORDER BY meter_id, register, ts
"""


async def stored(conn: psycopg.AsyncConnection[Any], meters: list[str]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(STORED, (meters,))
    return await cur.fetchall()


def at(text: str) -> int:
    return micros(datetime.fromisoformat(text))


async def test_columns_are_stored_exactly(conn: psycopg.AsyncConnection[Any]) -> None:
    meters = [unique("m"), unique("meter-with-a-longer-serial")]
    columns = ReadingColumns(
        meter=[meters[0], meters[1], meters[0]],
        register=["active_import", "volume", "active_import"],
        ts=np.array([at("2025-01-01T00:00:00+00:00"), at("2025-06-30T23:59:59.999999+00:00"),
                     at("1999-12-31T23:59:59.000001+00:00")]),
        value=np.array([0, 12_345_678_901_234_567, 999_999], dtype=np.int64),
        gateway=["gw-1", None, "gateway-7"],
        source=np.array(["gateway", "app", "gateway"]),
    )

    assert await write_readings(conn, columns) == 3

    assert await stored(conn, meters) == [
        (meters[0], "active_import", datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
         Decimal("0.999999"), "gateway-7", "gateway", False),
        (meters[0], "active_import", datetime(2025, 1, 1, tzinfo=UTC), Decimal("0"), "gw-1",
         "gateway", False),
        (meters[1], "volume", datetime(2025, 6, 30, 23, 59, 59, 999999, tzinfo=UTC),
         Decimal("12345678901.234567"), None, "app", False),
    ]


async def test_staging_without_copy_stores_the_same(conn: psycopg.AsyncConnection[Any]) -> None:
    rng = np.random.default_rng(7)
    a, b = unique("copy"), unique("insert")
    start = datetime(2025, 2, 1, tzinfo=UTC)
    columns = random_readings(rng, [a], start, start + timedelta(hours=6))
    assert await write_readings(conn, columns) == len(columns)
    renamed = ReadingColumns(meter=[b] * len(columns), register=columns.register, ts=columns.ts,
                             value=columns.value, gateway=columns.gateway, source=columns.source)
    assert await write_readings(conn, renamed, copy=False) == len(columns)
    assert [r[1:] for r in await stored(conn, [a])] == [r[1:] for r in await stored(conn, [b])]


async def test_the_payload_is_postgresql_binary_copy(conn: psycopg.AsyncConnection[Any]) -> None:
    """A bare COPY of the payload into readings itself (what the benchmark compares with)."""
    meter = unique("bare")
    columns = ReadingColumns(meter=[meter] * 2, register="active_import",
                             ts=np.array([at("2025-03-01T00:00:00+00:00"),
                                          at("2025-03-01T00:15:00+00:00")]),
                             value=np.array([1_500_000, 2_000_001]), gateway="gw-1")
    cur = conn.cursor()
    async with cur.copy("COPY readings (meter_id, register, ts, value, gateway_id, source) "
                        "FROM STDIN (FORMAT BINARY)") as copy:
        await copy.write(readings_payload(columns))
    assert [(r[2].minute, r[3]) for r in await stored(conn, [meter])] == [
        (0, Decimal("1.5")), (15, Decimal("2.000001"))]


async def test_replaying_readings_shuffled_and_duplicated_stores_the_same(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    rng = np.random.default_rng(11)
    start = datetime(2025, 3, 29, tzinfo=UTC)
    meters = [unique("once") for _ in range(3)]
    columns = random_readings(rng, meters, start, start + timedelta(days=2))
    replayed_meters = [unique("replayed") for _ in meters]
    rename = dict(zip(meters, replayed_meters, strict=True))
    replayed = ReadingColumns(
        meter=np.array([rename[str(m)] for m in columns.meter]), register=columns.register,
        ts=columns.ts, value=columns.value, gateway=columns.gateway, source=columns.source)

    assert await write_readings(conn, columns) == len(columns)
    # every reading twice or three times, shuffled, in batches of random sizes, with rollup
    # refreshes in between
    order = rng.permutation(np.concatenate([np.arange(len(columns))] * 2
                                           + [rng.choice(len(columns), len(columns) // 3)]))
    written = 0
    for batch in np.array_split(order, 7):
        written += await write_readings(conn, replayed.take(batch))
        await refresh_rollups(conn)
    await refresh_rollups(conn)

    assert written == len(columns)
    assert sorted((rename[r[0]], *r[1:]) for r in await stored(conn, meters)) == \
        await stored(conn, replayed_meters)
    for view in ("readings_15m", "readings_1h"):
        once = await stored_rollup(conn, view, meters)
        again = await stored_rollup(conn, view, replayed_meters)
        assert {(rename[m], r, b): v for (m, r, b), v in once.items()} == again


async def test_rollups_equal_a_direct_computation_before_and_after_refresh(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    """Readings of last month (late: below the threshold) and of the coming hours (live: no
    refresh reaches them, whatever other tests refreshed meanwhile), then a few late ones
    inside buckets already materialized."""
    rng = np.random.default_rng(3)
    meters = [unique("agg") for _ in range(3)]
    now = datetime.now(UTC)
    old = random_readings(rng, meters, now - timedelta(days=40), now - timedelta(days=38))
    ahead = random_readings(rng, meters, now + timedelta(hours=1), now + timedelta(hours=5))
    everything = ReadingColumns(
        meter=np.concatenate([old.meter, ahead.meter]), register="active_import",
        ts=np.concatenate([old.ts, ahead.ts]), value=np.concatenate([old.value, ahead.value]),
        gateway="gw-test")
    late = np.arange(len(everything)) % 5 == 0  # held back, written after the refresh

    early = everything.take(np.flatnonzero(~late))
    await write_readings(conn, early)
    # before a refresh: what is ahead of the watermark is aggregated live
    live = await stored_rollup(conn, "readings_15m", meters)
    expected = rollup_15m(early)
    ahead_of_now = micros(now)
    assert {k: v for k, v in live.items() if k[2] >= ahead_of_now} == \
        {k: v for k, v in expected.items() if k[2] >= ahead_of_now} != {}
    await refresh_rollups(conn)
    assert await stored_rollup(conn, "readings_15m", meters) == expected
    assert await stored_rollup(conn, "readings_1h", meters) == rollup_1h(early)

    await write_readings(conn, everything.take(np.flatnonzero(late)))
    await refresh_rollups(conn)
    assert await stored_rollup(conn, "readings_15m", meters) == rollup_15m(everything)
    assert await stored_rollup(conn, "readings_1h", meters) == rollup_1h(everything)
    cur = await conn.execute(
        "SELECT count(*) FROM readings_invalidations WHERE meter_id = ANY(%s)", (meters,))
    assert await cur.fetchone() == (0,)


async def test_a_late_reading_waits_for_the_refresh_to_reach_the_rollups(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    """As on TimescaleDB: below the watermark the rollups answer what was materialized."""
    meter = unique("late")
    t = datetime(2025, 1, 10, 12, tzinfo=UTC)
    first = ReadingColumns(meter=[meter], register="active_import", ts=np.array([micros(t)]),
                           value=np.array([10 * MICRO]), gateway="gw-test")
    await write_readings(conn, first)
    await refresh_rollups(conn)
    later = ReadingColumns(meter=[meter], register="active_import",
                           ts=np.array([micros(t + timedelta(minutes=5))]),
                           value=np.array([11 * MICRO]), gateway="gw-test")
    await write_readings(conn, later)
    [(_, _, _, _, readings)] = (await stored_rollup(conn, "readings_15m", [meter])).values()
    assert readings == 1
    await refresh_rollups(conn)
    [bucket] = (await stored_rollup(conn, "readings_15m", [meter])).values()
    assert bucket[3:] == (11 * MICRO, 2)  # last value, readings


@pytest.fixture
async def berlin(conn: psycopg.AsyncConnection[Any]) -> Any:
    """A customer in Europe/Berlin whose provider closed January and February 2025 (March is
    open) and has an April period not closed yet."""
    one = await customer(conn, time_zone="Europe/Berlin")
    await conn.execute(
        "INSERT INTO billing_periods (provider_id, period, closed_at) VALUES"
        " (%(p)s, '2025-01-01', now()), (%(p)s, '2025-02-01', now()),"
        " (%(p)s, '2025-04-01', NULL)",
        {"p": one.provider_id},
    )
    return one


async def test_a_reading_for_a_closed_period_is_stored_and_flagged(
    conn: psycopg.AsyncConnection[Any], berlin: Any
) -> None:
    other = await customer(conn, time_zone="Europe/Berlin")  # its provider closed nothing
    moments = [
        "2025-01-15T10:00:00+01:00",  # January: closed
        "2025-02-28T23:59:59+01:00",  # February, local time: closed
        "2025-03-01T00:00:00+01:00",  # midnight closes February's last interval: closed
        "2025-03-01T00:00:01+01:00",  # March: open
        "2025-04-10T00:00:00+02:00",  # April: a period that is not closed
        "2024-12-31T23:00:00+00:00",  # UTC 2024, but Berlin's 2025-01-01 00:00: December
    ]
    for meter in (berlin.meter_id, other.meter_id):
        await write_readings(conn, ReadingColumns(
            meter=[meter] * len(moments), register="active_import",
            ts=np.array([at(m) for m in moments]), value=np.arange(len(moments)) * MICRO,
            gateway="gw-test"))

    flags = [r[-1] for r in await stored(conn, [berlin.meter_id])]
    # stored in time order: December, January, February's last second, midnight, March, April
    assert flags == [False, True, True, True, False, False]
    assert [r[-1] for r in await stored(conn, [other.meter_id])] == [False] * len(moments)


async def test_a_reading_stored_before_its_period_closed_stays_unflagged(
    conn: psycopg.AsyncConnection[Any], berlin: Any
) -> None:
    march = ReadingColumns(meter=[berlin.meter_id], register="active_import",
                           ts=np.array([at("2025-03-20T12:00:00+01:00")]),
                           value=np.array([5 * MICRO]), gateway="gw-test")
    await write_readings(conn, march)
    await conn.execute(
        "INSERT INTO billing_periods (provider_id, period, closed_at)"
        " VALUES (%s, '2025-03-01', now())", (berlin.provider_id,))
    assert await write_readings(conn, march) == 0  # delivered again: nothing changes
    late = ReadingColumns(meter=[berlin.meter_id], register="active_import",
                          ts=np.array([at("2025-03-20T12:15:00+01:00")]),
                          value=np.array([6 * MICRO]), gateway="gw-test")
    assert await write_readings(conn, late) == 1
    assert [r[-1] for r in await stored(conn, [berlin.meter_id])] == [False, True]


async def test_partitions_past_retention_are_dropped_and_ahead_created(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    """Raw readings and 15-minute buckets are kept 1,100 days, hourly ones 3,660."""
    cur = await conn.execute("SELECT ensure_readings_partitions(-48, -47)")
    assert await cur.fetchone() == (2,)
    meter = unique("old")
    now = datetime.now(UTC)
    months = now.year * 12 + now.month - 1 - 48
    four_years_ago = datetime(months // 12, months % 12 + 1, 11, tzinfo=UTC)
    partition = f"readings_{four_years_ago:%Y_%m}"
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (partition,))
    assert await cur.fetchone() == (True,)
    await write_readings(conn, ReadingColumns(
        meter=[meter], register="active_import", ts=np.array([micros(four_years_ago)]),
        value=np.array([MICRO]), gateway="gw-test"))
    await refresh_rollups(conn)
    assert len(await stored_rollup(conn, "readings_1h", [meter])) == 1

    assert await maintain_readings(conn, 3) >= 2  # the two old months

    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (partition,))
    assert await cur.fetchone() == (False,)
    assert await stored(conn, [meter]) == []
    assert await stored_rollup(conn, "readings_15m", [meter]) == {}
    assert len(await stored_rollup(conn, "readings_1h", [meter])) == 1  # kept ten years
    assert await maintain_readings(conn, 3) == 0
