"""Deterministic load profiles of simulated households: pure maths, no I/O.

A profile gives the active power a meter sees at any simulated instant and the exact energy
consumed between two instants. Power is a base load shaped by a few sinusoids (a daily
cycle, a twice-daily morning/evening shape, a fast appliance cycle), so its integral has a
closed form: energy does not depend on how often anyone looks at the meter.

Time ``t`` is simulated UNIX time in seconds (UTC).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DAY_S = 86_400.0
HOUR_S = 3_600.0
BASE_KW_RANGE = (0.3, 3.0)
_TWO_PI = 2.0 * math.pi


@dataclass(frozen=True, slots=True)
class Harmonic:
    """One sinusoid of a load shape: ``amplitude * sin(2π t / period_s + phase)``, the
    amplitude a fraction of the base load."""

    amplitude: float
    period_s: float
    phase: float

    def __post_init__(self) -> None:
        if not self.amplitude >= 0:
            raise ValueError(f"harmonic amplitude must be >= 0, got {self.amplitude}")
        if not self.period_s > 0:
            raise ValueError(f"harmonic period must be > 0 s, got {self.period_s}")

    @property
    def omega(self) -> float:
        return _TWO_PI / self.period_s

    def value(self, t: float) -> float:
        return self.amplitude * math.sin(self.omega * t + self.phase)

    def integral(self, t0: float, t1: float) -> float:
        """∫ value dt over [t0, t1], written as a product of sines so that short intervals
        keep their precision (no difference of two nearly equal cosines)."""
        w = self.omega
        return (
            2.0 * self.amplitude * math.sin(w * (t0 + t1) / 2.0 + self.phase)
            * math.sin(w * (t1 - t0) / 2.0) / w
        )


@dataclass(frozen=True, slots=True)
class LoadProfile:
    """Active power ``base_kw * (1 + Σ harmonics)``; the amplitudes add up to less than 1,
    so power is always positive."""

    base_kw: float
    harmonics: tuple[Harmonic, ...] = ()

    def __post_init__(self) -> None:
        if not self.base_kw > 0:
            raise ValueError(f"base load must be > 0 kW, got {self.base_kw}")
        swing = sum(h.amplitude for h in self.harmonics)
        if swing >= 1.0:
            raise ValueError(f"harmonic amplitudes must add up to < 1, got {swing}")

    @property
    def min_kw(self) -> float:
        return self.base_kw * (1.0 - sum(h.amplitude for h in self.harmonics))

    @property
    def max_kw(self) -> float:
        return self.base_kw * (1.0 + sum(h.amplitude for h in self.harmonics))

    def power_kw(self, t: float) -> float:
        return self.base_kw * (1.0 + sum(h.value(t) for h in self.harmonics))

    def energy_kwh(self, t0: float, t1: float) -> float:
        """Energy consumed over [t0, t1] (simulated seconds); 0 for an empty or reversed
        interval, never negative."""
        if not t1 > t0:
            return 0.0
        seconds = (t1 - t0) + sum(h.integral(t0, t1) for h in self.harmonics)
        return max(0.0, self.base_kw * seconds / HOUR_S)


@dataclass(frozen=True, slots=True)
class SupplyProfile:
    """The grid side at the meter: voltage around a nominal, frequency around 50 Hz."""

    nominal_v: float
    voltage_swing: Harmonic
    frequency_swing: Harmonic
    nominal_hz: float = 50.0

    def voltage_v(self, t: float) -> float:
        return self.nominal_v * (1.0 + self.voltage_swing.value(t))

    def frequency_hz(self, t: float) -> float:
        return self.nominal_hz * (1.0 + self.frequency_swing.value(t))


@dataclass(frozen=True, slots=True)
class MeterProfile:
    """Everything random about one simulated meter, fixed by (seed, unit)."""

    load: LoadProfile
    supply: SupplyProfile
    opening_kwh: float  # the import register when the simulation starts


def _phase_for_peak(period_s: float, peak_at_s: float) -> float:
    """Phase that puts the maximum of ``sin(2π t / period + phase)`` at ``peak_at_s``."""
    return math.pi / 2.0 - _TWO_PI * peak_at_s / period_s


def meter_profile(seed: int, unit: int) -> MeterProfile:
    """The profile of meter ``unit`` in the fleet of ``seed``: the same arguments always
    give the same profile, different units get different ones."""
    rng = random.Random(f"meterline-sim/{seed}/{unit}")
    base_kw = rng.uniform(*BASE_KW_RANGE)
    evening_peak = rng.uniform(15.0, 19.0) * HOUR_S  # UTC; 18:00-22:00 Moscow time
    harmonics = (
        # the daily cycle: high in the evening, low at night
        Harmonic(rng.uniform(0.35, 0.5), DAY_S, _phase_for_peak(DAY_S, evening_peak)),
        # morning and evening peaks
        Harmonic(rng.uniform(0.1, 0.2), DAY_S / 2, _phase_for_peak(DAY_S / 2, evening_peak)),
        # appliances cycling (fridge, boiler)
        Harmonic(rng.uniform(0.05, 0.15), rng.uniform(600.0, 3_600.0), rng.uniform(0.0, _TWO_PI)),
    )
    supply = SupplyProfile(
        nominal_v=rng.uniform(225.0, 235.0),
        voltage_swing=Harmonic(rng.uniform(0.005, 0.02), rng.uniform(1_800.0, 7_200.0),
                               rng.uniform(0.0, _TWO_PI)),
        frequency_swing=Harmonic(rng.uniform(0.0002, 0.001), rng.uniform(300.0, 1_800.0),
                                 rng.uniform(0.0, _TWO_PI)),
    )
    return MeterProfile(
        load=LoadProfile(base_kw, harmonics),
        supply=supply,
        opening_kwh=round(rng.uniform(50.0, 15_000.0), 3),
    )
