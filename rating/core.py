"""Cumulative register readings -> consumption intervals, over whole batches at once.

A *series* is one register of one meter. Readings are cumulative (a meter's energy total), so
consumption over an interval is the difference of two readings. The register policy:

- A reading at or before the series' level (its last accepted reading), or at its reset
  candidate's time, is late or redelivered: it is not priced here, never charged twice (a late
  one is reported in ``late`` for re-rating the interval it falls inside). One between the
  level and a reset candidate came before the drop and is taken in its place.
- The first reading of a series with no state is its baseline: it is not charged.
- A reading at or above the series' *level* (its last accepted reading) closes an interval
  ``(level ts, ts]`` whose quantity is the difference of values.
- A reading below the level that the counter's width explains (``wrap``, from the meter's
  profile: a 16-bit pulse counter wraps after 65,536 pulses) rolled over: its consumption is
  ``value + wrap - level``, never negative. It counts as a rollover when the gateway flagged it
  so, or, unflagged, when the wrapped difference is under half the counter's span; a reading
  flagged ``reset`` never does.
- Any other drop (flagged ``reset``, or unflagged: an older gateway, a reading typed by a
  person) is a *candidate* new level, held in the series' ``pending`` state, charged nothing and
  not dead-lettered. The next reading decides:

  * below the candidate: it is the new candidate (the register dropped again);
  * back at or above the old level while the candidate was below it: the candidate was a
    glitch; it is refused (``backwards``) and the reading is measured from the old level;
  * otherwise the reset is confirmed (``resets``): the series re-baselines at the candidate,
    and the reading is charged from it. What the meter counted between the old level and the
    reset is unknown and not charged.

- A reading above the level that the gateway flagged ``implausible_jump`` (it grew faster than
  the meter can measure) is validated before it is billed: it is held as the series' candidate
  (``pending``, its kind ``FLAG_JUMP``), charged nothing. The next reading decides:

  * below the jump: the jump was garbage; it is refused once (``jumps_refused``, or
    ``jumps_refused_held`` when it came in an earlier batch; dead-lettered like a glitch) and
    the reading is taken as if the jump never came, unflagged (a gateway
    flags it ``reset`` measuring from the jump): charged from the old level when at or above
    it, else a rollover or a reset candidate by the rules above for an unflagged drop;
  * at or above the jump: the meter really is at the new level; the series re-baselines at the
    jump *without* charging the leap (``jumps``, for an operator to review and, if it was
    consumption, bill by a manual adjustment) and the reading is taken from the jump.

  A flagged jump that decides a reset candidate (confirms it, or shows it was a glitch) is
  held in its turn, from the level that decision leaves: a flagged reading is never charged
  before the next reading vouches for it.

Quantities are integers in micro-units (1e-6 kWh), timestamps integers in microseconds. The
common case (no drop, nothing pending) is computed with array operations; only the series of a
batch that hold a drop or a pending candidate are walked reading by reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from meterline.instants import from_micros, micros

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

NO_STATE = np.iinfo(np.int64).min

# reading flags as rating's arrays hold them (meterline.contracts.ReadingFlag)
FLAG_ROLLOVER = 1
FLAG_RESET = 2
FLAG_JUMP = 4  # implausible_jump: grew faster than the meter can measure

__all__ = ["FLAG_JUMP", "FLAG_RESET", "FLAG_ROLLOVER", "NO_STATE", "Intervals", "Resets",
           "consumption_intervals", "from_micros", "micros"]


@dataclass(frozen=True)
class Resets:
    """Confirmed register resets, one element per reset."""

    series: I64
    reading: I64  # the reading that dropped (input index), -1 when it came in an earlier batch
    confirmed_by: I64  # the reading that confirmed it (input index)
    at: I64  # time of the reading that dropped
    level: I64  # the value accepted before the drop
    value: I64  # the new level (the value of the reading that dropped)

    def __len__(self) -> int:
        return len(self.series)


@dataclass(frozen=True)
class Intervals:
    """What a batch of readings amounts to. Indices point into the input arrays."""

    charged: I64  # readings that close an interval with consumption > 0
    start_ts: I64  # per charged reading: start of its interval (the level's ts)
    quantity: I64  # per charged reading: consumption in micro-units
    backwards: I64  # readings refused: a drop the next reading showed to be a glitch
    previous_value: I64  # per backwards reading: the level it fell below
    state_series: I64  # series whose state moves on ...
    state_ts: I64  # ... to this level time
    state_value: I64  # ... and this level value
    state_pending_ts: I64 | None = None  # ... with this candidate (NO_STATE: none)
    state_pending_value: I64 | None = None
    resets: Resets | None = None
    rolled_over: I64 | None = None  # charged readings (input indices) whose counter wrapped
    late: I64 | None = None  # readings earlier than the series' state, not a redelivery of it
    state_pending_flags: I64 | None = None  # ... and the candidate's kind (FLAG_RESET, FLAG_JUMP)
    jumps: Resets | None = None  # implausible jumps confirmed: re-baselined, the leap not charged
    jumps_refused: I64 | None = None  # flagged jumps the next reading showed to be garbage
    jump_level: I64 | None = None  # per refused jump: the level it leapt from
    # refused jumps held from an earlier batch (``reading`` -1): ``confirmed_by`` is the reading
    # that refused them, ``at``/``value`` the jump's time and value, ``level`` its level
    jumps_refused_held: Resets | None = None


def _empty() -> I64:
    return np.empty(0, dtype=np.int64)


def _no_resets() -> Resets:
    return Resets(*(_empty() for _ in range(6)))


def _nothing(late: I64 | None = None) -> Intervals:
    e = _empty
    return Intervals(charged=e(), start_ts=e(), quantity=e(), backwards=e(), previous_value=e(),
                     state_series=e(), state_ts=e(), state_value=e(), state_pending_ts=e(),
                     state_pending_value=e(), resets=_no_resets(), rolled_over=e(),
                     late=e() if late is None else late, state_pending_flags=e(),
                     jumps=_no_resets(), jumps_refused=e(), jump_level=e(),
                     jumps_refused_held=_no_resets())


def consumption_intervals(
    series: I64, ts: I64, value: I64, state_ts: I64, state_value: I64, *,
    flags: I64 | None = None, wrap: I64 | None = None,
    pending_ts: I64 | None = None, pending_value: I64 | None = None,
    pending_flags: I64 | None = None,
) -> Intervals:
    """Turn a batch of readings into consumption intervals.

    ``series``, ``ts``, ``value`` and ``flags`` (``FLAG_ROLLOVER | FLAG_RESET`` bits, default
    none) describe the readings (one element each, any order). Indexed by series id:
    ``state_ts``/``state_value``, the level (``NO_STATE`` in ``state_ts`` when the series has
    none); ``wrap``, the counter's span in micro-units (0: not known); ``pending_ts``/
    ``pending_value``, a candidate (``NO_STATE``: none) and ``pending_flags`` its kind
    (``FLAG_RESET``, the default, or ``FLAG_JUMP``).
    """
    n = len(series)
    count = len(state_ts)
    flags = np.zeros(n, dtype=np.int64) if flags is None else flags
    wrap = np.zeros(count, dtype=np.int64) if wrap is None else wrap
    if pending_ts is None or pending_value is None:
        pending_ts = np.full(count, NO_STATE, dtype=np.int64)
        pending_value = np.zeros(count, dtype=np.int64)
    if pending_flags is None:
        pending_flags = np.full(count, FLAG_RESET, dtype=np.int64)
    if n == 0:
        return _nothing()

    # 1. order by series then time; drop repeated (series, ts) and readings already seen (a
    #    reading between the level and a reset candidate is not: it came before the drop)
    order = np.lexsort((ts, series))
    s, t, v, f = series[order], ts[order], value[order], flags[order]
    fresh = np.ones(n, dtype=bool)
    fresh[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    before = (t <= state_ts[s]) | (t == pending_ts[s])
    late = order[fresh & before & (t != state_ts[s]) & (t != pending_ts[s])]
    fresh &= ~before
    order, s, t, v, f = order[fresh], s[fresh], t[fresh], v[fresh], f[fresh]
    if len(s) == 0:
        return _nothing(late)

    # 2. put each series' level in front of its readings as an anchor (input index -1), and
    #    its candidate among them at its time (as a reading flagged reset, or implausible_jump)
    anchored = np.unique(s[state_ts[s] != NO_STATE])
    waiting = anchored[pending_ts[anchored] != NO_STATE]
    s = np.concatenate([anchored, waiting, s])
    t = np.concatenate([state_ts[anchored], pending_ts[waiting], t])
    v = np.concatenate([state_value[anchored], pending_value[waiting], v])
    f = np.concatenate([np.zeros(len(anchored), dtype=np.int64),
                        pending_flags[waiting], f])
    idx = np.concatenate([np.full(len(anchored) + len(waiting), -1, dtype=np.int64), order])
    resort = np.lexsort((t, s))
    s, t, v, f, idx = s[resort], t[resort], v[resort], f[resort], idx[resort]

    m = len(s)
    first = np.ones(m, dtype=bool)
    first[1:] = s[1:] != s[:-1]
    last = np.ones(m, dtype=bool)
    last[:-1] = s[1:] != s[:-1]

    # 3. the common case: every reading at or above the one before it, nothing pending
    drop = np.zeros(m, dtype=bool)
    drop[1:] = ~first[1:] & ((v[1:] < v[:-1]) | ((f[1:] & (FLAG_RESET | FLAG_JUMP)) != 0))
    walked_series = np.union1d(s[drop], s[pending_ts[s] != NO_STATE])
    walked = np.isin(s, walked_series)

    quantity = np.zeros(m, dtype=np.int64)
    start = np.zeros(m, dtype=np.int64)
    charged = np.zeros(m, dtype=bool)
    plain = ~first & ~walked
    rows = np.flatnonzero(plain)
    quantity[rows] = v[rows] - v[rows - 1]
    start[rows] = t[rows - 1]
    charged[rows] = quantity[rows] > 0

    ends = np.flatnonzero(last & ~walked & (idx >= 0))
    st_series, st_ts, st_value = [s[ends]], [t[ends]], [v[ends]]
    st_pts, st_pval = [np.full(len(ends), NO_STATE, dtype=np.int64)], [np.zeros(len(ends),
                                                                                 np.int64)]
    st_pflags = [np.full(len(ends), FLAG_RESET, dtype=np.int64)]

    # 4. the series with a drop or a candidate, reading by reading
    refused: list[int] = []
    refused_level: list[int] = []
    wrapped: list[int] = []
    reset_rows: list[tuple[int, int, int, int, int, int]] = []
    jump_rows: list[tuple[int, int, int, int, int, int]] = []
    garbage: list[int] = []
    garbage_level: list[int] = []
    garbage_held: list[tuple[int, int, int, int, int, int]] = []
    walk_series, walk = [], []
    for sid in walked_series.tolist():
        span = int(wrap[sid])
        lo, hi = int(np.searchsorted(s, sid, "left")), int(np.searchsorted(s, sid, "right"))
        # the first row is the level (the anchor) or, with no state, the baseline
        level_ts, level = int(t[lo]), int(v[lo])
        cand: tuple[int, int, int] | None = None  # (ts, value, input index)
        jump = False  # the candidate is an implausible jump (above the level), not a drop
        for r in range(lo + 1, hi):
            rt, rv, rf, ri = int(t[r]), int(v[r]), int(f[r]), int(idx[r])
            if cand is not None and jump:  # the reading decides the jump, then is taken
                if rv < cand[1]:  # back below it: the jump was garbage
                    if cand[2] >= 0:
                        garbage.append(cand[2])
                        garbage_level.append(level)
                    else:
                        garbage_held.append((sid, -1, ri, cand[0], level, cand[1]))
                    # what the gateway flagged measuring from the garbage says nothing
                    rf &= ~(FLAG_RESET | FLAG_ROLLOVER)
                else:  # at or above it: re-baseline at the jump, the leap not charged
                    jump_rows.append((sid, cand[2], ri, cand[0], level, cand[1]))
                    level_ts, level = cand[0], cand[1]
                cand, jump = None, False
            if cand is None:
                if rf & FLAG_JUMP and rv > level and not rf & FLAG_RESET:
                    cand, jump = (rt, rv, ri), True  # held until the next reading
                elif rv >= level and not rf & FLAG_RESET:
                    quantity[r], start[r], charged[r] = rv - level, level_ts, rv > level
                    level_ts, level = rt, rv
                elif (span > 0 and rv < level and not rf & FLAG_RESET
                      and (rf & FLAG_ROLLOVER or rv + span - level < span // 2)
                      and rv + span - level >= 0):
                    quantity[r], start[r], charged[r] = rv + span - level, level_ts, True
                    wrapped.append(ri)
                    level_ts, level = rt, rv
                else:
                    cand = (rt, rv, ri)
            elif rv < cand[1]:
                cand = (rt, rv, ri)  # dropped again
            elif cand[1] < level <= rv:  # back at the old level: the drop was a glitch
                if cand[2] >= 0:
                    refused.append(cand[2])
                    refused_level.append(level)
                if rf & FLAG_JUMP and rv > level:  # ... to a jump: held in its turn
                    cand, jump = (rt, rv, ri), True
                else:
                    quantity[r], start[r], charged[r] = rv - level, level_ts, rv > level
                    level_ts, level, cand = rt, rv, None
            else:  # confirmed: re-baseline at the candidate
                reset_rows.append((sid, cand[2], ri, cand[0], level, cand[1]))
                if rf & FLAG_JUMP and rv > cand[1]:  # ... and a jump from it: held in its turn
                    level_ts, level = cand[0], cand[1]
                    cand, jump = (rt, rv, ri), True
                else:
                    quantity[r], start[r], charged[r] = rv - cand[1], cand[0], rv > cand[1]
                    level_ts, level, cand = rt, rv, None
        walk_series.append(sid)
        walk.append((level_ts, level, cand[0] if cand else NO_STATE, cand[1] if cand else 0,
                     FLAG_JUMP if cand and jump else FLAG_RESET))

    if walk:
        st_series.append(np.array(walk_series, dtype=np.int64))
        columns = np.array(walk, dtype=np.int64).reshape(-1, 5).T
        st_ts.append(columns[0])
        st_value.append(columns[1])
        st_pts.append(columns[2])
        st_pval.append(columns[3])
        st_pflags.append(columns[4])
    state_series = np.concatenate(st_series)
    state_ts_out = np.concatenate(st_ts)
    state_value_out = np.concatenate(st_value)
    state_pts = np.concatenate(st_pts)
    state_pval = np.concatenate(st_pval)
    state_pflags = np.concatenate(st_pflags)
    if walk:  # a walked series whose state did not move is left out
        moved = ((state_ts_out != state_ts[state_series]) | (state_pts != pending_ts[state_series])
                 | (state_pval != pending_value[state_series])
                 | ((state_pts != NO_STATE) & (state_pflags != pending_flags[state_series])))
        state_series, state_ts_out, state_value_out, state_pts, state_pval, state_pflags = (
            state_series[moved], state_ts_out[moved], state_value_out[moved], state_pts[moved],
            state_pval[moved], state_pflags[moved])

    resets = (Resets(*(np.array(c, dtype=np.int64) for c in zip(*reset_rows, strict=True)))
              if reset_rows else _no_resets())
    jumps = (Resets(*(np.array(c, dtype=np.int64) for c in zip(*jump_rows, strict=True)))
             if jump_rows else _no_resets())
    return Intervals(
        charged=idx[charged],
        start_ts=start[charged],
        quantity=quantity[charged],
        backwards=np.array(refused, dtype=np.int64),
        previous_value=np.array(refused_level, dtype=np.int64),
        state_series=state_series,
        state_ts=state_ts_out,
        state_value=state_value_out,
        state_pending_ts=state_pts,
        state_pending_value=state_pval,
        resets=resets,
        rolled_over=np.array(wrapped, dtype=np.int64),
        late=late,
        state_pending_flags=state_pflags,
        jumps=jumps,
        jumps_refused=np.array(garbage, dtype=np.int64),
        jump_level=np.array(garbage_level, dtype=np.int64),
        jumps_refused_held=(
            Resets(*(np.array(c, dtype=np.int64) for c in zip(*garbage_held, strict=True)))
            if garbage_held else _no_resets()),
    )
