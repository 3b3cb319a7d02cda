"""Zones on the wall clock and the UTC instants they start at, across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from meterline.instants import micros
from meterline.tariffs.model import Zone
from meterline.tariffs.zones import day_template, local_instant, parse_window, time_zone

THREE_ZONE = (
    Zone(name="peak", windows=("07:00-10:00", "17:00-21:00")),
    Zone(name="semi_peak", windows=("10:00-17:00", "21:00-23:00")),
    Zone(name="night", windows=("23:00-07:00",)),
)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return micros(datetime(year, month, day, hour, minute, tzinfo=UTC))


def test_windows_are_minutes_and_may_run_past_midnight() -> None:
    assert parse_window("07:00-10:00") == (420, 600)
    assert parse_window("23:00-07:00") == (1380, 420)
    assert parse_window("00:00-24:00") == (0, 1440)
    for bad in ("7:00-10:00", "07:00-07:00", "25:00-26:00", "07:60-08:00", "10:00-24:01"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_a_day_template_starts_at_midnight_with_the_zone_in_force_then() -> None:
    assert day_template(THREE_ZONE) == (
        (0, 2), (420, 0), (600, 1), (1020, 0), (1260, 1), (1380, 2))


def test_zones_must_cover_the_day_once() -> None:
    gap = (Zone(name="day", windows=("07:00-23:00",)), Zone(name="night", windows=("00:00-07:00",)))
    with pytest.raises(ValueError, match="no zone covers 23:00"):
        day_template(gap)
    overlap = (Zone(name="day", windows=("07:00-23:30",)),
               Zone(name="night", windows=("23:00-07:00",)))
    with pytest.raises(ValueError, match="zones day and night overlap at 23:00"):
        day_template(overlap)


def test_moscow_2014_10_26_the_repeated_hour_counts_once_at_its_first_occurrence() -> None:
    moscow = time_zone("Europe/Moscow")
    # UTC+4 until 02:00 local on 2014-10-26, when clocks went back to 01:00 (UTC+3)
    assert local_instant(date(2014, 10, 25), 23 * 60, moscow) == utc(2014, 10, 25, 19)
    assert local_instant(date(2014, 10, 26), 60, moscow) == utc(2014, 10, 25, 21)  # first 01:00
    assert local_instant(date(2014, 10, 26), 90, moscow) == utc(2014, 10, 25, 21, 30)
    assert local_instant(date(2014, 10, 26), 120, moscow) == utc(2014, 10, 25, 23)
    assert local_instant(date(2014, 10, 26), 7 * 60, moscow) == utc(2014, 10, 26, 4)


def test_berlin_a_skipped_wall_time_starts_when_the_clock_jumps_over_it() -> None:
    berlin = time_zone("Europe/Berlin")
    # 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC; 02:00 to 02:59 never show
    for minute in (120, 150, 180):
        assert local_instant(date(2026, 3, 29), minute, berlin) == utc(2026, 3, 29, 1)
    assert local_instant(date(2026, 3, 29), 7 * 60, berlin) == utc(2026, 3, 29, 5)
    # 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC; 02:30 shows twice, first at 00:30 UTC
    assert local_instant(date(2026, 10, 25), 150, berlin) == utc(2026, 10, 25, 0, 30)
    assert local_instant(date(2026, 10, 25), 180, berlin) == utc(2026, 10, 25, 2)
