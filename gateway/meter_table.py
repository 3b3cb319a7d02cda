"""The meters a gateway polls: where each one is, and its serial number once read."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.modbus_endpoint import ModbusEndpoint
from meterline.profiles import Profile, Read, plan_reads

log = logging.getLogger("meterline.gateway")


@dataclass(eq=False)
class PolledMeter:
    endpoint: ModbusEndpoint
    unit: int
    profile: Profile
    plan: tuple[Read, ...]  # the read requests of one poll
    serial: str | None = None  # the meter id in every message; None until read
    verify_serial: bool = True  # read the serial again before the next reading
    silent_cycles: int = 0  # consecutive poll cycles without an answer
    clash: str | None = None  # a serial it reported that another meter already has

    @property
    def where(self) -> str:
        return f"unit {self.unit} at {self.endpoint.address}"

    def __str__(self) -> str:
        return f"meter {self.serial or '(serial unknown)'} ({self.where})"


class MeterTable:
    """All polled meters, and which one has which serial (for relay commands)."""

    def __init__(self, endpoints: Sequence[ModbusEndpoint], profile: Profile) -> None:
        self.endpoints = list(endpoints)
        plan = plan_reads(profile, profile.billing)
        self.meters = [PolledMeter(e, unit, profile, plan)
                       for e in self.endpoints for unit in e.config.units]
        self._by_serial: dict[str, PolledMeter] = {}

    def on(self, endpoint: ModbusEndpoint) -> list[PolledMeter]:
        return [m for m in self.meters if m.endpoint is endpoint]

    def find(self, serial: str) -> PolledMeter | None:
        return self._by_serial.get(serial)

    @property
    def identified(self) -> list[PolledMeter]:
        return [m for m in self.meters if m.serial is not None]

    def assign(self, meter: PolledMeter, serial: str) -> bool:
        """Record the serial ``meter`` answered with; False (and the meter stays
        unidentified) if another polled meter already has it."""
        owner = self._by_serial.get(serial)
        if owner is not None and owner is not meter:
            if meter.clash != serial:  # said once, not every cycle
                log.error(
                    "%s reports serial %s, which %s already has: left out until fixed",
                    meter.where, serial, owner.where,
                )
            meter.clash = serial
            self._forget(meter)
            return False
        meter.clash = None
        if meter.serial is not None and meter.serial != serial:
            log.warning(
                "%s now reports serial %s instead of %s (meter replaced?)",
                meter.where, serial, meter.serial,
            )
            self._forget(meter)
        meter.serial = serial
        meter.verify_serial = False
        self._by_serial[serial] = meter
        return True

    def _forget(self, meter: PolledMeter) -> None:
        if meter.serial is not None and self._by_serial.get(meter.serial) is meter:
            del self._by_serial[meter.serial]
        meter.serial = None
