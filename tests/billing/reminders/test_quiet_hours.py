"""Quiet hours in the subscriber's own time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime

from billing.reminders.quiet_hours import QuietHours
from meterline.friendly_hours import Calendar

QUIET = QuietHours(holidays={date(2025, 1, 7)})


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_working_day_evening_waits_for_the_next_morning_in_local_time() -> None:
    # Wednesday 2025-03-12 19:30 UTC is 22:30 in Moscow (UTC+3): quiet until 08:00 Moscow.
    assert QUIET.next_allowed(utc(2025, 3, 12, 19, 30), "Europe/Moscow") == utc(2025, 3, 13, 5)
    # the same instant is 05:30 next day in Vladivostok (UTC+10): quiet until 08:00 there.
    assert QUIET.next_allowed(utc(2025, 3, 12, 19, 30), "Asia/Vladivostok") == utc(
        2025, 3, 12, 22)
    # 12:00 Moscow: allowed now
    assert not QUIET.quiet(utc(2025, 3, 12, 9), "Europe/Moscow")


def test_weekends_and_holidays_are_quiet_longer() -> None:
    # Saturday 2025-03-15 20:30 Moscow (17:30 UTC): quiet until Sunday 09:00 Moscow.
    assert QUIET.next_allowed(utc(2025, 3, 15, 17, 30), "Europe/Moscow") == utc(2025, 3, 16, 6)
    # Sunday 21:00 Moscow: Monday is a working day, allowed from 08:00.
    assert QUIET.next_allowed(utc(2025, 3, 16, 18), "Europe/Moscow") == utc(2025, 3, 17, 5)
    # 7 January (a holiday, a Tuesday) 08:30 Moscow: still quiet until 09:00.
    assert QUIET.next_allowed(utc(2025, 1, 7, 5, 30), "Europe/Moscow") == utc(2025, 1, 7, 6)


def test_the_morning_is_found_across_a_change_of_clocks() -> None:
    # Berlin moves to summer time on 2025-03-30 at 02:00; 23:00 on the 29th (22:00 UTC) waits
    # for Sunday 09:00 CEST = 07:00 UTC.
    assert QUIET.next_allowed(utc(2025, 3, 29, 22), "Europe/Berlin") == utc(2025, 3, 30, 7)


def test_the_countrys_holidays_and_moved_days_come_from_the_holiday_calendar() -> None:
    russia = QuietHours()  # the Russian calendar of the `holidays` library, nothing added
    # Friday 3 January 2025, a New Year holiday, 08:30 Moscow: quiet until 09:00
    assert russia.next_allowed(utc(2025, 1, 3, 5, 30), "Europe/Moscow") == utc(2025, 1, 3, 6)
    # Saturday 1 November 2025 was made a working day: 08:30 Moscow is allowed
    assert not russia.quiet(utc(2025, 11, 1, 5, 30), "Europe/Moscow")
    # Monday 3 November 2025 is the day off moved from it: 20:30 Moscow waits for the next
    # morning, 09:00 as Tuesday 4 November is Unity Day
    assert russia.next_allowed(utc(2025, 11, 3, 17, 30), "Europe/Moscow") == utc(
        2025, 11, 4, 6)
    # a region that works that Monday (an override by data): an ordinary working evening
    region = Calendar("RU", {date(2025, 11, 3): False})
    assert not russia.quiet(utc(2025, 11, 3, 17, 30), "Europe/Moscow", region)
    # Germany's calendar: 3 October is its holiday, not Russia's
    assert russia.quiet(utc(2025, 10, 3, 18, 30), "Europe/Berlin", Calendar("DE"))  # 20:30
    assert not russia.quiet(utc(2025, 10, 3, 17, 30), "Europe/Moscow")
