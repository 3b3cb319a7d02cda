"""The simulation maths, without any server."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.load_profiles import (
    BASE_KW_RANGE,
    DAY_S,
    HOUR_S,
    Harmonic,
    LoadProfile,
    meter_profile,
)

T0 = 1_790_000_000.0  # a UNIX time in 2026: large, as in a running simulation


def test_same_seed_and_unit_give_the_same_profile() -> None:
    assert meter_profile(1, 5) == meter_profile(1, 5)
    assert meter_profile(1, 5) != meter_profile(1, 6)
    assert meter_profile(1, 5) != meter_profile(2, 5)


def test_base_loads_spread_over_the_household_range() -> None:
    bases = [meter_profile(seed, unit).load.base_kw for seed in (1, 2) for unit in range(1, 248)]
    assert all(BASE_KW_RANGE[0] <= b <= BASE_KW_RANGE[1] for b in bases)
    assert max(bases) - min(bases) > 2.0  # each meter its own load, not one shared value
    assert len(set(bases)) == len(bases)


def test_power_stays_positive_and_within_its_bounds() -> None:
    for unit in (1, 2, 3):
        load = meter_profile(1, unit).load
        powers = [load.power_kw(T0 + s) for s in np.linspace(0, 7 * DAY_S, 20_000)]
        assert load.min_kw > 0
        assert min(powers) >= load.min_kw - 1e-9
        assert max(powers) <= load.max_kw + 1e-9


def test_energy_is_the_integral_of_power() -> None:
    load = meter_profile(3, 9).load
    grid = np.linspace(T0, T0 + DAY_S, 200_001)
    power = np.array([load.power_kw(t) for t in grid])
    numeric_kwh = float(np.trapezoid(power, grid)) / HOUR_S
    assert load.energy_kwh(T0, T0 + DAY_S) == pytest.approx(numeric_kwh, rel=1e-7)


def test_energy_adds_up_over_consecutive_intervals() -> None:
    load = meter_profile(1, 1).load
    whole = load.energy_kwh(T0, T0 + 5 * HOUR_S)
    pieces = sum(load.energy_kwh(T0 + i * 600.0, T0 + (i + 1) * 600.0) for i in range(30))
    assert pieces == pytest.approx(whole, rel=1e-9)


def test_short_intervals_keep_their_precision_at_large_times() -> None:
    load = meter_profile(1, 2).load
    for dt in (1e-3, 1e-1, 1.0):
        t1 = T0 + dt  # dt as float64 can hold it next to T0 (about 2.4e-7 s apart)
        expected = load.power_kw((T0 + t1) / 2) * (t1 - T0) / HOUR_S
        assert load.energy_kwh(T0, t1) == pytest.approx(expected, rel=1e-6)


def test_empty_or_reversed_interval_consumes_nothing() -> None:
    load = meter_profile(1, 1).load
    assert load.energy_kwh(T0, T0) == 0.0
    assert load.energy_kwh(T0 + 10, T0) == 0.0


def test_daily_shape_peaks_in_the_evening() -> None:
    profile = meter_profile(1, 4)
    day_start = math.floor(T0 / DAY_S) * DAY_S
    hourly = [profile.load.energy_kwh(day_start + h * HOUR_S, day_start + (h + 1) * HOUR_S)
              for h in range(24)]
    peak_hour = hourly.index(max(hourly))
    assert 13 <= peak_hour <= 20  # UTC: the evening in Moscow
    assert max(hourly) > 1.8 * min(hourly)


def test_supply_is_a_plausible_single_phase_grid() -> None:
    supply = meter_profile(1, 1).supply
    for t in np.linspace(T0, T0 + DAY_S, 500):
        assert 215.0 < supply.voltage_v(t) < 245.0
        assert 49.9 < supply.frequency_hz(t) < 50.1


def test_profiles_refuse_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="add up to < 1"):
        LoadProfile(1.0, (Harmonic(0.6, DAY_S, 0.0), Harmonic(0.5, 600.0, 0.0)))
    with pytest.raises(ValueError, match="base load"):
        LoadProfile(0.0)
    with pytest.raises(ValueError, match="period"):
        Harmonic(0.1, 0.0, 0.0)
