"""Cumulative register readings -> consumption intervals, over whole batches at once.

A *series* is one register of one meter. Readings are cumulative (a meter's energy total), so
consumption over an interval is the difference of two readings. The rules:

- A reading at or before the last one already priced for its series (``state``) is late or
  redelivered: it is skipped, never charged twice.
- The first reading of a series with no state is its baseline: it is not charged.
- A reading below the highest accepted value before it went *backwards*: it is rejected
  (the caller dead-letters it) and the next reading is measured from the last accepted one.
- Otherwise the reading closes an interval ``(previous accepted ts, ts]`` whose quantity is
  the difference of values.

Quantities are integers in micro-units (1e-6 kWh), timestamps integers in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from meterline.instants import from_micros, micros

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

NO_STATE = np.iinfo(np.int64).min

__all__ = ["NO_STATE", "Intervals", "consumption_intervals", "from_micros", "micros"]


@dataclass(frozen=True)
class Intervals:
    """What a batch of readings amounts to. Indices point into the input arrays."""

    charged: I64  # readings that close an interval with consumption > 0
    start_ts: I64  # per charged reading: start of its interval (the previous accepted ts)
    quantity: I64  # per charged reading: consumption in micro-units
    backwards: I64  # readings rejected because the register went backwards
    previous_value: I64  # per backwards reading: the accepted value it fell below
    state_series: I64  # series whose state moves on ...
    state_ts: I64  # ... to this reading time
    state_value: I64  # ... and this value


def _empty() -> I64:
    return np.empty(0, dtype=np.int64)


def consumption_intervals(
    series: I64, ts: I64, value: I64, state_ts: I64, state_value: I64
) -> Intervals:
    """Turn a batch of readings into consumption intervals.

    ``series``, ``ts`` and ``value`` describe the readings (one element each, any order);
    ``state_ts``/``state_value`` are indexed by series id: the last accepted reading of that
    series, or ``NO_STATE`` in ``state_ts`` when the series has none.
    """
    n = len(series)
    if n == 0:
        return Intervals(*(_empty() for _ in range(8)))

    # 1. order by series then time; drop repeated (series, ts) and readings already priced
    order = np.lexsort((ts, series))
    s, t, v = series[order], ts[order], value[order]
    fresh = np.ones(n, dtype=bool)
    fresh[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    fresh &= t > state_ts[s]
    order, s, t, v = order[fresh], s[fresh], t[fresh], v[fresh]
    if len(s) == 0:
        return Intervals(*(_empty() for _ in range(8)))

    # 2. put each series' state in front of its readings as an anchor (input index -1)
    anchored = np.unique(s[state_ts[s] != NO_STATE])
    s = np.concatenate([anchored, s])
    t = np.concatenate([state_ts[anchored], t])
    v = np.concatenate([state_value[anchored], v])
    idx = np.concatenate([np.full(len(anchored), -1, dtype=np.int64), order])
    resort = np.lexsort((t, s))
    s, t, v, idx = s[resort], t[resort], v[resort], idx[resort]

    m = len(s)
    first = np.ones(m, dtype=bool)
    first[1:] = s[1:] != s[:-1]

    # 3. highest value before each reading within its series: a running maximum that does not
    #    cross series, computed on ranks offset by series position so it stays exact in int64
    values_sorted, rank = np.unique(v, return_inverse=True)
    group = np.cumsum(first) - 1
    span = np.int64(len(values_sorted))
    running = np.maximum.accumulate(group * span + rank)
    running_value = values_sorted[running - group * span]
    previous_max = np.empty(m, dtype=np.int64)
    previous_max[0] = 0
    previous_max[1:] = running_value[:-1]

    accepted = ~first & (v >= previous_max)
    backwards = ~first & ~accepted

    # 4. every accepted reading is measured from the last accepted (or first) one before it
    positions = np.arange(m, dtype=np.int64)
    last_ok = np.maximum.accumulate(np.where(first | accepted, positions, -1))
    previous_ok = np.empty(m, dtype=np.int64)
    previous_ok[0] = 0
    previous_ok[1:] = last_ok[:-1]
    quantity = v - v[previous_ok]
    charged = accepted & (quantity > 0)

    # 5. the new state of each series: its last accepted (or first) reading, if it is new
    last_of_series = np.ones(m, dtype=bool)
    last_of_series[:-1] = s[1:] != s[:-1]
    ends = last_ok[last_of_series]
    moved = idx[ends] >= 0

    return Intervals(
        charged=idx[charged],
        start_ts=t[previous_ok[charged]],
        quantity=quantity[charged],
        backwards=idx[backwards],
        previous_value=previous_max[backwards],
        state_series=s[ends][moved],
        state_ts=t[ends][moved],
        state_value=v[ends][moved],
    )
