"""One meter's state: energy accumulation and the relay, without any server."""

from __future__ import annotations

import random

import numpy as np
import pytest

from simulators.electricity_meter import SimulatedMeter
from simulators.load_profiles import HOUR_S, meter_profile

T0 = 1_790_000_000.0


def make_meter(unit: int = 1) -> SimulatedMeter:
    return SimulatedMeter(unit, 10_000_000 + unit - 1, meter_profile(5, unit), T0)


def test_energy_grows_by_the_profile_while_the_relay_is_closed() -> None:
    meter = make_meter()
    opening = meter.profile.opening_kwh
    readout = meter.readout(T0 + 2 * HOUR_S)
    assert readout.import_active_energy == pytest.approx(
        opening + meter.profile.load.energy_kwh(T0, T0 + 2 * HOUR_S), rel=1e-15
    )
    assert readout.import_active_energy > opening
    assert readout.export_active_energy == 0.0
    assert readout.total_active_energy == readout.import_active_energy
    power_kw = meter.profile.load.power_kw(T0 + 2 * HOUR_S)
    assert readout.active_power == pytest.approx(power_kw * 1000)
    assert readout.current == pytest.approx(readout.active_power / readout.voltage)


def test_open_relay_stops_energy_and_zeroes_power() -> None:
    meter = make_meter(2)
    meter.set_relay(False, T0 + HOUR_S)
    at_open = meter.import_kwh
    readout = meter.readout(T0 + 5 * HOUR_S)
    assert readout.import_active_energy == at_open
    assert readout.active_power == 0.0
    assert readout.current == 0.0
    assert readout.voltage > 200  # the line side is still live

    meter.set_relay(True, T0 + 6 * HOUR_S)
    later = meter.readout(T0 + 7 * HOUR_S)
    # only the closed hour counts, not the five open ones
    assert later.import_active_energy == pytest.approx(
        at_open + meter.profile.load.energy_kwh(T0 + 6 * HOUR_S, T0 + 7 * HOUR_S), rel=1e-15
    )
    assert later.active_power > 0


def test_time_going_backwards_changes_nothing() -> None:
    meter = make_meter()
    forward = meter.readout(T0 + HOUR_S).import_active_energy
    assert meter.readout(T0 + 10.0).import_active_energy == forward
    assert meter.time == T0 + HOUR_S


def test_registers_never_decrease_in_float64_or_float32() -> None:
    meter = make_meter(3)
    rng = random.Random(11)
    t = T0
    values = []
    for _ in range(5_000):
        t += rng.choice([0.0, 1e-6, 1e-3, 0.5, 60.0, 3_600.0])
        if rng.random() < 0.05:
            meter.set_relay(not meter.relay_closed, t)
        values.append(meter.readout(t).import_active_energy)
    as64 = np.array(values, dtype=np.float64)
    as32 = as64.astype(np.float32)
    assert np.all(np.diff(as64) >= 0)
    assert np.all(np.diff(as32) >= 0)
    assert as64[-1] > as64[0]
