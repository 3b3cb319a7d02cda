"""Interval aggregates computed directly from raw readings in Python: what the telemetry
store's rollups (readings_15m, readings_1h) must hold, on either storage path."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from meterline.telemetry import MICRO, ReadingColumns

QUARTER = 15 * 60 * MICRO
HOUR = 4 * QUARTER

# (meter, register, bucket) -> (first ts, first value, last ts, last value, readings[, quarters])
Rollup = dict[tuple[str, str, int], tuple[int, ...]]


def _rows(columns: ReadingColumns) -> list[tuple[str, str, int, int]]:
    """Distinct readings, sorted; the first of two with the same key wins (as stored)."""
    n = len(columns)
    meters = np.broadcast_to(np.asarray(columns.meter), (n,))
    registers = np.broadcast_to(np.asarray(columns.register), (n,))
    seen: dict[tuple[str, str, int], int] = {}
    for m, r, t, v in zip(meters, registers, columns.ts, columns.value, strict=True):
        seen.setdefault((str(m), str(r), int(t)), int(v))
    return sorted((m, r, t, v) for (m, r, t), v in seen.items())


def rollup_15m(columns: ReadingColumns) -> Rollup:
    out: Rollup = {}
    for m, r, t, v in _rows(columns):
        key = (m, r, t - t % QUARTER)
        if key in out:
            first_ts, first_value, _, _, n = out[key]
            out[key] = (first_ts, first_value, t, v, n + 1)
        else:
            out[key] = (t, v, t, v, 1)
    return out


def rollup_1h(columns: ReadingColumns) -> Rollup:
    out: Rollup = {}
    for (m, r, bucket), (first_ts, first_value, last_ts, last_value, n) in sorted(
        rollup_15m(columns).items()
    ):
        key = (m, r, bucket - bucket % HOUR)
        if key in out:
            f_ts, f_value, _, _, total, quarters = out[key]
            out[key] = (f_ts, f_value, last_ts, last_value, total + n, quarters + 1)
        else:
            out[key] = (first_ts, first_value, last_ts, last_value, n, 1)
    return out


def _us(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000000)::int8"


async def stored_rollup(
    conn: psycopg.AsyncConnection[Any], view: str, meters: Sequence[str]
) -> Rollup:
    """What ``view`` (readings_15m or readings_1h) answers for these meters, in the same shape."""
    extra = ", quarters" if view == "readings_1h" else ""
    cur = await conn.execute(
        f"SELECT meter_id, register, {_us('bucket')}, {_us('first_ts')},"
        f" (first_value * 1000000)::int8, {_us('last_ts')}, (last_value * 1000000)::int8,"
        f" readings{extra} FROM {view} WHERE meter_id = ANY(%s)",
        (list(meters),),
    )
    return {(m, r, b): tuple(int(x) for x in rest) for m, r, b, *rest in await cur.fetchall()}


def series_of(columns: ReadingColumns, meter: str) -> list[tuple[int, int]]:
    """(ts, value) of one meter's readings, distinct and sorted."""
    return [(t, v) for m, _, t, v in _rows(columns) if m == meter]


def level(readings: list[tuple[int, int]], at: int) -> int:
    """The register's level at ``at``: interpolated between the readings around it, rounded
    down to a micro-unit; before the first or after the last reading, held at that reading."""
    after = bisect.bisect_left(readings, (at, -(2**63)))  # first reading at or after
    if after == len(readings):
        return readings[-1][1]
    t1, v1 = readings[after]
    if t1 == at or after == 0:
        return v1
    t0, v0 = readings[after - 1]
    return v0 + (v1 - v0) * (at - t0) // (t1 - t0)


def quarter_status(readings: list[tuple[int, int]], quarter: int) -> str:
    if not readings or readings[0][0] > quarter or readings[-1][0] < quarter + QUARTER:
        return "missing"
    inside = bisect.bisect_left(readings, (quarter, -(2**63)))
    if inside < len(readings) and readings[inside][0] < quarter + QUARTER:
        return "actual"
    return "estimated"


def direct_buckets(
    readings: list[tuple[int, int]], boundaries: Sequence[int],
    zone_of_quarter: Any = None,
) -> list[tuple[int, int, int, dict[Any, int]]]:
    """Per bucket: (quantity, estimated quarter-hours, missing quarter-hours, quantity by
    zone) straight from the raw readings, one quarter-hour at a time."""
    out = []
    for start, end in itertools.pairwise(boundaries):
        counts = {"actual": 0, "estimated": 0, "missing": 0}
        zones: dict[Any, int] = {}
        for q in range(start, end, QUARTER):
            if readings:
                counts[quarter_status(readings, q)] += 1
            else:
                counts["missing"] += 1
            if zone_of_quarter is not None and readings:
                zone = zone_of_quarter(q)
                zones[zone] = zones.get(zone, 0) + level(readings, q + QUARTER) - level(readings, q)
        quantity = level(readings, end) - level(readings, start) if readings else 0
        out.append((quantity, counts["estimated"], counts["missing"], zones))
    return out
