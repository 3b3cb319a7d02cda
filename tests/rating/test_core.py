"""Consumption intervals from cumulative readings: the pure core of rating."""

from __future__ import annotations

import numpy as np
import pytest

from rating.core import FLAG_RESET, FLAG_ROLLOVER, NO_STATE, consumption_intervals


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
