"""Friendly hours: when a disconnection may be made, in the account's own time zone.

A policy gives a daily window (``from``-``until``, local time; none: any hour) and whether
weekends and public holidays are excluded. Public holidays come from the ``holidays`` library
(the address's country, kept current by its maintainers); a region overrides single days by
data (``holiday_overrides``: a regional day off, or a working Saturday). Pure: the caller loads
the overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

_HORIZON_DAYS = 400  # a window that never opens within this is a configuration error


@lru_cache(maxsize=256)
def _country_calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


@dataclass(frozen=True)
class Calendar:
    """Days off of a place: weekends and the country's public holidays as its law moves them
    (a Saturday made a working day is one), the region's overrides (``day -> day_off``)."""

    country: str = "RU"
    overrides: Mapping[date, bool] = field(default_factory=dict)

    def day_off(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        return not _country_calendar(self.country, day.year).is_working_day(day)


@dataclass(frozen=True)
class FriendlyHours:
    window: tuple[time, time] | None = None  # local from, until; None: any hour
    working_days_only: bool = False

    def next_open(self, at: datetime, time_zone: str, calendar: Calendar) -> datetime:
        """``at`` if a cut may be made then, else the first moment it may (UTC)."""
        if self.window is None and not self.working_days_only:
            return at
        zone = ZoneInfo(time_zone)
        local = at.astimezone(zone)
        for offset in range(_HORIZON_DAYS):
            day = local.date() + timedelta(days=offset)
            if self.working_days_only and calendar.day_off(day):
                continue
            if self.window is None:
                start = datetime.combine(day, time(0), zone)
                end = datetime.combine(day + timedelta(days=1), time(0), zone)
            else:
                start = datetime.combine(day, self.window[0], zone)
                end = datetime.combine(day, self.window[1], zone)
            if local < end:
                return max(at, start.astimezone(UTC))
        raise ValueError(f"no friendly hour within {_HORIZON_DAYS} days of {at} in {time_zone}")

    def is_open(self, at: datetime, time_zone: str, calendar: Calendar) -> bool:
        return self.next_open(at, time_zone, calendar) == at
