"""Hours when no SMS is sent and no call is made, in the subscriber's own time zone.

The default follows what Russian law allows for contacting a debtor (230-ФЗ art. 7 p. 3): on
working days not from 22:00 to 08:00, on weekends and public holidays not from 20:00 to 09:00.
Each calendar day's type sets both its morning end and its evening start. Which days are off
is the subscriber's calendar (`meterline.friendly_hours.Calendar`, the one friendly hours
use): the address's country's public holidays and moved days off from the ``holidays``
library (a Saturday made a working day counts as one), the region's overrides, plus any
extra days given here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from meterline.friendly_hours import Calendar


class DaysOff(Protocol):
    def day_off(self, day: date) -> bool: ...


@dataclass(frozen=True)
class QuietHours:
    weekday: tuple[time, time] = (time(22), time(8))  # from, until (the next morning)
    weekend: tuple[time, time] = (time(20), time(9))
    holidays: Collection[date] = field(default=frozenset())  # days off beyond the calendar's
    calendar: DaysOff = field(default_factory=Calendar)  # when a call brings none

    def _day(self, day: date, calendar: DaysOff) -> tuple[time, time]:
        off = day in self.holidays or calendar.day_off(day)
        return self.weekend if off else self.weekday

    def next_allowed(self, now: datetime, time_zone: str,
                     calendar: DaysOff | None = None) -> datetime:
        """``now`` if a message may go out now, else the first moment it may (UTC), by the
        subscriber's ``calendar`` (default: this one's)."""
        days = calendar or self.calendar
        zone = ZoneInfo(time_zone)
        local = now.astimezone(zone)
        evening, morning = self._day(local.date(), days)
        if local.time() < morning:
            return datetime.combine(local.date(), morning, zone).astimezone(UTC)
        if local.time() >= evening:
            tomorrow = local.date() + timedelta(days=1)
            return datetime.combine(tomorrow, self._day(tomorrow, days)[1],
                                    zone).astimezone(UTC)
        return now

    def quiet(self, now: datetime, time_zone: str, calendar: DaysOff | None = None) -> bool:
        return self.next_allowed(now, time_zone, calendar) != now
