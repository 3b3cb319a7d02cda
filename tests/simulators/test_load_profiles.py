"""The simulation maths, without any server."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.load_profiles import (
    BASE_KW_RANGE,
    DAY_S,
    HOUR_S,
    WEEK_S,
    Harmonic,
    LoadKind,
    LoadProfile,
    behaviour,
)

T0 = 1_790_000_000.0  # a UNIX time in 2026: large, as in a running simulation
JANUARY_15, JULY_15 = 1_799_971_200.0, 1_815_609_600.0  # 2027, UTC midnight



def test_same_seed_and_unit_give_the_same_profile() -> None:
    assert behaviour(LoadKind.GAS, 1, "5") == behaviour(LoadKind.GAS, 1, "5")
    assert behaviour(LoadKind.GAS, 1, "5") != behaviour(LoadKind.GAS, 1, "6")
    assert behaviour(LoadKind.GAS, 1, "5") != behaviour(LoadKind.GAS, 2, "5")


def test_base_loads_spread_over_the_household_range() -> None:
    bases = [behaviour(LoadKind.HOUSEHOLD, seed, str(unit)).load.base
             for seed in (1, 2) for unit in range(1, 248)]
    assert all(BASE_KW_RANGE[0] <= b <= BASE_KW_RANGE[1] for b in bases)
    assert max(bases) - min(bases) > 2.0  # each meter its own load, not one shared value
    assert len(set(bases)) == len(bases)


def test_power_stays_positive_and_within_its_bounds() -> None:
    for unit in (1, 2, 3):
        for kind in LoadKind:
            load = behaviour(kind, 1, str(unit)).load
            rates = [load.rate(T0 + s) for s in np.linspace(0, 7 * DAY_S, 5_000)]
            assert load.min_rate > 0
            assert min(rates) >= load.min_rate - 1e-9
            assert max(rates) <= load.max_rate + 1e-9


def test_energy_is_the_integral_of_power() -> None:
    for kind in (LoadKind.HOUSEHOLD, LoadKind.HEAT):
        load = behaviour(kind, 3, "9").load
        grid = np.linspace(T0, T0 + DAY_S, 200_001)
        rate = np.array([load.rate(t) for t in grid])
        numeric = float(np.trapezoid(rate, grid)) / HOUR_S
        assert load.amount(T0, T0 + DAY_S) == pytest.approx(numeric, rel=1e-7)


def test_energy_adds_up_over_consecutive_intervals() -> None:
    load = behaviour(LoadKind.GAS, 1, "1").load
    whole = load.amount(T0, T0 + 5 * HOUR_S)
    pieces = sum(load.amount(T0 + i * 600.0, T0 + (i + 1) * 600.0) for i in range(30))
    assert pieces == pytest.approx(whole, rel=1e-9)


def test_short_intervals_keep_their_precision_at_large_times() -> None:
    load = behaviour(LoadKind.HOUSEHOLD, 1, "2").load
    for dt in (1e-3, 1e-1, 1.0):
        t1 = T0 + dt  # dt as float64 can hold it next to T0 (about 2.4e-7 s apart)
        expected = load.rate((T0 + t1) / 2) * (t1 - T0) / HOUR_S
        assert load.amount(T0, t1) == pytest.approx(expected, rel=1e-6)


def test_empty_or_reversed_interval_consumes_nothing() -> None:
    load = behaviour(LoadKind.HOUSEHOLD, 1, "1").load
    assert load.amount(T0, T0) == 0.0
    assert load.amount(T0 + 10, T0) == 0.0


def test_daily_shape_peaks_in_the_evening() -> None:
    profile = behaviour(LoadKind.HOUSEHOLD, 1, "4")
    hourly = hours_of_a_day(profile.load)
    peak_hour = hourly.index(max(hourly))
    assert 13 <= peak_hour <= 20  # UTC: the evening in Moscow
    assert max(hourly) > 1.8 * min(hourly)


def hours_of_a_day(load: LoadProfile, day: float = T0) -> list[float]:
    day_start = math.floor(day / DAY_S) * DAY_S
    return [load.amount(day_start + h * HOUR_S, day_start + (h + 1) * HOUR_S) for h in range(24)]


def test_water_is_drawn_in_the_morning_and_evening_and_hardly_at_night() -> None:
    for unit in range(1, 6):
        hourly = hours_of_a_day(behaviour(LoadKind.COLD_WATER, 1, str(unit)).load)
        night = sum(hourly[21:24]) / 3  # 00:00-03:00 Moscow time
        assert max(hourly[2:7]) > 2 * night and max(hourly[13:20]) > 2 * night


def test_heat_follows_the_heating_season() -> None:
    for unit in range(1, 6):
        load = behaviour(LoadKind.HEAT, 1, str(unit)).load
        january = load.amount(JANUARY_15, JANUARY_15 + WEEK_S)
        july = load.amount(JULY_15, JULY_15 + WEEK_S)
        assert january > 10 * july > 0


def test_industry_works_three_shifts_and_rests_at_weekends() -> None:
    load = behaviour(LoadKind.INDUSTRY, 1, "1").load
    monday = math.floor(T0 / WEEK_S) * WEEK_S + 4 * DAY_S  # 1970-01-05 was a Monday
    weekdays = load.amount(monday, monday + 5 * DAY_S) / 5
    weekend = load.amount(monday + 5 * DAY_S, monday + 7 * DAY_S) / 2
    assert weekdays > 1.3 * weekend
    hourly = hours_of_a_day(load, monday + DAY_S)
    assert min(hourly) > 0.4 * max(hourly)  # it never stops


def test_supply_is_a_plausible_grid_on_each_phase() -> None:
    supply = behaviour(LoadKind.INDUSTRY, 1, "1").supply
    for t in np.linspace(T0, T0 + DAY_S, 500):
        for phase in (1, 2, 3):
            assert 215.0 < supply.voltage_v(t, phase) < 245.0
        assert 49.9 < supply.frequency_hz(t) < 50.1
    shares = behaviour(LoadKind.INDUSTRY, 1, "1").phase_shares
    assert sum(shares) == pytest.approx(1.0) and min(shares) > 0.25


def test_profiles_refuse_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="add up to < 1"):
        LoadProfile(1.0, (Harmonic(0.6, DAY_S, 0.0), Harmonic(0.5, 600.0, 0.0)))
    with pytest.raises(ValueError, match="base load"):
        LoadProfile(0.0)
    with pytest.raises(ValueError, match="period"):
        Harmonic(0.1, 0.0, 0.0)
