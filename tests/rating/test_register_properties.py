"""Properties of the register policy (``rating.core``), tried by hypothesis on the pure core:
whatever a register does (grows, rolls over, is reset, again and again), it is charged exactly
what was consumed between readings the policy can vouch for, never a negative quantity, and
rating its readings in consecutive batches gives what rating them in one batch gives."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from rating.core import FLAG_RESET, FLAG_ROLLOVER, NO_STATE, consumption_intervals

SPAN = 65_536 * 10_000  # a 16-bit pulse counter of 0.01 m3, in micro-units
MOST = 10**6  # the most a register grows between two readings here


@dataclass(frozen=True)
class Series:
    ts: list[int]
    value: list[int]
    flags: list[int]
    wrap: int
    consumed: int  # what the steps the policy can vouch for consumed (all but resets)
    resets: int  # runs of resets followed by a reading that confirms them


@st.composite
def registers(draw: st.DrawFn) -> Series:
    wrap = draw(st.sampled_from([0, SPAN]))
    # a counter near its top, so that it wraps within a few readings
    value = SPAN - draw(st.integers(1, 5 * MOST)) if wrap else draw(st.integers(10**9, 10**12))
    ts, values, flags = [1], [value], [0]
    consumed = resets = 0
    in_reset = False
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["grow", "grow", "grow", "reset"]))
        flag = 0
        if kind == "reset" and value > MOST:
            # the register shows less than before, by more than the next reading could grow
            # back (a reading back at the old level would show the drop was a glitch)
            drop = draw(st.integers(0, value - MOST - 1))
            if wrap and drop + SPAN - value < SPAN // 2:
                flag = FLAG_RESET  # a wrap could explain it: only the gateway can tell
            elif draw(st.booleans()):
                flag = FLAG_RESET
            value, in_reset = drop, True
        else:
            step = draw(st.integers(0, MOST))
            if wrap and value + step >= SPAN:
                flag = draw(st.sampled_from([0, FLAG_ROLLOVER]))
            value = (value + step) % SPAN if wrap else value + step
            consumed += step
            resets += in_reset
            in_reset = False
        event(f"{kind}{' wrapped' if wrap and kind == 'grow' and value < values[-1] else ''}")
        ts.append(ts[-1] + draw(st.integers(1, 3_600)) * 1_000_000)
        values.append(value)
        flags.append(flag)
    return Series(ts, values, flags, wrap, consumed, resets)


@dataclass(frozen=True)
class Rated:
    intervals: list[set[tuple[int, int, int]]]  # per register: (start, end, quantity)
    resets: list[list[tuple[int, int, int]]]  # per register: (time, level before, new level)
    state: list[tuple[int, int, int, int]]  # per register: level ts, value, candidate ts, value


def rate(series: list[Series], cuts: list[int]) -> Rated:
    """Rate the registers' readings in batches cut at ``cuts`` (positions in each register's
    readings), carrying the state from batch to batch as the database would."""
    count = len(series)
    state_ts = np.full(count, NO_STATE, dtype=np.int64)
    state_value = np.zeros(count, dtype=np.int64)
    pending_ts = np.full(count, NO_STATE, dtype=np.int64)
    pending_value = np.zeros(count, dtype=np.int64)
    wrap = np.array([s.wrap for s in series], dtype=np.int64)
    rated = Rated([set() for _ in series], [[] for _ in series], [])
    bounds = [0, *cuts, max(len(s.ts) for s in series)]
    for lo, hi in itertools.pairwise(bounds):
        rows = [(k, s.ts[i], s.value[i], s.flags[i]) for k, s in enumerate(series)
                for i in range(lo, min(hi, len(s.ts)))]
        if not rows:
            continue
        rows = rows[::-1] + rows[: len(rows) // 3]  # any order, some delivered twice
        sid, ts, value, flags = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
        out = consumption_intervals(sid, ts, value, state_ts, state_value, flags=flags,
                                    wrap=wrap, pending_ts=pending_ts, pending_value=pending_value)
        assert (out.quantity > 0).all()  # never a zero or negative charge
        assert out.backwards.size == 0  # no glitch made up: nothing refused
        for i, start, q in zip(out.charged.tolist(), out.start_ts.tolist(),
                               out.quantity.tolist(), strict=True):
            rated.intervals[int(sid[i])].add((start, int(ts[i]), q))
        assert out.resets is not None
        for k, at, level, new in zip(out.resets.series.tolist(), out.resets.at.tolist(),
                                     out.resets.level.tolist(), out.resets.value.tolist(),
                                     strict=True):
            rated.resets[k].append((at, level, new))
        assert out.state_pending_ts is not None and out.state_pending_value is not None
        at_ = out.state_series
        state_ts[at_], state_value[at_] = out.state_ts, out.state_value
        pending_ts[at_], pending_value[at_] = out.state_pending_ts, out.state_pending_value
    rated.state.extend(zip(state_ts.tolist(), state_value.tolist(), pending_ts.tolist(),
                           pending_value.tolist(), strict=True))
    return rated


@settings(max_examples=200, deadline=None)
@given(series=st.lists(registers(), min_size=1, max_size=3), data=st.data())
def test_a_register_is_charged_what_was_consumed_in_one_batch_or_many(
    series: list[Series], data: st.DataObject,
) -> None:
    longest = max(len(s.ts) for s in series)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, longest - 1), max_size=4))))
    whole = rate(series, [])
    # exactly what was consumed, but across a reset (unknown), and one reset event per run
    assert [sum(q for _, _, q in found) for found in whole.intervals] == [
        s.consumed for s in series]
    assert [len(r) for r in whole.resets] == [s.resets for s in series]
    # in parts as whole: the same intervals, resets and final state
    parts = rate(series, cuts)
    assert parts.intervals == whole.intervals
    assert parts.resets == whole.resets
    assert parts.state == whole.state
