"""Deterministic load profiles of simulated consumers: pure maths, no I/O.

A load profile gives the rate at which a meter's main counter grows at any simulated instant
(kW for energy, m3/h for water and gas, Gcal/h for heat) and the exact amount consumed
between two instants. The rate is a base shaped by a few sinusoids (a daily cycle, morning
and evening peaks, shift changes, the week, the heating season), so its integral has a closed
form: consumption does not depend on how often anyone looks at the meter.

The shapes: a household's electricity (evening peak), three-shift industry (dips at shift
changes, quieter weekends), water draws (sharp morning and evening peaks, little at night),
gas for cooking and heating, and heat for an apartment (the heating season: much in January,
almost nothing in July).

Time ``t`` is simulated UNIX time in seconds (UTC).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum

DAY_S = 86_400.0
HOUR_S = 3_600.0
WEEK_S = 7 * DAY_S
YEAR_S = 365.25 * DAY_S
BASE_KW_RANGE = (0.3, 3.0)  # households
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
    """Rate ``base * (1 + Σ harmonics)`` per hour; the amplitudes add up to less than 1, so
    the rate is always positive."""

    base: float
    harmonics: tuple[Harmonic, ...] = ()

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"base load must be > 0, got {self.base}")
        swing = sum(h.amplitude for h in self.harmonics)
        if swing >= 1.0:
            raise ValueError(f"harmonic amplitudes must add up to < 1, got {swing}")

    @property
    def min_rate(self) -> float:
        return self.base * (1.0 - sum(h.amplitude for h in self.harmonics))

    @property
    def max_rate(self) -> float:
        return self.base * (1.0 + sum(h.amplitude for h in self.harmonics))

    def rate(self, t: float) -> float:
        """Units per hour at instant ``t``."""
        return self.base * (1.0 + sum(h.value(t) for h in self.harmonics))

    def amount(self, t0: float, t1: float) -> float:
        """Consumed over [t0, t1] (simulated seconds); 0 for an empty or reversed interval,
        never negative."""
        if not t1 > t0:
            return 0.0
        seconds = (t1 - t0) + sum(h.integral(t0, t1) for h in self.harmonics)
        return max(0.0, self.base * seconds / HOUR_S)


@dataclass(frozen=True, slots=True)
class SupplyProfile:
    """The grid side at an electricity meter: voltage around a nominal on each phase,
    frequency around 50 Hz."""

    nominal_v: float
    voltage_swing: Harmonic
    frequency_swing: Harmonic
    nominal_hz: float = 50.0

    def voltage_v(self, t: float, phase: int = 1) -> float:
        # the phases swing alike, a third of a swing apart
        shift = (phase - 1) * self.voltage_swing.period_s / 3.0
        return self.nominal_v * (1.0 + self.voltage_swing.value(t + shift))

    def frequency_hz(self, t: float) -> float:
        return self.nominal_hz * (1.0 + self.frequency_swing.value(t))


class LoadKind(StrEnum):
    HOUSEHOLD = "household"  # electricity, an apartment
    INDUSTRY = "industry"  # electricity, three shifts
    COLD_WATER = "cold_water"
    HOT_WATER = "hot_water"
    GAS = "gas"
    HEAT = "heat"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Everything random about one simulated meter, fixed by (kind, seed, key)."""

    kind: LoadKind
    load: LoadProfile
    supply: SupplyProfile
    opening: float  # the main counter when the simulation starts
    # electricity: each phase's share of the load (a single-phase meter has it all on one)
    phase_shares: tuple[float, float, float] = field(default=(1.0, 0.0, 0.0))


def _phase_for_peak(period_s: float, peak_at_s: float) -> float:
    """Phase that puts the maximum of ``sin(2π t / period + phase)`` at ``peak_at_s``."""
    return math.pi / 2.0 - _TWO_PI * peak_at_s / period_s


def _household(rng: random.Random) -> tuple[LoadProfile, float]:
    evening_peak = rng.uniform(15.0, 19.0) * HOUR_S  # UTC; 18:00-22:00 Moscow time
    harmonics = (
        # the daily cycle: high in the evening, low at night
        Harmonic(rng.uniform(0.35, 0.5), DAY_S, _phase_for_peak(DAY_S, evening_peak)),
        # morning and evening peaks
        Harmonic(rng.uniform(0.1, 0.2), DAY_S / 2, _phase_for_peak(DAY_S / 2, evening_peak)),
        # appliances cycling (fridge, boiler)
        Harmonic(rng.uniform(0.05, 0.15), rng.uniform(600.0, 3_600.0), rng.uniform(0.0, _TWO_PI)),
    )
    return LoadProfile(rng.uniform(*BASE_KW_RANGE), harmonics), round(
        rng.uniform(50.0, 15_000.0), 3)


def _industry(rng: random.Random) -> tuple[LoadProfile, float]:
    midweek = 5.5 * DAY_S + rng.uniform(-0.5, 0.5) * DAY_S  # Wednesday (1970-01-01: a Thursday)
    harmonics = (
        Harmonic(rng.uniform(0.25, 0.35), WEEK_S, _phase_for_peak(WEEK_S, midweek)),  # weekends
        # three shifts of 8 h: the load dips at each change (05, 13, 21 UTC)
        Harmonic(rng.uniform(0.1, 0.15), 8 * HOUR_S, _phase_for_peak(8 * HOUR_S, 1 * HOUR_S)),
        Harmonic(rng.uniform(0.05, 0.1), DAY_S, _phase_for_peak(DAY_S, 10 * HOUR_S)),
    )
    # an old plant's import register is large: many pass 131,072 kWh (float32 resolution loss)
    return LoadProfile(rng.uniform(20.0, 60.0), harmonics), round(
        rng.uniform(20_000.0, 400_000.0), 2)


def _water(rng: random.Random, mean_m3_h: tuple[float, float]) -> tuple[LoadProfile, float]:
    morning = rng.uniform(3.5, 5.0) * HOUR_S  # UTC: 06:30-08:00 Moscow time
    harmonics = (
        # awake by day, asleep by night: lowest six hours before the morning peak
        Harmonic(rng.uniform(0.35, 0.42), DAY_S, _phase_for_peak(DAY_S, morning + 6 * HOUR_S)),
        # morning and evening draws, twelve hours apart
        Harmonic(rng.uniform(0.35, 0.42), DAY_S / 2, _phase_for_peak(DAY_S / 2, morning)),
        Harmonic(rng.uniform(0.05, 0.1), DAY_S / 8, rng.uniform(0.0, _TWO_PI)),  # taps in between
    )
    return LoadProfile(rng.uniform(*mean_m3_h), harmonics), round(rng.uniform(10.0, 600.0), 2)


def _gas(rng: random.Random) -> tuple[LoadProfile, float]:
    mid_january = 14 * DAY_S
    harmonics = (
        Harmonic(rng.uniform(0.4, 0.5), YEAR_S, _phase_for_peak(YEAR_S, mid_january)),  # heating
        Harmonic(rng.uniform(0.15, 0.2), DAY_S / 2, _phase_for_peak(DAY_S / 2, 5 * HOUR_S)),
        Harmonic(rng.uniform(0.1, 0.15), DAY_S, _phase_for_peak(DAY_S, 15 * HOUR_S)),  # cooking
    )
    return LoadProfile(rng.uniform(0.05, 0.2), harmonics), round(rng.uniform(100.0, 5_000.0), 2)


def _heat(rng: random.Random) -> tuple[LoadProfile, float]:
    mid_january = rng.uniform(10.0, 25.0) * DAY_S
    harmonics = (
        # the heating season: almost nothing in July
        Harmonic(rng.uniform(0.85, 0.9), YEAR_S, _phase_for_peak(YEAR_S, mid_january)),
        Harmonic(rng.uniform(0.03, 0.05), DAY_S, _phase_for_peak(DAY_S, 2 * HOUR_S)),  # night
    )
    return LoadProfile(rng.uniform(0.0008, 0.0025), harmonics), round(rng.uniform(1.0, 60.0), 4)


def behaviour(kind: LoadKind, seed: int, key: str) -> Behaviour:
    """The behaviour of meter ``key`` in the fleet of ``seed``: the same arguments always give
    the same behaviour, different keys different ones."""
    rng = random.Random(f"meterline-sim/{seed}/{key}")
    match kind:
        case LoadKind.HOUSEHOLD:
            load, opening = _household(rng)
        case LoadKind.INDUSTRY:
            load, opening = _industry(rng)
        case LoadKind.COLD_WATER:
            load, opening = _water(rng, (0.01, 0.03))
        case LoadKind.HOT_WATER:
            load, opening = _water(rng, (0.005, 0.015))
        case LoadKind.GAS:
            load, opening = _gas(rng)
        case LoadKind.HEAT:
            load, opening = _heat(rng)
    supply = SupplyProfile(
        nominal_v=rng.uniform(225.0, 235.0),
        voltage_swing=Harmonic(rng.uniform(0.005, 0.02), rng.uniform(1_800.0, 7_200.0),
                               rng.uniform(0.0, _TWO_PI)),
        frequency_swing=Harmonic(rng.uniform(0.0002, 0.001), rng.uniform(300.0, 1_800.0),
                                 rng.uniform(0.0, _TWO_PI)),
    )
    if kind is LoadKind.INDUSTRY:
        first, second = rng.uniform(0.3, 0.36), rng.uniform(0.3, 0.36)
        shares = (first, second, 1.0 - first - second)
    else:
        shares = (1.0, 0.0, 0.0)
    return Behaviour(kind, load, supply, opening, shares)
