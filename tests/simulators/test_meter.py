"""One simulated meter's state and what its registers show, without any server."""

from __future__ import annotations

import random

import numpy as np
import pytest

from meterline.profiles import Profile, shipped_profile
from simulators.faults import ClockDrift, Jump, PowerLoss, Replacement, Rollover
from simulators.load_profiles import HOUR_S, LoadKind, behaviour
from simulators.meter import KW_PER_GCAL_H, M3_PER_GCAL, MeterState, SimulatedMeter

T0 = 1_790_000_000.0
WALL = 1_700_000_000.0


def make_meter(profile_id: str = "eastron-sdm120", kind: LoadKind = LoadKind.HOUSEHOLD,
               unit: int = 1) -> SimulatedMeter:
    profile = shipped_profile(profile_id)
    habits = behaviour(kind, 5, f"test/{unit}")
    state = MeterState(profile.id, 10_000_000 + unit, habits.opening)
    return SimulatedMeter(f"test/{unit}", unit, profile, habits, state, T0)


def show(meter: SimulatedMeter, name: str, t: float) -> float:
    return meter.value(meter.profile.register(name), t, WALL)


def raw(meter: SimulatedMeter, name: str, t: float) -> int | float:
    reg = meter.profile.register(name)
    return meter.raw(reg, meter.value(reg, t, WALL))


def test_energy_grows_by_the_profile_while_the_relay_is_closed() -> None:
    meter = make_meter()
    opening = meter.behaviour.opening
    energy = show(meter, "import_active_energy", T0 + 2 * HOUR_S)
    assert energy == pytest.approx(
        opening + meter.behaviour.load.amount(T0, T0 + 2 * HOUR_S), rel=1e-15)
    assert show(meter, "export_active_energy", T0 + 2 * HOUR_S) == 0.0
    assert show(meter, "total_active_energy", T0 + 2 * HOUR_S) == energy  # import + 0
    power = show(meter, "active_power", T0 + 2 * HOUR_S)
    assert power == pytest.approx(meter.behaviour.load.rate(T0 + 2 * HOUR_S) * 1000)
    voltage = show(meter, "voltage", T0 + 2 * HOUR_S)
    assert show(meter, "current", T0 + 2 * HOUR_S) == pytest.approx(power / voltage)


def test_open_relay_stops_energy_and_zeroes_power() -> None:
    meter = make_meter(unit=2)
    meter.set_relay(False, T0 + HOUR_S)
    at_open = meter.amount
    assert show(meter, "import_active_energy", T0 + 5 * HOUR_S) == at_open
    assert show(meter, "active_power", T0 + 5 * HOUR_S) == 0.0
    assert show(meter, "voltage", T0 + 5 * HOUR_S) > 200  # the line side is still live
    meter.set_relay(True, T0 + 6 * HOUR_S)
    assert show(meter, "import_active_energy", T0 + 7 * HOUR_S) == pytest.approx(
        at_open + meter.behaviour.load.amount(T0 + 6 * HOUR_S, T0 + 7 * HOUR_S), rel=1e-15)


def test_time_going_backwards_changes_nothing() -> None:
    meter = make_meter()
    forward = show(meter, "import_active_energy", T0 + HOUR_S)
    assert show(meter, "import_active_energy", T0 + 10.0) == forward
    assert meter.time == T0 + HOUR_S
    assert meter.amount_at(T0) == meter.amount  # the past: where it is now


@pytest.mark.parametrize(("profile", "kind", "name"), [
    ("eastron-sdm120", LoadKind.HOUSEHOLD, "import_active_energy"),
    ("din-relay-meter", LoadKind.HOUSEHOLD, "import_active_energy"),
    ("pulse-counter-32", LoadKind.COLD_WATER, "volume"),
    ("heat-meter", LoadKind.HEAT, "heat_energy"),
])
def test_registers_never_decrease(profile: str, kind: LoadKind, name: str) -> None:
    meter = make_meter(profile, kind, unit=3)
    rng = random.Random(11)
    t = T0
    values = []
    for _ in range(3_000):
        t += rng.choice([0.0, 1e-6, 1e-3, 0.5, 60.0, 3_600.0])
        if rng.random() < 0.05:
            meter.set_relay(not meter.relay_closed, t)
        values.append(raw(meter, name, t))
    shown = np.array(values, dtype=np.float64)
    assert np.all(np.diff(shown) >= 0)
    if isinstance(values[0], float):
        assert np.all(np.diff(shown.astype(np.float32)) >= 0)  # as a float32 too
    assert shown[-1] > shown[0]


def test_integer_registers_hold_whole_steps_of_their_scale() -> None:
    meter = make_meter("din-relay-meter")
    kwh = show(meter, "import_active_energy", T0 + HOUR_S)
    assert raw(meter, "import_active_energy", T0 + HOUR_S) == int(kwh * 100)
    assert raw(meter, "voltage", T0 + HOUR_S) == round(show(meter, "voltage", T0 + HOUR_S) * 10)
    assert raw(meter, "meter_clock", T0) == int(WALL)


def test_a_16_bit_counter_wraps_and_a_power_loss_zeroes_it() -> None:
    meter = make_meter("pulse-counter-16", LoadKind.GAS)
    Rollover(steps=5).apply(meter, lambda: 0.0)
    assert raw(meter, "volume", meter.time) == 65_531
    t = meter.time
    while raw(meter, "volume", t) >= 65_531:
        t += 60.0
    assert raw(meter, "volume", t) < 100  # wrapped to a small number
    PowerLoss().apply(meter, lambda: 0.0)
    assert raw(meter, "volume", t) == 0
    assert raw(meter, "volume", t + HOUR_S) > 0  # and counts on from zero


def test_power_loss_keeps_non_volatile_counters() -> None:
    meter = make_meter("pulse-counter-32", LoadKind.COLD_WATER)
    before = raw(meter, "volume", T0 + HOUR_S)
    PowerLoss().apply(meter, lambda: 0.0)
    assert raw(meter, "volume", T0 + HOUR_S) == before


def test_a_replacement_is_another_serial_counting_from_its_own_opening() -> None:
    meter = make_meter()
    show(meter, "import_active_energy", T0 + HOUR_S)
    Replacement(serial=77_000_001, opening=2.5).apply(meter, lambda: 0.0)
    assert meter.serial == 77_000_001
    assert show(meter, "import_active_energy", T0 + HOUR_S) == pytest.approx(2.5)
    assert show(meter, "import_active_energy", T0 + 2 * HOUR_S) > 2.5


def test_a_jump_and_clock_drift() -> None:
    meter = make_meter("din-relay-meter")
    before = show(meter, "import_active_energy", T0)
    Jump(amount=5_000).apply(meter, lambda: 0.0)
    assert show(meter, "import_active_energy", T0) == pytest.approx(before + 5_000)
    ClockDrift(seconds=-600).apply(meter, lambda: 0.0)
    assert raw(meter, "meter_clock", T0) == int(WALL) - 600


def test_a_heat_meter_shows_heat_the_water_that_carried_it_and_temperatures() -> None:
    meter = make_meter("heat-meter", LoadKind.HEAT)
    t = T0 + HOUR_S
    heat = show(meter, "heat_energy", t)
    assert show(meter, "volume", t) == pytest.approx(heat * M3_PER_GCAL)
    rate = meter.behaviour.load.rate(t)
    assert show(meter, "heat_power", t) == pytest.approx(rate * KW_PER_GCAL_H)
    assert show(meter, "flow_rate", t) == pytest.approx(rate * M3_PER_GCAL)
    supply, back = show(meter, "flow_temperature", t), show(meter, "return_temperature", t)
    assert 60.0 <= supply <= 90.0 and supply - back == pytest.approx(25.0)
    assert raw(meter, "heat_energy", t) == int(heat * 1_000_000)  # kilocalories


def test_a_three_phase_meter_splits_its_load_over_the_phases() -> None:
    meter = make_meter("eastron-sdm630", LoadKind.INDUSTRY)
    t = T0 + HOUR_S
    phases = sum(show(meter, f"import_energy_l{p}", t) for p in (1, 2, 3))
    assert phases == pytest.approx(show(meter, "import_active_energy", t))
    power = sum(show(meter, f"power_l{p}", t) for p in (1, 2, 3))
    assert power == pytest.approx(show(meter, "total_power", t))
    assert all(show(meter, f"current_l{p}", t) > 10 for p in (1, 2, 3))


def test_every_profile_register_has_a_value_of_its_type() -> None:
    kinds = {"eastron-sdm630": LoadKind.INDUSTRY, "heat-meter": LoadKind.HEAT,
             "pulse-counter-16": LoadKind.GAS, "pulse-counter-32": LoadKind.HOT_WATER}
    profiles: list[Profile] = [shipped_profile(p) for p in (
        "eastron-sdm120", "eastron-sdm630", "din-relay-meter", "pulse-counter-16",
        "pulse-counter-32", "heat-meter")]
    for profile in profiles:
        meter = make_meter(profile.id, kinds.get(profile.id, LoadKind.HOUSEHOLD))
        for reg in profile.registers:
            words = meter.words(reg, T0 + HOUR_S, WALL)
            assert len(words) == reg.words and all(0 <= w <= 0xFFFF for w in words)
        assert len(meter.serial_words()) in (1, 2, 4)
