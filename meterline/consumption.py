"""Interval consumption from the telemetry store's aggregates, exactly, in integer micro-units.

Readings are cumulative registers, so consumption between two instants is the difference of
the register's *level* at them. The rules:

- At a reading's instant the level is its value. Between two consecutive readings it grows
  linearly with time; at a bucket boundary in between it is interpolated and rounded down to a
  micro-unit. A bucket's consumption is the level at its end minus the level at its start, so
  an interval spanning bucket boundaries is apportioned by time, exactly, and the parts always
  add up to the whole (the sums telescope).
- Quarter-hours (the 15-minute intervals in UTC, also quarter-hours of every local clock) are
  what status is counted in. A quarter-hour is *missing* when the level at its start or end
  cannot be known (no reading at or before its start, or none at or after its end): its
  consumption is not counted. It is *estimated* when it holds no reading but readings around
  it are known: its share of the gap is an estimate, and it becomes actual when a reading
  inside it arrives later. Otherwise it is *actual*.
- Days, months, local hours and tariff zones are sums of 15-minute or hourly intervals, taken
  in the account's own time zone; the hourly aggregate is used when every boundary the
  answer needs falls on a UTC hour, the 15-minute one otherwise.

The level is the register as read: a register that went backwards (rating's register policy
takes the drop for a rollover, a reset or a glitch) shows as negative consumption where it
dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import pq

from meterline.instants import from_micros, micros
from meterline.tariff_zones import ZoneScheme, zone_names, zone_of

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

MICRO = 1_000_000
MINUTE = 60 * MICRO
QUARTER = 15 * MINUTE
HOUR = 4 * QUARTER
DAY = 24 * HOUR

Bucket = Literal["15m", "1h", "1d", "1mo"]


def from_us(value: int, tz: ZoneInfo | None = None) -> datetime:
    moment = from_micros(int(value))
    return moment.astimezone(tz) if tz else moment


@dataclass(frozen=True)
class Rollup:
    """Aggregate rows of one series (meter, register), sorted by bucket: the rows of a window
    and the nearest row on each side of it. Times in UTC microseconds, values in micro-units;
    ``quarters`` is how many quarter-hours of the bucket hold a reading."""

    width: int
    bucket: I64
    first_ts: I64
    first_value: I64
    last_ts: I64
    last_value: I64
    quarters: I64

    @classmethod
    def from_rows(cls, width: int, rows: Sequence[tuple[int, ...]]) -> Rollup:
        """From (first_ts, first_value, last_ts, last_value, quarters) rows, any order."""
        array = np.array(rows, dtype=np.int64).reshape(-1, 5)
        array = array[np.argsort(array[:, 0], kind="stable")]
        bucket = array[:, 0] - array[:, 0] % width
        return cls(width, bucket, *(np.ascontiguousarray(array[:, i]) for i in range(5)))

    def __len__(self) -> int:
        return len(self.bucket)


def levels(rollup: Rollup, instants: I64) -> tuple[I64, BOOL]:
    """The register's level at each instant (each on a bucket boundary of the rollup), and
    whether it is known; unknown levels are held at the nearest known reading's value."""
    n = len(rollup)
    level = np.zeros(len(instants), dtype=np.int64)
    known = np.zeros(len(instants), dtype=bool)
    if n == 0:
        return level, known
    after = np.searchsorted(rollup.bucket, instants, side="left")  # first row at/after
    has_next = after < n
    nxt = np.minimum(after, n - 1)
    prv = np.maximum(after - 1, 0)
    exact = has_next & (rollup.first_ts[nxt] == instants)
    between = has_next & (after > 0) & ~exact

    level[exact] = rollup.first_value[nxt[exact]]
    if between.any():
        p, q = prv[between], nxt[between]
        t0, v0 = rollup.last_ts[p], rollup.last_value[p]
        span, rise = rollup.first_ts[q] - t0, rollup.first_value[q] - v0
        part = instants[between] - t0
        # exact integers: in int64 where the product fits, as Python integers where not
        fits = np.abs(rise).astype(np.float64) * part < 2.0**62
        share = np.empty(len(part), dtype=np.int64)
        share[fits] = rise[fits] * part[fits] // span[fits]
        big = ~fits
        if big.any():
            share[big] = (rise[big].astype(object) * part[big].astype(object)
                          // span[big].astype(object)).astype(np.int64)
        level[between] = v0 + share
    known = exact | between
    before = ~known & (instants < rollup.first_ts[0])
    level[before] = rollup.first_value[0]
    level[~known & ~before] = rollup.last_value[-1]
    return level, known


@dataclass(frozen=True)
class Intervals:
    """Consumption per interval between consecutive ``boundaries``."""

    boundaries: I64  # n + 1 instants
    quantity: I64  # micro-units, the known part
    quarters: I64  # quarter-hours in the interval
    estimated: I64  # of which estimated
    missing: I64  # of which missing

    @property
    def start(self) -> I64:
        return self.boundaries[:-1]


def intervals(rollup: Rollup, boundaries: I64) -> Intervals:
    """Consumption between consecutive boundaries (each on a bucket boundary of the rollup;
    the rollup's rows inside may be its own buckets or already summed per interval)."""
    start, end = int(boundaries[0]), int(boundaries[-1])
    level, _ = levels(rollup, boundaries)
    units, ends = boundaries[:-1], boundaries[1:]
    quarters = (ends - units) // QUARTER
    if len(rollup) == 0:
        zero = np.zeros(len(units), dtype=np.int64)
        return Intervals(boundaries, zero, quarters, zero, quarters.copy())

    first, last = int(rollup.first_ts[0]), int(rollup.last_ts[-1])
    lo_ok = -(-first // QUARTER) * QUARTER  # quarter-hours from here on have a known start
    hi_ok = last // QUARTER * QUARTER  # quarter-hours before here have a known end
    ok = np.clip(np.minimum(ends, hi_ok) - np.maximum(units, lo_ok), 0, None) // QUARTER

    # quarter-hours holding a reading, per interval (rows outside [start, end) fall out)
    inside = (rollup.bucket >= start) & (rollup.bucket < end)
    held = _sum(np.searchsorted(boundaries, rollup.bucket[inside], side="right") - 1,
                rollup.quarters[inside], len(units))
    # ... less the quarter-hours that hold the first or the last reading but lie outside
    # [lo_ok, hi_ok): they are missing, not actual
    outside = {last // QUARTER * QUARTER}
    if first % QUARTER:
        outside.add(first // QUARTER * QUARTER)
    for quarter in outside:
        if start <= quarter < end:
            held[np.searchsorted(boundaries, quarter, side="right") - 1] -= 1
    return Intervals(boundaries, np.diff(level), quarters, ok - held, quarters - ok)


# --- calendars --------------------------------------------------------------------------------

def utc_offsets(instants: I64, tz: ZoneInfo) -> I64:
    """The zone's UTC offset (microseconds) at each instant (sorted)."""
    if len(instants) == 0:
        return np.zeros(0, dtype=np.int64)

    def offset(us: int) -> int:
        off = from_us(us, tz).utcoffset()
        return int(off.total_seconds()) * MICRO if off else 0

    # offsets change a few times a year: sample daily, look closer only where they changed
    samples = np.arange(int(instants[0]), int(instants[-1]) + DAY, DAY, dtype=np.int64)
    sampled = np.array([offset(int(s)) for s in samples], dtype=np.int64)
    result: I64 = sampled[(instants - instants[0]) // DAY]
    for day in np.flatnonzero(np.diff(sampled)):
        near = (instants >= samples[day]) & (instants < samples[day] + DAY)
        result[near] = [offset(int(us)) for us in instants[near]]
    return result


def local_midnight(day: date, tz: ZoneInfo) -> int:
    """The instant a local day starts (the first instant whose local date is ``day``)."""
    naive = datetime(day.year, day.month, day.day)
    moment = naive.replace(tzinfo=tz)
    # a day that starts in a DST gap (some zones switch at midnight) starts at the gap's end
    if moment.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        moment = (moment.astimezone(UTC) + timedelta(hours=1)).astimezone(tz)
        moment = moment.replace(minute=0, second=0, microsecond=0)
    return micros(moment.astimezone(UTC))


def bucket_grid(bucket: Bucket, start: int, end: int, tz: ZoneInfo) -> I64:
    """Bucket boundaries (instants) covering [start, end): local clock quarter-hours, hours,
    days or months, from the boundary at or before ``start`` to the one at or after ``end``."""
    if bucket in ("15m", "1h"):
        quarters = np.arange(start - start % QUARTER, end + HOUR + QUARTER, QUARTER,
                             dtype=np.int64)
        if bucket == "1h":
            local = quarters + utc_offsets(quarters, tz)
            quarters = quarters[local % HOUR == 0]
        first = np.searchsorted(quarters, start, side="right") - 1
        last = np.searchsorted(quarters, end, side="left")
        return quarters[max(first, 0): last + 1]
    day = from_us(start, tz).date()
    stop = from_us(end, tz).date()
    days: list[date] = []
    if bucket == "1mo":
        day = day.replace(day=1)
        while True:
            days.append(day)
            if local_midnight(day, tz) >= end:
                break
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        while True:
            days.append(day)
            if day > stop or local_midnight(day, tz) >= end:
                break
            day += timedelta(days=1)
    return np.array([local_midnight(d, tz) for d in days], dtype=np.int64)


# --- the store ---------------------------------------------------------------------------------

def _rows_sql(view: str, *, summed: bool) -> str:
    """A window's rows of one series and the nearest row on each side (the same statement on
    TimescaleDB's continuous aggregates and on the plain rollup views), as five columns of
    big-endian int8 packed in bytea (no value goes through Python on its own): the first and
    last reading's time in UTC microseconds and value in micro-units, and the quarter-hours
    holding a reading. ``summed``: the window's rows summed per interval between the
    boundaries given (days, months), so a year of days sends days, not hours."""
    quarters = "quarters" if view == "readings_1h" else "1"
    series = f"FROM {view} WHERE meter_id = %(meter)s AND register = %(register)s"
    row = f"first_ts, first_value, last_ts, last_value, {quarters}::int8 AS quarters {series}"
    window = f"SELECT {row} AND bucket >= %(start)s AND bucket < %(end)s"
    if summed:
        window = (
            "SELECT min(first_ts), (array_agg(first_value ORDER BY first_ts))[1],"
            " max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1], sum(quarters)::int8"
            f" FROM ({window}) AS w GROUP BY width_bucket(first_ts, %(boundaries)s)"
        )
    packed = ", ".join(
        f"coalesce(string_agg(int8send({c}), ''::bytea ORDER BY first_ts), ''::bytea)"
        for c in (
            "(extract(epoch FROM first_ts) * 1000000)::int8", "(first_value * 1000000)::int8",
            "(extract(epoch FROM last_ts) * 1000000)::int8", "(last_value * 1000000)::int8",
            "quarters",
        )
    )
    return (
        f"SELECT {packed} FROM ("
        f"(SELECT {row} AND bucket < %(start)s ORDER BY bucket DESC LIMIT 1)"
        f" UNION ALL ({window})"
        f" UNION ALL (SELECT {row} AND bucket >= %(end)s ORDER BY bucket LIMIT 1)"
        ") AS rows (first_ts, first_value, last_ts, last_value, quarters)"
    )


_ROWS = {(width, summed): _rows_sql(view, summed=summed)
         for width, view in ((QUARTER, "readings_15m"), (HOUR, "readings_1h"))
         for summed in (False, True)}


async def load_rollup(
    conn: psycopg.AsyncConnection[Any], meter: str, register: str, boundaries: I64,
    width: int, *, summed: bool = False,
) -> Rollup:
    """The rollup (15-minute or hourly, by ``width``) of one series around the boundaries
    (each on a bucket boundary of it); with ``summed``, its rows summed per interval.

    The statement is prepared with a generic plan (planning it across the views and
    partitions costs more than running it) and runs without JIT (compiling it costs up to a
    second; its cost estimate is high only because the planner cannot see how little the live
    branches hold)."""
    if conn.info.transaction_status == pq.TransactionStatus.INTRANS:
        await conn.execute("SET LOCAL jit = off; SET LOCAL plan_cache_mode = force_generic_plan")
    cur = conn.cursor(binary=True)
    params: dict[str, Any] = {"meter": meter, "register": register,
                              "start": from_us(int(boundaries[0])),
                              "end": from_us(int(boundaries[-1]))}
    if summed:
        params["boundaries"] = [from_us(int(b)) for b in boundaries]
    await cur.execute(_ROWS[width, summed], params, prepare=True)
    row = await cur.fetchone()
    assert row is not None
    first_ts, first_value, last_ts, last_value, quarters = (
        np.frombuffer(packed, dtype=">i8").astype(np.int64) for packed in row)
    # a row's bucket: the interval holding its first reading (the rows outside the window
    # only need to stay outside it)
    at = np.searchsorted(boundaries, first_ts, side="right") - 1
    inside = (at >= 0) & (at < len(boundaries) - 1)
    bucket = np.where(inside, boundaries[np.clip(at, 0, len(boundaries) - 1)],
                      first_ts - first_ts % width)
    return Rollup(width, bucket, first_ts, first_value, last_ts, last_value, quarters)


def grid_width(boundaries: I64, tz: ZoneInfo, *, zones: bool) -> int:
    """Hourly when every boundary (and, with zones, every local hour) is on a UTC hour."""
    if len(boundaries) and np.all(boundaries % HOUR == 0):
        if not zones:
            return HOUR
        hours = np.arange(boundaries[0], boundaries[-1] + 1, HOUR, dtype=np.int64)
        if np.all(utc_offsets(hours, tz) % HOUR == 0):
            return HOUR
    return QUARTER


# --- buckets, zones and peaks ------------------------------------------------------------------

@dataclass(frozen=True)
class Buckets:
    """Consumption per bucket (and per zone, when asked)."""

    boundaries: I64  # n + 1 instants
    quantity: I64
    quarters: I64
    estimated: I64
    missing: I64
    by_zone: I64 | None  # (n, zones)


def in_buckets(
    units: Intervals, boundaries: I64, zone: I64 | None = None, zones: int = 0
) -> Buckets:
    """Sum intervals into buckets (every interval inside exactly one; ``zone`` per interval)."""
    n = len(boundaries) - 1
    which = np.searchsorted(boundaries, units.start, side="right") - 1

    def total(values: I64) -> I64:
        return _sum(which, values, n)

    by_zone = None
    if zone is not None:
        by_zone = np.zeros((n, zones), dtype=np.int64)
        np.add.at(by_zone, (which, zone), units.quantity)
    return Buckets(boundaries, total(units.quantity), total(units.quarters),
                   total(units.estimated), total(units.missing), by_zone)


def _sum(which: I64, values: I64, n: int) -> I64:
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, which, values)
    return out


@dataclass(frozen=True)
class Peak:
    start: int  # instant the window starts
    energy: int  # micro-units consumed in the window
    estimated: bool


def peaks(units: Intervals, offsets: I64, window: int, periods: I64) -> list[Peak | None]:
    """The window (``window`` µs, aligned on the local clock) of highest consumption in each
    period [periods[i], periods[i+1]), from 15-minute intervals. Windows with a missing
    quarter-hour are left out; a period without a complete window has None."""
    local = units.start + offsets
    key = (local - local % window) - offsets  # window start as an instant
    starts, which = np.unique(key, return_inverse=True)
    energy = _sum(which, units.quantity, len(starts))
    missing = _sum(which, units.missing, len(starts))
    estimated = _sum(which, units.estimated, len(starts))
    count = _sum(which, np.ones(len(units.start), dtype=np.int64), len(starts))
    complete = (missing == 0) & (count == window // QUARTER)
    result: list[Peak | None] = []
    period = np.searchsorted(periods, starts, side="right") - 1
    for p in range(len(periods) - 1):
        candidates = np.flatnonzero(complete & (period == p))
        if len(candidates) == 0:
            result.append(None)
            continue
        best = candidates[np.argmax(energy[candidates])]  # the earliest of equal peaks
        result.append(Peak(int(starts[best]), int(energy[best]), bool(estimated[best])))
    return result


async def consumption(
    conn: psycopg.AsyncConnection[Any],
    meter: str,
    register: str,
    boundaries: I64,
    tz: ZoneInfo,
    zones: ZoneScheme | None = None,
    *,
    width: int | None = None,
) -> Buckets:
    """Consumption of one series in the buckets between ``boundaries`` (from `bucket_grid`),
    split by tariff zone when ``zones`` is given."""
    width = width or grid_width(boundaries, tz, zones=zones is not None)
    if zones is None:  # the rows summed per bucket in the database, unless they are buckets
        summed = bool(np.any(np.diff(boundaries) != width))
        got = intervals(await load_rollup(conn, meter, register, boundaries, width,
                                          summed=summed), boundaries)
        return Buckets(boundaries, got.quantity, got.quarters, got.estimated, got.missing, None)
    grid = np.arange(boundaries[0], boundaries[-1] + 1, width, dtype=np.int64)
    units = intervals(await load_rollup(conn, meter, register, grid, width), grid)
    local_minute = (units.start + utc_offsets(units.start, tz)) // MINUTE % (24 * 60)
    return in_buckets(units, boundaries, zone_of(zones, local_minute), len(zone_names(zones)))
