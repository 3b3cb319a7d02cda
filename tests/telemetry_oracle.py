"""Interval aggregates computed directly from raw readings in Python: what the telemetry
store's rollups (readings_15m, readings_1h) must hold, on either storage path."""

from __future__ import annotations

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
