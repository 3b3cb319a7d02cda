"""Consumption intervals from cumulative readings: the pure core of rating."""

from __future__ import annotations

import numpy as np
import pytest

from rating.core import FLAG_JUMP, FLAG_RESET, FLAG_ROLLOVER, NO_STATE, consumption_intervals


def arr(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def no_state(series_count: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(series_count, NO_STATE, dtype=np.int64), np.zeros(series_count, np.int64)


def test_first_reading_is_a_baseline_and_later_ones_are_deltas() -> None:
    st, sv = no_state(1)
    out = consumption_intervals(arr(0, 0, 0), arr(10, 20, 30), arr(1000, 1500, 4000), st, sv)
    assert out.charged.tolist() == [1, 2]
    assert out.start_ts.tolist() == [10, 20]
    assert out.quantity.tolist() == [500, 2500]
    assert out.backwards.size == 0
    assert (out.state_series.tolist(), out.state_ts.tolist(), out.state_value.tolist()) == (
        [0], [30], [4000])


def test_state_anchors_the_first_delta_and_order_does_not_matter() -> None:
    st, sv = arr(100, NO_STATE), arr(7_000, 0)
    series, ts, value = arr(1, 0, 0, 1), arr(5, 300, 200, 6), arr(50, 9_000, 7_500, 80)
    out = consumption_intervals(series, ts, value, st, sv)
    charged = {i: (t, q) for i, t, q in zip(out.charged.tolist(), out.start_ts.tolist(),
                                           out.quantity.tolist(), strict=True)}
    assert charged == {2: (100, 500), 1: (200, 1_500), 3: (5, 30)}
    state = {s: (t, v) for s, t, v in zip(out.state_series.tolist(), out.state_ts.tolist(),
                                          out.state_value.tolist(), strict=True)}
    assert state == {0: (300, 9_000), 1: (6, 80)}


def test_redelivered_and_late_readings_are_not_charged_again() -> None:
    st, sv = arr(300), arr(9_000)
    out = consumption_intervals(arr(0, 0, 0), arr(200, 300, 300), arr(7_500, 9_000, 9_000), st, sv)
    assert out.charged.size == 0 and out.backwards.size == 0 and out.state_series.size == 0


def test_duplicates_inside_a_batch_count_once() -> None:
    st, sv = no_state(1)
    out = consumption_intervals(arr(0, 0, 0, 0), arr(1, 2, 2, 3), arr(10, 20, 20, 35), st, sv)
    assert out.quantity.tolist() == [10, 15]


def test_a_single_reading_below_the_level_is_a_glitch_when_the_next_comes_back() -> None:
    st, sv = arr(0), arr(1_000)
    out = consumption_intervals(arr(0, 0, 0, 0), arr(1, 2, 3, 4), arr(1_200, 900, 1_250, 1_300),
                                st, sv)
    assert out.backwards.tolist() == [1]
    assert out.previous_value.tolist() == [1_200]
    assert out.charged.tolist() == [0, 2, 3]
    assert out.start_ts.tolist() == [0, 1, 3]
    assert out.quantity.tolist() == [200, 50, 50]
    assert out.quantity.sum() == 1_300 - 1_000
    assert out.resets is not None and len(out.resets) == 0
    assert out.state_value.tolist() == [1_300]


def test_a_drop_confirmed_by_the_next_reading_re_baselines_and_charges_from_the_new_level(
) -> None:
    st, sv = arr(0), arr(1_000)
    out = consumption_intervals(arr(0, 0, 0, 0), arr(1, 2, 3, 4), arr(1_200, 30, 45, 70), st, sv)
    assert out.backwards.size == 0
    assert out.charged.tolist() == [0, 2, 3]
    assert out.start_ts.tolist() == [0, 2, 3]
    assert out.quantity.tolist() == [200, 15, 25]
    assert out.resets is not None
    assert (out.resets.series.tolist(), out.resets.reading.tolist(),
            out.resets.confirmed_by.tolist(), out.resets.at.tolist(), out.resets.level.tolist(),
            out.resets.value.tolist()) == ([0], [1], [2], [2], [1_200], [30])
    assert out.state_ts.tolist() == [4] and out.state_value.tolist() == [70]
    assert out.state_pending_ts is not None and out.state_pending_ts.tolist() == [NO_STATE]


def test_a_drop_at_the_end_of_a_batch_waits_for_the_next_batch() -> None:
    st, sv = arr(0), arr(5_000)
    out = consumption_intervals(arr(0), arr(10), arr(40), st, sv)
    assert out.charged.size == 0 and out.backwards.size == 0
    assert out.state_ts.tolist() == [0] and out.state_value.tolist() == [5_000]
    assert out.state_pending_ts is not None and out.state_pending_value is not None
    assert (out.state_pending_ts.tolist(), out.state_pending_value.tolist()) == ([10], [40])
    # the next batch confirms it (the candidate comes back as the pending state)
    out = consumption_intervals(arr(0, 0), arr(20, 30), arr(41, 45), st, sv,
                                pending_ts=arr(10), pending_value=arr(40))
    assert out.quantity.tolist() == [1, 4] and out.start_ts.tolist() == [10, 20]
    assert out.resets is not None and out.resets.reading.tolist() == [-1]
    assert out.state_pending_ts is not None and out.state_pending_ts.tolist() == [NO_STATE]
    # ... or shows it was a glitch, which then refuses nothing of this batch
    out = consumption_intervals(arr(0), arr(20), arr(5_010), st, sv,
                                pending_ts=arr(10), pending_value=arr(40))
    assert out.quantity.tolist() == [10] and out.start_ts.tolist() == [0]
    assert out.backwards.size == 0


def test_a_late_reading_before_a_reset_candidate_is_charged_from_the_level() -> None:
    st, sv = arr(0), arr(1_000)
    out = consumption_intervals(arr(0), arr(5), arr(1_004), st, sv, pending_ts=arr(10),
                                pending_value=arr(3))
    assert out.quantity.tolist() == [4] and out.start_ts.tolist() == [0]
    assert out.late is not None and out.late.size == 0
    assert out.state_pending_ts is not None and out.state_pending_value is not None
    assert (out.state_ts.tolist(), out.state_value.tolist(), out.state_pending_ts.tolist(),
            out.state_pending_value.tolist()) == ([5], [1_004], [10], [3])
    # the candidate delivered again changes nothing
    again = consumption_intervals(arr(0), arr(10), arr(3), arr(5), arr(1_004),
                                  pending_ts=arr(10), pending_value=arr(3))
    assert again.charged.size == 0 and again.state_series.size == 0


def test_a_reading_flagged_reset_waits_for_confirmation_even_above_the_level() -> None:
    st, sv = arr(0), arr(1_000)
    out = consumption_intervals(arr(0, 0), arr(1, 2), arr(9_000, 9_010), st, sv,
                                flags=arr(FLAG_RESET, 0))
    assert out.quantity.tolist() == [10] and out.start_ts.tolist() == [1]
    assert out.resets is not None and out.resets.value.tolist() == [9_000]


def test_a_16_bit_counter_rolls_over_by_its_width() -> None:
    span = 65_536 * 10_000  # 65,536 pulses of 0.01 m3, in micro-units
    st, sv = arr(0), arr(span - 30_000)
    out = consumption_intervals(arr(0, 0), arr(1, 2), arr(20_000, 50_000), st, sv,
                                wrap=arr(span))
    assert out.quantity.tolist() == [50_000, 30_000]
    assert out.rolled_over is not None and out.rolled_over.tolist() == [0]
    assert out.resets is not None and len(out.resets) == 0


def test_a_flagged_rollover_of_a_counter_of_unknown_width_is_not_guessed() -> None:
    st, sv = arr(0), arr(60_000)
    out = consumption_intervals(arr(0), arr(1), arr(10), st, sv, flags=arr(FLAG_ROLLOVER))
    assert out.charged.size == 0
    assert out.state_pending_value is not None and out.state_pending_value.tolist() == [10]


def test_a_volatile_counter_back_at_zero_is_a_reset_not_a_rollover() -> None:
    span = 65_536 * 10_000
    st, sv = arr(0), arr(300_000_000)  # far from the top: wrapping would be most of the span
    out = consumption_intervals(arr(0, 0), arr(1, 2), arr(0, 10_000), st, sv, wrap=arr(span))
    assert out.quantity.tolist() == [10_000]
    assert out.resets is not None and out.resets.level.tolist() == [300_000_000]


def test_readings_before_the_state_are_reported_late_unless_redelivered() -> None:
    st, sv = arr(300), arr(9_000)
    out = consumption_intervals(arr(0, 0), arr(200, 300), arr(7_500, 9_000), st, sv)
    assert out.late is not None and out.late.tolist() == [0]


def test_zero_consumption_moves_the_state_without_a_charge() -> None:
    st, sv = arr(0), arr(5_000)
    out = consumption_intervals(arr(0, 0), arr(10, 20), arr(5_000, 5_000), st, sv)
    assert out.charged.size == 0
    assert out.state_ts.tolist() == [20]


def test_series_never_leak_into_each_other() -> None:
    # series 0 has large values, series 1 small: a running maximum across series would
    # wrongly reject every reading of series 1
    st, sv = no_state(2)
    out = consumption_intervals(arr(0, 0, 1, 1), arr(1, 2, 1, 2), arr(10**12, 10**12 + 5, 3, 4),
                                st, sv)
    assert sorted(out.quantity.tolist()) == [1, 5]
    assert out.backwards.size == 0


@pytest.mark.parametrize("seed", range(5))
def test_total_charged_equals_last_minus_first_for_monotone_series(seed: int) -> None:
    rng = np.random.default_rng(seed)
    series_count, n = 50, 5_000
    series = rng.integers(0, series_count, n).astype(np.int64)
    ts = rng.permutation(n).astype(np.int64) + 1
    # value grows with time within a series: make it a cumulative sum in time order
    value = np.empty(n, dtype=np.int64)
    for s in range(series_count):
        mask = series == s
        order = np.argsort(ts[mask])
        v = np.cumsum(rng.integers(0, 1_000, mask.sum()))
        out_v = np.empty(mask.sum(), dtype=np.int64)
        out_v[order] = v
        value[mask] = out_v
    st, sv = no_state(series_count)
    out = consumption_intervals(series, ts, value, st, sv)
    assert out.backwards.size == 0
    for s in range(series_count):
        mask = series == s
        if not mask.any():
            continue
        charged = np.isin(out.charged, np.flatnonzero(mask))
        assert out.quantity[charged].sum() == value[mask].max() - value[mask][ts[mask].argmin()]


# A gas counter pushed 241.67 m3 ahead by a fault (micro-units): the leap must not be billed.
LEAP = 241_670_000


def test_an_unflagged_leap_is_charged_as_before() -> None:
    st, sv = arr(0), arr(1_000_000)
    out = consumption_intervals(arr(0), arr(1), arr(1_000_000 + LEAP), st, sv)
    assert out.quantity.tolist() == [LEAP]
    assert out.jumps is not None and len(out.jumps) == 0


def test_a_flagged_jump_the_next_reading_confirms_re_baselines_without_charging_the_leap(
) -> None:
    st, sv = arr(0), arr(1_000_000)
    jumped = 1_000_000 + LEAP
    out = consumption_intervals(arr(0, 0, 0), arr(1, 2, 3),
                                arr(jumped, jumped + 20_000, jumped + 50_000), st, sv,
                                flags=arr(FLAG_JUMP, 0, 0))
    assert out.charged.tolist() == [1, 2]
    assert out.start_ts.tolist() == [1, 2]
    assert out.quantity.tolist() == [20_000, 30_000]
    assert out.jumps is not None
    assert (out.jumps.series.tolist(), out.jumps.reading.tolist(),
            out.jumps.confirmed_by.tolist(), out.jumps.at.tolist(), out.jumps.level.tolist(),
            out.jumps.value.tolist()) == ([0], [0], [1], [1], [1_000_000], [jumped])
    assert out.jumps_refused is not None and out.jumps_refused.size == 0
    assert out.backwards.size == 0
    assert out.resets is not None and len(out.resets) == 0
    assert (out.state_ts.tolist(), out.state_value.tolist()) == ([3], [jumped + 50_000])
    assert out.state_pending_ts is not None and out.state_pending_ts.tolist() == [NO_STATE]


def test_a_flagged_jump_the_next_reading_falls_back_from_is_refused_and_charged_from_the_level(
) -> None:
    st, sv = arr(0), arr(1_000_000)
    out = consumption_intervals(arr(0, 0, 0), arr(1, 2, 3),
                                arr(1_000_000 + LEAP, 1_020_000, 1_050_000), st, sv,
                                flags=arr(FLAG_JUMP, 0, 0))
    assert out.jumps_refused is not None and out.jumps_refused.tolist() == [0]
    assert out.jump_level is not None and out.jump_level.tolist() == [1_000_000]
    assert out.charged.tolist() == [1, 2]
    assert out.start_ts.tolist() == [0, 2]
    assert out.quantity.tolist() == [20_000, 30_000]
    assert out.jumps is not None and len(out.jumps) == 0
    assert out.backwards.size == 0
    assert out.state_value.tolist() == [1_050_000]


def test_a_flagged_jump_waits_for_the_next_batch_which_decides_it_once() -> None:
    st, sv = arr(0), arr(1_000_000)
    jumped = 1_000_000 + LEAP
    out = consumption_intervals(arr(0), arr(1), arr(jumped), st, sv, flags=arr(FLAG_JUMP))
    assert out.charged.size == 0 and out.backwards.size == 0
    assert out.state_pending_ts is not None and out.state_pending_value is not None
    assert out.state_pending_flags is not None
    assert (out.state_ts.tolist(), out.state_value.tolist(), out.state_pending_ts.tolist(),
            out.state_pending_value.tolist(), out.state_pending_flags.tolist()) == (
        [0], [1_000_000], [1], [jumped], [FLAG_JUMP])
    pending = {"pending_ts": arr(1), "pending_value": arr(jumped),
               "pending_flags": arr(FLAG_JUMP)}
    # the jump delivered again changes nothing
    again = consumption_intervals(arr(0), arr(1), arr(jumped), st, sv, flags=arr(FLAG_JUMP),
                                  **pending)
    assert again.charged.size == 0 and again.state_series.size == 0
    # at or above the jump: re-baselined there, only what came after it is charged
    confirmed = consumption_intervals(arr(0, 0), arr(1, 2), arr(jumped, jumped + 10_000), st, sv,
                                      flags=arr(FLAG_JUMP, 0), **pending)
    assert confirmed.quantity.tolist() == [10_000] and confirmed.start_ts.tolist() == [1]
    assert confirmed.jumps is not None
    assert (confirmed.jumps.reading.tolist(), confirmed.jumps.level.tolist(),
            confirmed.jumps.value.tolist()) == ([-1], [1_000_000], [jumped])
    assert (confirmed.state_ts.tolist(), confirmed.state_value.tolist()) == (
        [2], [jumped + 10_000])
    # redelivered once decided: nothing charged twice, no second jump
    after = consumption_intervals(arr(0, 0), arr(1, 2), arr(jumped, jumped + 10_000),
                                  confirmed.state_ts, confirmed.state_value,
                                  flags=arr(FLAG_JUMP, 0))
    assert after.charged.size == 0 and after.jumps is not None and len(after.jumps) == 0
    # ... or back below it: charged from the old level, the jump left behind
    refused = consumption_intervals(arr(0), arr(2), arr(1_010_000), st, sv, **pending)
    assert refused.quantity.tolist() == [10_000] and refused.start_ts.tolist() == [0]
    # ... refused once, though its reading came in the earlier batch
    assert refused.jumps_refused is not None and refused.jumps_refused.size == 0
    held = refused.jumps_refused_held
    assert held is not None
    assert (held.reading.tolist(), held.confirmed_by.tolist(), held.at.tolist(),
            held.level.tolist(), held.value.tolist()) == ([-1], [0], [1], [1_000_000], [jumped])
    assert refused.jumps is not None and len(refused.jumps) == 0
    assert refused.state_pending_ts is not None and refused.state_pending_ts.tolist() == [
        NO_STATE]


def test_a_jump_then_a_drop_below_the_level_refuses_the_jump_and_holds_the_drop() -> None:
    st, sv = arr(0), arr(1_000_000)
    out = consumption_intervals(arr(0, 0), arr(1, 2), arr(1_000_000 + LEAP, 5), st, sv,
                                flags=arr(FLAG_JUMP, 0))
    assert out.jumps_refused is not None and out.jumps_refused.tolist() == [0]
    assert out.charged.size == 0
    assert out.state_pending_value is not None and out.state_pending_value.tolist() == [5]
    assert out.state_pending_flags is not None
    assert out.state_pending_flags.tolist() == [FLAG_RESET]


def test_a_reset_candidate_keeps_its_kind_across_batches() -> None:
    st, sv = arr(0), arr(1_000)
    out = consumption_intervals(arr(0), arr(1), arr(40), st, sv)
    assert out.state_pending_flags is not None and out.state_pending_flags.tolist() == [
        FLAG_RESET]


def test_two_jumps_in_a_row_confirm_the_first_and_hold_the_second() -> None:
    st, sv = arr(0), arr(0)
    out = consumption_intervals(arr(0, 0, 0), arr(1, 2, 3), arr(LEAP, 2 * LEAP, 2 * LEAP + 7),
                                st, sv, flags=arr(FLAG_JUMP, FLAG_JUMP, 0))
    assert out.charged.tolist() == [2] and out.quantity.tolist() == [7]
    assert out.jumps is not None
    assert out.jumps.value.tolist() == [LEAP, 2 * LEAP]
    assert out.jumps.level.tolist() == [0, LEAP]


def test_a_flagged_jump_that_decides_a_reset_candidate_is_held_in_its_turn() -> None:
    st, sv = arr(0), arr(1_000_000)
    # a drop, then a flagged leap back above the old level: the drop was a glitch, the leap waits
    out = consumption_intervals(arr(0, 0), arr(1, 2), arr(5, 1_000_000 + LEAP), st, sv,
                                flags=arr(0, FLAG_JUMP))
    assert out.backwards.tolist() == [0] and out.charged.size == 0
    assert out.state_pending_flags is not None and out.state_pending_flags.tolist() == [FLAG_JUMP]
    assert out.state_value.tolist() == [1_000_000]
    # a drop, then a flagged leap from it below the old level: the reset is confirmed, the leap
    # waits
    out = consumption_intervals(arr(0, 0), arr(1, 2), arr(5, 5 + LEAP // 10), st, arr(LEAP),
                                flags=arr(0, FLAG_JUMP))
    assert out.resets is not None and out.resets.value.tolist() == [5]
    assert out.charged.size == 0
    assert out.state_pending_value is not None
    assert out.state_pending_value.tolist() == [5 + LEAP // 10]
    assert out.state_value.tolist() == [5]


def test_a_fall_back_the_gateway_flagged_reset_from_the_jump_is_charged_from_the_old_level(
) -> None:
    # the gateway measures from the last reading it published, the jump: the fall back below
    # it comes flagged reset, which says nothing of the old level
    st, sv = arr(0), arr(1_000_000)
    out = consumption_intervals(arr(0, 0, 0), arr(1, 2, 3),
                                arr(1_000_000 + LEAP, 1_020_000, 1_030_000), st, sv,
                                flags=arr(FLAG_JUMP, FLAG_RESET, 0))
    assert out.jumps_refused is not None and out.jumps_refused.tolist() == [0]
    assert out.quantity.tolist() == [20_000, 10_000] and out.start_ts.tolist() == [0, 2]
    assert out.resets is not None and len(out.resets) == 0
    assert out.state_pending_ts is not None and out.state_pending_ts.tolist() == [NO_STATE]
