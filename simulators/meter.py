"""One simulated meter of any profile: its counter, relay, serial, clock and faults. Pure state
and maths, no I/O (``device`` presents it over Modbus).

The meter keeps one true quantity, ``amount`` (kWh, m3 or Gcal by its kind), as float64; it
only grows, and only while the relay (if any) is closed. Every register the profile lists is
derived from it by what the register measures: import energy is the amount (a share of it
per phase), power the current rate, voltage and frequency the supply, a heat meter's volume
the water that carried the heat, and so on.

What a register shows is the amount minus offsets that events set: a replacement (a new
meter at the address starts from its own opening), a power loss (a volatile counter shows
zero again), a rollover about to happen (a counter set just below its wrap). The raw value
of an integer register is whole steps of its scale, taken modulo its counter width.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meterline.profiles import DataType, Measure, Profile, RegisterSpec
from meterline.profiles.codecs import bits_of
from simulators.faults import Fault, Transient
from simulators.load_profiles import Behaviour, LoadKind

M3_PER_GCAL = 40.0  # water a heating circuit carries per Gcal at 25 K between flow and return
KW_PER_GCAL_H = 1163.0
DELTA_T = 25.0
ELECTRIC = frozenset({LoadKind.HOUSEHOLD, LoadKind.INDUSTRY})

_INT_RANGES: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(1 << 15), (1 << 15) - 1),
    DataType.UINT16: (0, (1 << 16) - 1),
    DataType.INT32: (-(1 << 31), (1 << 31) - 1),
    DataType.UINT32: (0, (1 << 32) - 1),
    DataType.INT64: (-(1 << 63), (1 << 63) - 1),
}


@dataclass
class MeterState:
    """What a meter keeps in non-volatile memory (``state`` saves it across restarts)."""

    profile: str
    serial: int
    amount: float  # the true quantity, as of the save
    relay_closed: bool = True
    base_offset: float = 0.0  # subtracted from the amount: a replacement sets it
    register_offsets: dict[str, float] = field(default_factory=dict)  # in register units
    clock_offset: float = 0.0  # seconds the meter's clock is ahead of real time

    def as_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "serial": self.serial, "amount": self.amount,
            "relay_closed": self.relay_closed, "base_offset": self.base_offset,
            "register_offsets": self.register_offsets, "clock_offset": self.clock_offset,
        }


class SimulatedMeter:
    """A meter at one unit id. ``t`` arguments are simulated UNIX seconds (time that goes
    backwards is ignored, so counters never decrease); ``wall`` is real UNIX time, which the
    meter's own clock follows."""

    def __init__(self, key: str, unit: int, profile: Profile, behaviour: Behaviour,
                 state: MeterState, t: float) -> None:
        self.key = key
        self.unit = unit
        self.profile = profile
        self.behaviour = behaviour
        self.state = state
        self._t = t
        self.faults: list[Transient] = []
        self._codecs = {reg.name: profile.codec(reg) for reg in profile.registers}
        self._scales = {reg.name: float(reg.scale) for reg in profile.registers}
        self._garbage = random.Random(f"garbage/{key}")

    # state ---------------------------------------------------------------------------------
    @property
    def serial(self) -> int:
        return self.state.serial

    @property
    def relay_closed(self) -> bool:
        return self.state.relay_closed

    @property
    def amount(self) -> float:
        """The true quantity as of the last ``advance`` (float64)."""
        return self.state.amount

    @property
    def time(self) -> float:
        """The simulated instant the meter was last brought up to."""
        return self._t

    def amount_at(self, t: float) -> float:
        """The true quantity at ``t`` (not before the last ``advance``), changing nothing."""
        if t <= self._t or not self.state.relay_closed:
            return self.state.amount
        return self.state.amount + self.behaviour.load.amount(self._t, t)

    def advance(self, t: float) -> None:
        """Bring the counter up to instant ``t``."""
        if t > self._t:
            self.state.amount = self.amount_at(t)
            self._t = t

    def set_relay(self, closed: bool, t: float) -> None:
        """Close (connect the load) or open (disconnect it) the relay at instant ``t``."""
        self.advance(t)
        self.state.relay_closed = closed

    # what the meter shows ------------------------------------------------------------------
    def rate(self, t: float) -> float:
        """The main quantity's rate per hour now (0 with the relay open)."""
        return self.behaviour.load.rate(t) if self.state.relay_closed else 0.0

    def value(self, reg: RegisterSpec, t: float, wall: float) -> float:
        """What register ``reg`` shows, in its unit, at simulated ``t`` and real ``wall``."""
        self.advance(t)
        kind = self.behaviour.kind
        main = max(0.0, self.state.amount - self.state.base_offset)
        shares = self.behaviour.phase_shares
        share = 1.0 if reg.phase is None else shares[reg.phase - 1]
        supply = self.behaviour.supply
        match reg.measure:
            case Measure.ACTIVE_IMPORT_ENERGY | Measure.ACTIVE_TOTAL_ENERGY:
                shown = main * share if kind in ELECTRIC else 0.0
            case Measure.ACTIVE_EXPORT_ENERGY:
                shown = 0.0  # consumers export nothing
            case Measure.VOLUME:
                shown = main * M3_PER_GCAL if kind is LoadKind.HEAT else main
            case Measure.HEAT_ENERGY:
                shown = main if kind is LoadKind.HEAT else 0.0
            case Measure.ACTIVE_POWER:
                return self.rate(t) * 1000.0 * share if kind in ELECTRIC else 0.0
            case Measure.VOLTAGE:
                return supply.voltage_v(t, reg.phase or 1) if kind in ELECTRIC else 0.0
            case Measure.CURRENT:
                if kind not in ELECTRIC:
                    return 0.0
                return self.rate(t) * 1000.0 * share / supply.voltage_v(t, reg.phase or 1)
            case Measure.FREQUENCY:
                return supply.frequency_hz(t) if kind in ELECTRIC else 0.0
            case Measure.FLOW_RATE:
                factor = M3_PER_GCAL if kind is LoadKind.HEAT else 1.0
                return self.rate(t) * factor if kind not in ELECTRIC else 0.0
            case Measure.HEAT_POWER:
                return self.rate(t) * KW_PER_GCAL_H if kind is LoadKind.HEAT else 0.0
            case Measure.FLOW_TEMPERATURE:
                return self._flow_temperature(t)
            case Measure.RETURN_TEMPERATURE:
                return self._flow_temperature(t) - DELTA_T if kind is LoadKind.HEAT else 0.0
            case Measure.METER_CLOCK:
                return math.floor(wall + self.state.clock_offset)
        return max(0.0, shown - self.state.register_offsets.get(reg.name, 0.0))

    def _flow_temperature(self, t: float) -> float:
        if self.behaviour.kind is not LoadKind.HEAT:
            return 0.0
        load = self.behaviour.load  # hotter supply when the load is high
        return 60.0 + 30.0 * (self.rate(t) - load.min_rate) / (load.max_rate - load.min_rate)

    def raw(self, reg: RegisterSpec, value: float) -> int | float:
        """The number the register holds for ``value``: whole steps of the scale for an
        integer type (a counter modulo its width), the value itself for a float32."""
        scale = self._scales[reg.name]
        if reg.type is DataType.FLOAT32:
            return value / scale
        if reg.cumulative:
            steps = math.floor(value / scale + 1e-9)  # a counter shows completed steps
            wraps_at = reg.wraps_at or (1 << bits_of(reg.type))
            return steps % wraps_at
        low, high = _INT_RANGES[reg.type]
        return min(high, max(low, round(value / scale)))

    def words(self, reg: RegisterSpec, t: float, wall: float) -> tuple[int, ...]:
        """The registers ``reg`` occupies, as the meter sends them."""
        return self._codecs[reg.name].encode(self.raw(reg, self.value(reg, t, wall)))

    def serial_words(self) -> tuple[int, ...]:
        return self.profile.codec(self.profile.serial).encode(self.state.serial)

    def garbage_words(self, count: int) -> list[int]:
        """What a meter with a damaged memory or a noisy line answers."""
        return [self._garbage.randrange(0x10000) for _ in range(count)]

    # faults --------------------------------------------------------------------------------
    def inject(self, fault: Fault, t: float, monotonic: Callable[[], float]) -> None:
        """Apply ``fault`` at simulated ``t``: a one-off change of state now, or a transient
        misbehaviour of the next requests (see ``simulators.faults``)."""
        self.advance(t)
        fault.apply(self, monotonic)

    def active_fault(self, now: float) -> Transient | None:
        """The transient fault this request meets, counted as used; None if the meter answers
        normally."""
        while self.faults:
            fault = self.faults[0]
            if fault.expired(now):
                self.faults.pop(0)
                continue
            fault.use()
            return fault
        return None
