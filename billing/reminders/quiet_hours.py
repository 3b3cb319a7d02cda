"""Hours when no SMS is sent and no call is made, in the subscriber's own time zone.

The default follows what Russian law allows for contacting a debtor (230-ФЗ art. 7 p. 3): on
working days not from 22:00 to 08:00, on weekends and public holidays not from 20:00 to 09:00.
Each calendar day's type sets both its morning end and its evening start. Which days are off
is the calendar's: by default the country's public holidays and moved days off from the
``holidays`` library (a Saturday made a working day counts as one), plus any extra days given.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import holidays as public_holidays


class DaysOff(Protocol):
    def day_off(self, day: date) -> bool: ...


@lru_cache(maxsize=64)
def _country(country: str, year: int) -> public_holidays.HolidayBase:
    return public_holidays.country_holidays(country, years=year)


@dataclass(frozen=True)
class CountryCalendar:
    """A country's days off: weekends and public holidays, as its law moves them."""

    country: str = "RU"

    def day_off(self, day: date) -> bool:
        return not _country(self.country, day.year).is_working_day(day)


@dataclass(frozen=True)
class Weekends:
    """Saturdays and Sundays only."""

    def day_off(self, day: date) -> bool:
        return day.weekday() >= 5


@dataclass(frozen=True)
class QuietHours:
    weekday: tuple[time, time] = (time(22), time(8))  # from, until (the next morning)
    weekend: tuple[time, time] = (time(20), time(9))
    holidays: Collection[date] = field(default=frozenset())  # days off beyond the calendar's
    calendar: DaysOff = field(default_factory=CountryCalendar)

    def _day(self, day: date) -> tuple[time, time]:
        off = day in self.holidays or self.calendar.day_off(day)
        return self.weekend if off else self.weekday

    def next_allowed(self, now: datetime, time_zone: str) -> datetime:
        """``now`` if a message may go out now, else the first moment it may (UTC)."""
        zone = ZoneInfo(time_zone)
        local = now.astimezone(zone)
        evening, morning = self._day(local.date())
        if local.time() < morning:
            return datetime.combine(local.date(), morning, zone).astimezone(UTC)
        if local.time() >= evening:
            tomorrow = local.date() + timedelta(days=1)
            return datetime.combine(tomorrow, self._day(tomorrow)[1], zone).astimezone(UTC)
        return now

    def quiet(self, now: datetime, time_zone: str) -> bool:
        return self.next_allowed(now, time_zone) != now
