"""Time-of-use zones: windows on the local wall clock, and the UTC instants they start at.

Zones are evaluated in the account's own time zone (DOMAIN §4: two-zone day 07-23 and night
23-07; three-zone peak 07-10 and 17-21, semi-peak 10-17 and 21-23, night 23-07). A day's
zone boundaries are wall-clock minutes; each is turned into a UTC instant for that date with
the rules of the time zone, so a day is 23, 24 or 25 hours long and every zone gets exactly the
real time it covered. Two cases need a rule:

- A wall time the clock skips (spring forward, 02:00 → 03:00): the zone changes when the
  clock jumps over it.
- A wall time the clock shows twice (fall back, e.g. Europe/Moscow on 2014-10-26, 02:00 →
  01:00): the zone changes at its first occurrence, and does not change back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from meterline.instants import SECOND, micros
from meterline.tariffs.model import ALL_DAY, Zone

MINUTES_PER_DAY = 24 * 60
FLAT: tuple[Zone, ...] = (Zone(name=ALL_DAY, windows=("00:00-24:00",)),)
_WINDOW = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def parse_window(text: str) -> tuple[int, int]:
    """``"07:00-10:00"`` -> minutes (420, 600); ``"23:00-07:00"`` runs past midnight."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"window {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > MINUTES_PER_DAY:
        raise ValueError(f"window {text!r} is not a time of day")
    if start == end:
        raise ValueError(f"window {text!r} is empty")
    return start, end


def zone_of_minute(zones: Sequence[Zone]) -> list[int]:
    """The zone (index) of every minute of a day; the windows must cover the day exactly once."""
    owner: list[int | None] = [None] * MINUTES_PER_DAY
    for index, zone in enumerate(zones):
        for text in zone.windows:
            start, end = parse_window(text)
            minutes = range(start, end) if start < end else (
                *range(start, MINUTES_PER_DAY), *range(0, end))
            for minute in minutes:
                if owner[minute] is not None:
                    other = zones[owner[minute]]  # type: ignore[index]
                    raise ValueError(f"zones {other.name} and {zone.name} overlap at "
                                     f"{minute // 60:02d}:{minute % 60:02d}")
                owner[minute] = index
    for minute, who in enumerate(owner):
        if who is None:
            raise ValueError(f"no zone covers {minute // 60:02d}:{minute % 60:02d}")
    return [who for who in owner if who is not None]


@lru_cache(maxsize=256)
def day_template(zones: tuple[Zone, ...]) -> tuple[tuple[int, int], ...]:
    """(minute from local midnight, zone index) at which each zone of a day starts, the first
    at minute 0: three-zone is ((0, night), (420, peak), (600, semi), (1020, peak), ...)."""
    owner = zone_of_minute(zones)
    return ((0, owner[0]), *(
        (minute, owner[minute]) for minute in range(1, MINUTES_PER_DAY)
        if owner[minute] != owner[minute - 1]))


@lru_cache(maxsize=64)
def time_zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_instant(day: date, minute: int, tz: ZoneInfo) -> int:
    """The UTC instant (microseconds) at which the wall clock of ``tz`` reaches ``minute``
    after midnight on ``day``: its first occurrence if it occurs twice, the clock's jump over
    it if it never occurs."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=tz).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return micros(first)
    # skipped: with fold=1 the instant lies before the jump, with fold=0 after it; the jump
    # is the first second whose wall time is at or past ``wall``
    lo = micros(wall.replace(tzinfo=tz, fold=1).astimezone(UTC)) // SECOND
    hi = micros(first) // SECOND
    while lo < hi:
        mid = (lo + hi) // 2
        shown = datetime.fromtimestamp(mid, tz).replace(tzinfo=None)
        if shown >= wall:
            hi = mid
        else:
            lo = mid + 1
    return lo * SECOND
