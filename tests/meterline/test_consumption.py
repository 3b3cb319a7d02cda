"""Consumption from the aggregates equals a direct computation from the raw readings: random
readings with gaps, across the DST changes of Europe/Berlin and in a zone whose clock is 5:45
ahead of UTC, in every bucket size and by tariff zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest

from meterline.consumption import (
    HOUR,
    QUARTER,
    Bucket,
    Rollup,
    bucket_grid,
    consumption,
    levels,
    utc_offsets,
)
from meterline.instants import micros
from meterline.tariff_zones import ZoneScheme, zone_names, zone_of
from meterline.telemetry import ReadingColumns, refresh_rollups, write_readings
from tests.conftest import unique
from tests.factories import random_readings
from tests.telemetry_oracle import direct_buckets, series_of

BERLIN = ZoneInfo("Europe/Berlin")
KATHMANDU = ZoneInfo("Asia/Kathmandu")


def zone_lookup(tz: ZoneInfo, scheme: ZoneScheme) -> Callable[[int], str]:
    names = zone_names(scheme)

    def zone(quarter: int) -> str:
        local = quarter + int(utc_offsets(np.array([quarter]), tz)[0])
        return names[int(zone_of(scheme, np.array([local // 60_000_000 % 1440]))[0])]

    return zone


async def check_against_raw(
    conn: psycopg.AsyncConnection[Any], columns: Any, meter: str, bucket: Bucket,
    start: datetime, end: datetime, tz: ZoneInfo, zones: ZoneScheme | None,
) -> int:
    boundaries = bucket_grid(bucket, micros(start), micros(end), tz)
    got = await consumption(conn, meter, "active_import", boundaries, tz, zones,
                            width=QUARTER if bucket == "15m" else None)
    expected = direct_buckets(series_of(columns, meter), [int(b) for b in boundaries],
                              zone_lookup(tz, zones) if zones else None)
    assert [(int(q), int(e), int(m)) for q, e, m in
            zip(got.quantity, got.estimated, got.missing, strict=True)] == \
        [(q, e, m) for q, e, m, _ in expected]
    assert got.quarters.tolist() == (np.diff(boundaries) // QUARTER).tolist()
    if zones:
        names = zone_names(zones)
        assert got.by_zone is not None
        assert [{names[z]: int(x) for z, x in enumerate(row) if x} for row in got.by_zone] == \
            [{z: x for z, x in zones_.items() if x} for _, _, _, zones_ in expected]
    return len(boundaries) - 1


@pytest.fixture(scope="module")
def dst_readings() -> Any:
    """Two meters read around both DST changes of 2025 (and not in between)."""
    rng = np.random.default_rng(20250330)
    meters = [unique("dst") for _ in range(2)]
    spring = random_readings(rng, meters, datetime(2025, 3, 28, 18, tzinfo=UTC),
                             datetime(2025, 4, 1, 3, tzinfo=UTC))
    autumn = random_readings(rng, meters, datetime(2025, 10, 24, 20, tzinfo=UTC),
                             datetime(2025, 10, 27, 5, tzinfo=UTC))
    autumn = ReadingColumns(meter=autumn.meter, register=autumn.register, ts=autumn.ts,
                            value=autumn.value + 10**12, gateway=autumn.gateway)
    return meters, spring, autumn


CASES: list[tuple[Bucket, datetime, datetime, ZoneScheme | None]] = [
    ("15m", datetime(2025, 3, 30, 0, tzinfo=UTC), datetime(2025, 3, 30, 6, tzinfo=UTC), None),
    ("1h", datetime(2025, 3, 29, 20, tzinfo=UTC), datetime(2025, 3, 31, 1, tzinfo=UTC),
     ZoneScheme.THREE),
    ("1d", datetime(2025, 3, 27, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC), ZoneScheme.TWO),
    ("1d", datetime(2025, 10, 24, tzinfo=UTC), datetime(2025, 10, 28, tzinfo=UTC),
     ZoneScheme.THREE),
    ("1h", datetime(2025, 10, 25, 22, tzinfo=UTC), datetime(2025, 10, 26, 4, tzinfo=UTC), None),
    ("1mo", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC), None),
]


async def test_buckets_and_zones_equal_a_direct_computation_across_dst(
    conn: psycopg.AsyncConnection[Any], dst_readings: Any
) -> None:
    meters, spring, autumn = dst_readings
    for part in (spring, autumn):
        await write_readings(conn, part)
    await refresh_rollups(conn)
    both = ReadingColumns(meter=np.concatenate([spring.meter, autumn.meter]),
                          register="active_import", ts=np.concatenate([spring.ts, autumn.ts]),
                          value=np.concatenate([spring.value, autumn.value]))
    checked = 0
    for bucket, start, end, zones in CASES:
        for tz in (BERLIN, KATHMANDU):
            for meter in meters:
                checked += await check_against_raw(conn, both, meter, bucket, start, end, tz,
                                                   zones)
    assert checked > 300


async def test_a_meter_without_readings_is_missing_throughout(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    boundaries = bucket_grid("1d", micros(datetime(2025, 3, 29, tzinfo=UTC)),
                             micros(datetime(2025, 4, 1, tzinfo=UTC)), BERLIN)
    got = await consumption(conn, unique("silent"), "active_import", boundaries, BERLIN)
    assert got.quantity.tolist() == [0, 0, 0, 0]
    assert got.missing.tolist() == got.quarters.tolist() == [96, 92, 96, 96]


def test_a_gap_is_estimated_until_a_reading_inside_it_arrives() -> None:
    """Readings at 10:00 and 11:00 only: 10:15-11:00 is estimated, split by time, and the
    parts add up to the hour exactly."""
    ten = micros(datetime(2025, 5, 5, 10, tzinfo=UTC))
    rows = [(ten, 1_000_000, ten, 1_000_000, 1),
            (ten + HOUR, 1_000_010, ten + HOUR, 1_000_010, 1)]
    rollup = Rollup.from_rows(QUARTER, rows)
    level, known = levels(rollup, np.arange(ten, ten + HOUR + 1, QUARTER, dtype=np.int64))
    assert known.all()
    assert np.diff(level).tolist() == [2, 3, 2, 3]  # 10 micro-units over four quarter-hours
