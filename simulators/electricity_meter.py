"""One simulated single-phase electricity meter with a load relay: pure state, no I/O.

The import register is kept as float64 and only ever grows while the relay is closed; the
Modbus image (``sdm120``) presents it as float32, whose rounding keeps it non-decreasing.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.load_profiles import MeterProfile


@dataclass(frozen=True, slots=True)
class Readout:
    """What the meter shows at one instant; field names are the SDM120 register names."""

    voltage: float  # V
    current: float  # A
    active_power: float  # W
    frequency: float  # Hz
    import_active_energy: float  # kWh, cumulative
    export_active_energy: float  # kWh, cumulative (a household exports nothing)
    total_active_energy: float  # kWh, import + export


class SimulatedMeter:
    """A meter of the fleet. ``t`` arguments are simulated UNIX seconds; time that goes
    backwards is ignored, so the registers never decrease."""

    def __init__(self, unit: int, serial: int, profile: MeterProfile, start_t: float) -> None:
        self.unit = unit
        self.serial = serial
        self.profile = profile
        self._import_kwh = float(profile.opening_kwh)
        self._export_kwh = 0.0
        self._t = start_t
        self._relay_closed = True

    @property
    def relay_closed(self) -> bool:
        """True while the load is connected."""
        return self._relay_closed

    @property
    def import_kwh(self) -> float:
        """The import register as of the last ``advance`` (float64)."""
        return self._import_kwh

    @property
    def time(self) -> float:
        """The simulated instant the registers were last brought up to."""
        return self._t

    def advance(self, t: float) -> None:
        """Bring the registers up to instant ``t``."""
        if t <= self._t:
            return
        if self._relay_closed:
            self._import_kwh += self.profile.load.energy_kwh(self._t, t)
        self._t = t

    def set_relay(self, closed: bool, t: float) -> None:
        """Close (connect the load) or open (disconnect it) the relay at instant ``t``."""
        self.advance(t)
        self._relay_closed = closed

    def readout(self, t: float) -> Readout:
        self.advance(t)
        t = self._t
        voltage = self.profile.supply.voltage_v(t)
        power_w = self.profile.load.power_kw(t) * 1000.0 if self._relay_closed else 0.0
        return Readout(
            voltage=voltage,
            current=power_w / voltage,
            active_power=power_w,
            frequency=self.profile.supply.frequency_hz(t),
            import_active_energy=self._import_kwh,
            export_active_energy=self._export_kwh,
            total_active_energy=self._import_kwh + self._export_kwh,
        )
