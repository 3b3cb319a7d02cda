"""Usage: interval consumption of a meter or an account, for subscribers and industrial
customers, from the telemetry store's aggregates (`meterline.consumption`, which holds the
rules: levels interpolated at bucket boundaries, quarter-hours actual, estimated or missing).

- ``GET /accounts/{id}/usage`` and ``GET /meters/{id}/usage``: consumption in buckets of 15
  minutes, 1 hour, 1 day or 1 month of the local clock, optionally split by tariff zone.
- ``GET /meters/{id}/peak-demand``: the highest average power over 30 and 60 minutes of the
  local clock, per day and for the month, with its time.
- ``GET /meters/{id}/load-profile.csv``: a month's 15-minute load profile.

Times are in the account's time zone (``tz`` overrides it) and every instant in an answer
carries its UTC offset. A range with too many buckets answers 400 with a hint, before any
query runs.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import psycopg
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.amounts import Exact
from api.auth.access import ReadableAccount, ReadableMeter, meter_with
from api.problems import ProblemError, invalid, not_found, problem_responses
from api.state import Pool, read_snapshot
from meterline.consumption import (
    HOUR,
    QUARTER,
    Bucket,
    Buckets,
    bucket_grid,
    consumption,
    from_us,
    intervals,
    load_rollup,
    local_midnight,
    peaks,
    utc_offsets,
)
from meterline.instants import micros
from meterline.tariff_zones import ZoneScheme, zone_names
from meterline.users import Scope

router = APIRouter(tags=["usage"])

# the load profile is an export of interval data (industrial customers, operators)
ExportableMeter = Annotated[str, Depends(meter_with(Scope.USAGE_EXPORT))]

# the most buckets one answer may have, and the default window, per bucket size
MAX_BUCKETS: dict[Bucket, int] = {"15m": 3_000, "1h": 9_000, "1d": 3_700, "1mo": 240}
_NOMINAL: dict[Bucket, timedelta] = {
    "15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1),
    "1mo": timedelta(days=28),
}
_HINT: dict[Bucket, str] = {
    "15m": "about 31 days; use bucket=1h for longer ranges",
    "1h": "about a year; use bucket=1d for longer ranges",
    "1d": "about 10 years; use bucket=1mo for longer ranges",
    "1mo": "20 years",
}
DEMAND_UNITS = {"kWh": "kW", "m3": "m3/h", "Gcal": "Gcal/h"}

Status = Literal["actual", "estimated", "partial", "missing"]


# --- answers ----------------------------------------------------------------------------------

class BucketUsage(BaseModel):
    start: datetime = Field(description="Bucket start, local time with its UTC offset.")
    end: datetime
    quantity: Exact | None = Field(
        description="Consumption in the bucket (the known part when some of it is missing); "
        "null when none of it is known.")
    status: Status = Field(
        description="actual: every quarter-hour measured; estimated: some quarter-hours had no "
        "reading and are interpolated between the readings around them (a reading arriving "
        "later replaces the estimate); partial: some quarter-hours are missing (no reading "
        "before or after them yet) and not counted; missing: nothing known.")
    estimated_intervals: int = Field(description="Quarter-hours estimated.")
    missing_intervals: int = Field(description="Quarter-hours missing.")
    zones: dict[str, Exact] | None = Field(
        None, description="Consumption per tariff zone, when zones were asked for.")


class SeriesUsage(BaseModel):
    meter_id: str
    utility: str
    register: str = Field(description="Register code, e.g. active_import.")
    unit: str
    total: Exact = Field(description="Sum of the buckets' known consumption.")
    estimated_intervals: int
    missing_intervals: int
    zones: dict[str, Exact] | None = None
    buckets: list[BucketUsage]


class Usage(BaseModel):
    account_id: str
    meter_id: str | None = Field(None, description="Set when one meter was asked for.")
    time_zone: str = Field(description="Time zone of every bucket, e.g. Europe/Moscow.")
    bucket: Bucket
    zones: ZoneScheme | None
    from_: datetime = Field(alias="from", description="First bucket's start.")
    to: datetime = Field(description="Last bucket's end.")
    interval_minutes: int = Field(15, description="What the status counts are counted in.")
    series: list[SeriesUsage]


class DemandPeak(BaseModel):
    start: datetime
    end: datetime
    demand: Exact = Field(description="Average power over the window.")
    estimated: bool = Field(description="The window holds estimated quarter-hours.")


class DayPeaks(BaseModel):
    date: date
    peak_30m: DemandPeak | None
    peak_60m: DemandPeak | None


class PeakDemand(BaseModel):
    meter_id: str
    register: str = Field(description="Register code, e.g. active_import.")
    unit: str = Field(description="Unit of demand: kW for energy in kWh.")
    time_zone: str
    month: str
    peak_30m: DemandPeak | None = Field(description="The month's highest 30-minute demand.")
    peak_60m: DemandPeak | None
    days: list[DayPeaks]


# --- what a request names ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Series:
    meter_id: str
    utility: str
    register: str
    unit: str


@dataclass(frozen=True)
class _Owner:
    account_id: str
    time_zone: str
    series: list[_Series]


# the account (or the meter's account), its time zone, and every register of its meters (or of
# the meter): one row per register, or one row with NULL series when there is none
_OWNER = """
SELECT a.id AS account_id, ad.time_zone, m.id AS meter_id, m.utility, r.code AS register, r.unit
  FROM accounts a
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN meters m ON m.account_id = a.id AND (%(meter)s::text IS NULL OR m.id = %(meter)s)
  LEFT JOIN registers r ON r.meter_id = m.id
 WHERE a.id = coalesce(%(account)s, (SELECT account_id FROM meters WHERE id = %(meter)s))
 ORDER BY m.id, r.code
"""


async def _owner(
    conn: psycopg.AsyncConnection[Any], account: str | None, meter: str | None
) -> _Owner:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_OWNER, {"account": account, "meter": meter})
    rows = await cur.fetchall()
    if not rows:
        raise not_found(f"No meter {meter}" if meter else f"No account {account}")
    return _Owner(rows[0]["account_id"], rows[0]["time_zone"], [
        _Series(r["meter_id"], r["utility"], r["register"], r["unit"])
        for r in rows if r["register"] is not None])


def _zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise invalid(["query", "tz"], f"unknown time zone {name!r}") from exc


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _instant(text: str | None, field: str, tz: ZoneInfo) -> int | None:
    """A date (its local midnight) or a date-time with a UTC offset, as an instant."""
    if text is None:
        return None
    try:
        if _DATE.match(text):
            return local_midnight(date.fromisoformat(text), tz)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise invalid(["query", field], f"{text!r} is not a date or a date-time") from exc
    if moment.tzinfo is None:
        raise invalid(["query", field], "a date-time needs its UTC offset (e.g. Z or +03:00)")
    return micros(moment)


def _window(bucket: Bucket, start: int | None, end: int | None, tz: ZoneInfo) -> tuple[int, int]:
    """The requested window: both ends, or one end and the default span (a day of 15-minute
    or hourly buckets, a month of days, a year of months), or the current one."""
    if start is None and end is None:
        today = datetime.now(tz).date()
        first = {"15m": today, "1h": today, "1d": today.replace(day=1),
                 "1mo": today.replace(month=1, day=1)}[bucket]
        start = local_midnight(first, tz)
    span = {"15m": 1, "1h": 1, "1d": 31, "1mo": 365}[bucket] * 24 * HOUR
    if end is None:
        assert start is not None
        end = start + span
    if start is None:
        start = end - span
    if start >= end:
        raise invalid(["query", "from"], "`from` must be before `to`")
    return start, end


def _too_large(bucket: Bucket, count: int) -> ProblemError:
    return ProblemError(
        400,
        f"{count} buckets of {bucket} in this range; at most {MAX_BUCKETS[bucket]} "
        f"({_HINT[bucket]}), or ask for a shorter range.",
        slug="range-too-large", title="Range too large for the bucket",
    )


def _grid(bucket: Bucket, start: int, end: int, tz: ZoneInfo) -> Any:
    nominal = int(_NOMINAL[bucket].total_seconds()) * 1_000_000
    if (end - start) // nominal > MAX_BUCKETS[bucket] * 1.1:  # before building a huge grid
        raise _too_large(bucket, (end - start) // nominal)
    boundaries = bucket_grid(bucket, start, end, tz)
    if len(boundaries) - 1 > MAX_BUCKETS[bucket]:
        raise _too_large(bucket, len(boundaries) - 1)
    return boundaries


# --- usage ------------------------------------------------------------------------------------

def _exact(micro: int) -> Decimal:
    return Decimal(int(micro)).scaleb(-6)


def _status(quarters: int, estimated: int, missing: int) -> Status:
    if missing == quarters:
        return "missing"
    if missing:
        return "partial"
    return "estimated" if estimated else "actual"


def _series_usage(
    s: _Series, got: Buckets, tz: ZoneInfo, names: tuple[str, ...]
) -> dict[str, Any]:
    """One series as a `SeriesUsage` answer, built as plain data: a year of days for several
    meters is thousands of buckets, and models cost more than the query."""
    edges = _local_iso(got.boundaries, tz)
    quantity, quarters = got.quantity.tolist(), got.quarters.tolist()
    estimated, missing = got.estimated.tolist(), got.missing.tolist()
    by_zone = got.by_zone.tolist() if got.by_zone is not None else None
    buckets = []
    for i in range(len(edges) - 1):
        status = _status(quarters[i], estimated[i], missing[i])
        buckets.append({
            "start": edges[i], "end": edges[i + 1],
            "quantity": None if status == "missing" else _text(quantity[i]),
            "status": status, "estimated_intervals": estimated[i],
            "missing_intervals": missing[i],
            "zones": None if by_zone is None else dict(zip(names, map(_text, by_zone[i]),
                                                           strict=True)),
        })
    zone_totals = None
    if got.by_zone is not None:
        zone_totals = dict(zip(names, map(_text, got.by_zone.sum(axis=0).tolist()), strict=True))
    return {
        "meter_id": s.meter_id, "utility": s.utility, "register": s.register, "unit": s.unit,
        "total": _text(sum(quantity)), "estimated_intervals": sum(estimated),
        "missing_intervals": sum(missing), "zones": zone_totals, "buckets": buckets,
    }


def _text(micro: int) -> str:
    """Micro-units as exact decimal text, trailing zeros dropped (as `api.amounts.Exact`)."""
    units, fraction = divmod(abs(micro), 1_000_000)
    sign = "-" if micro < 0 else ""
    return f"{sign}{units}.{fraction:06d}".rstrip("0") if fraction else f"{sign}{units}"


def _local_iso(instants: Any, tz: ZoneInfo) -> list[str]:
    """Instants (whole seconds) as ISO 8601 local times with their UTC offsets, all at once."""
    offsets = utc_offsets(instants, tz)
    local = np.datetime_as_string((instants + offsets).astype("datetime64[us]"), unit="s")
    minutes = offsets // 60_000_000
    suffix = {m: f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
              for m in set(minutes.tolist())}
    return [f"{t}{suffix[m]}" for t, m in zip(local.tolist(), minutes.tolist(), strict=True)]


FromQuery = Annotated[str | None, Query(
    alias="from", description="Start: a date (local midnight) or a date-time with its UTC "
    "offset (`Z`, or `%2B03:00` URL-encoded); the bucket holding it is the first.")]
ToQuery = Annotated[str | None, Query(
    description="End, exclusive, like `from`. Default: one day of 15m or 1h buckets, a month "
    "of 1d, a year of 1mo, from `from`; without either, the current day, month or year.")]
BucketQuery = Annotated[Bucket, Query(
    description="Bucket size, on the local clock. One answer holds at most "
    + ", ".join(f"{n:,} buckets of {b}" for b, n in MAX_BUCKETS.items())
    + ": a longer range is answered 400 with a hint.",
    json_schema_extra={"x-max-buckets": dict(MAX_BUCKETS)})]
ZonesQuery = Annotated[ZoneScheme | None, Query(
    description="Split consumption by tariff zone: two (day/night) or three "
    "(peak/semi-peak/night).")]
TzQuery = Annotated[str | None, Query(
    description="IANA time zone of the buckets; default: the account's.")]


async def _usage(
    pool: Any, account: str | None, meter: str | None, from_: str | None, to: str | None,
    bucket: Bucket, zones: ZoneScheme | None, tz_name: str | None,
) -> Response:
    async with pool.connection() as conn, conn.transaction():
        await read_snapshot(conn)
        owner = await _owner(conn, account, meter)
        tz = _zone(tz_name, owner.time_zone)
        start, end = _window(bucket, _instant(from_, "from", tz), _instant(to, "to", tz), tz)
        boundaries = _grid(bucket, start, end, tz)
        names = zone_names(zones) if zones else ()
        series = [
            _series_usage(s, await consumption(
                conn, s.meter_id, s.register, boundaries, tz, zones,
                width=QUARTER if bucket == "15m" else None), tz, names)
            for s in owner.series
        ]
    usage = {
        "account_id": owner.account_id, "meter_id": meter, "time_zone": tz.key,
        "bucket": bucket, "zones": zones, "from": from_us(int(boundaries[0]), tz).isoformat(),
        "to": from_us(int(boundaries[-1]), tz).isoformat(), "interval_minutes": 15,
        "series": series,
    }
    # the shape of `Usage` (the documented answer), serialized once
    return Response(json.dumps(usage, separators=(",", ":")), media_type="application/json")


@router.get(
    "/accounts/{account_id}/usage", response_model=Usage,
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="Consumption of an account's meters in buckets, by tariff zone",
)
async def account_usage(
    account_id: ReadableAccount, pool: Pool, from_: FromQuery = None, to: ToQuery = None,
    bucket: BucketQuery = "1h", zones: ZonesQuery = None, tz: TzQuery = None,
) -> Response:
    """Consumption of every register of every meter of the account, in buckets of the local
    clock, with each bucket's status (actual, estimated, partial, missing)."""
    return await _usage(pool, account_id, None, from_, to, bucket, zones, tz)


@router.get(
    "/meters/{meter_id}/usage", response_model=Usage,
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="Consumption of a meter in buckets, by tariff zone",
)
async def meter_usage(
    meter_id: ReadableMeter, pool: Pool, from_: FromQuery = None, to: ToQuery = None,
    bucket: BucketQuery = "1h", zones: ZonesQuery = None, tz: TzQuery = None,
) -> Response:
    """Consumption of every register of the meter, like the account's usage."""
    return await _usage(pool, None, meter_id, from_, to, bucket, zones, tz)


# --- a month of 15-minute intervals: load profile and peak demand ------------------------------

MonthQuery = Annotated[str | None, Query(
    pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="The month, YYYY-MM; default: this month.")]


@dataclass(frozen=True)
class _Month:
    owner: _Owner
    tz: ZoneInfo
    label: str
    boundaries: Any  # the local month's quarter-hours
    profiles: list[tuple[_Series, Any]]  # (series, Intervals)


async def _month(pool: Any, meter: str, month: str | None, tz_name: str | None) -> _Month:
    async with pool.connection() as conn, conn.transaction():
        await read_snapshot(conn)
        owner = await _owner(conn, None, meter)
        tz = _zone(tz_name, owner.time_zone)
        first = (date.fromisoformat(f"{month}-01") if month
                 else datetime.now(tz).date().replace(day=1))
        following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        start, end = local_midnight(first, tz), local_midnight(following, tz)
        quarters = np.arange(start, end + 1, QUARTER, dtype=np.int64)
        profiles = [
            (s, intervals(await load_rollup(conn, meter, s.register, quarters, QUARTER),
                          quarters))
            for s in owner.series
        ]
    return _Month(owner, tz, first.strftime("%Y-%m"), quarters, profiles)


def _demand(energy: int, window: int) -> Decimal:
    """Average power: micro-units over the window, per hour (windows divide an hour)."""
    return _exact(energy * HOUR // window)


@router.get(
    "/meters/{meter_id}/peak-demand", response_model=list[PeakDemand],
    responses=problem_responses(401, 403, 404, 422),
    summary="Highest 30- and 60-minute demand per day and for the month",
)
async def peak_demand(
    meter_id: ReadableMeter, pool: Pool, month: MonthQuery = None, tz: TzQuery = None,
) -> list[PeakDemand]:
    """For each register of the meter: the highest average power over a 30-minute and a
    60-minute window of the local clock (xx:00-xx:30, xx:30-xx:00; whole hours), per day and
    for the month, with the window's time. Windows with a missing quarter-hour are left out;
    one holding estimated quarter-hours is marked."""
    m = await _month(pool, meter_id, month, tz)
    days = bucket_grid("1d", int(m.boundaries[0]), int(m.boundaries[-1]), m.tz)
    whole = np.array([m.boundaries[0], m.boundaries[-1]], dtype=np.int64)
    answers = []
    for s, units in m.profiles:
        offsets = utc_offsets(units.start, m.tz)

        def peak(found: Any, window: int) -> DemandPeak | None:
            if found is None:
                return None
            return DemandPeak(start=from_us(found.start, m.tz),
                              end=from_us(found.start + window, m.tz),
                              demand=_demand(found.energy, window), estimated=found.estimated)

        per_day = {w: peaks(units, offsets, w, days) for w in (2 * QUARTER, HOUR)}
        month_peak = {w: peaks(units, offsets, w, whole)[0] for w in (2 * QUARTER, HOUR)}
        answers.append(PeakDemand(
            meter_id=s.meter_id, register=s.register,
            unit=DEMAND_UNITS.get(s.unit, f"{s.unit}/h"), time_zone=m.tz.key, month=m.label,
            peak_30m=peak(month_peak[2 * QUARTER], 2 * QUARTER),
            peak_60m=peak(month_peak[HOUR], HOUR),
            days=[DayPeaks(date=from_us(int(d), m.tz).date(),
                           peak_30m=peak(per_day[2 * QUARTER][i], 2 * QUARTER),
                           peak_60m=peak(per_day[HOUR][i], HOUR))
                  for i, d in enumerate(days[:-1])],
        ))
    return answers


@dataclass(frozen=True)
class Quarter:
    """One quarter-hour of a load profile, as the CSV export and the cabinet show it."""

    meter_id: str
    register: str
    start: str  # local, with its UTC offset
    end: str
    quantity: str  # empty when missing
    unit: str
    average_demand: str
    demand_unit: str
    status: Literal["actual", "estimated", "missing"]


CSV_COLUMNS = ["meter_id", "register", "start", "end", "quantity", "unit", "average_demand",
               "demand_unit", "status"]


async def quarter_hours(pool: Any, meter_id: str, month: str | None,
                        tz: str | None = None) -> tuple[str, str, list[Quarter]]:
    """(the month, its time zone, each register's quarter-hours of the local month)."""
    m = await _month(pool, meter_id, month, tz)
    rows = []
    for s, units in m.profiles:
        demand_unit = DEMAND_UNITS.get(s.unit, f"{s.unit}/h")
        edges = _local_iso(m.boundaries, m.tz)
        for i, (q, est, miss) in enumerate(zip(units.quantity.tolist(), units.estimated.tolist(),
                                               units.missing.tolist(), strict=True)):
            rows.append(Quarter(
                s.meter_id, s.register, edges[i], edges[i + 1], "" if miss else _text(q),
                s.unit, "" if miss else _text(q * 4), demand_unit,
                "missing" if miss else "estimated" if est else "actual"))
    return m.label, m.tz.key, rows


async def load_profile_csv(pool: Any, meter_id: str, month: str | None,
                           tz: str | None = None) -> Response:
    """The month's load profile as a CSV download (the API's and the cabinet's)."""
    label, zone, rows = await quarter_hours(pool, meter_id, month, tz)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([getattr(r, c) for c in CSV_COLUMNS] for r in rows)
    filename = f"load-profile-{meter_id}-{label}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "X-Time-Zone": zone})


@router.get(
    "/meters/{meter_id}/load-profile.csv",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 404, 422)},
    summary="A month's 15-minute load profile as CSV",
)
async def load_profile(
    meter_id: ExportableMeter, pool: Pool, month: MonthQuery = None, tz: TzQuery = None,
) -> Response:
    """One row per register and quarter-hour of the local month: start and end with their
    UTC offsets, consumption, average demand over the quarter-hour, and status (actual,
    estimated, missing; a missing quarter-hour has empty figures)."""
    return await load_profile_csv(pool, meter_id, month, tz)
