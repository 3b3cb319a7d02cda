"""The meters a gateway polls, as *devices*: a place on a line (line, unit id) with a profile,
and whichever meter answers there, known by its serial number.

A device keeps the serial it last read there, the last billing readings it published (the
baselines of the counter checks) and what it last reported about itself. When another serial
answers at the same place, the meter was replaced: the old meter's baselines are its closing
readings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from gateway.config import GatewayConfig
from gateway.counters import Baseline
from gateway.lines import Line
from meterline.profiles import Profile, Read, plan_reads
from meterline.units import Register, Utility

log = logging.getLogger("meterline.gateway")

Identified = Literal["same", "first", "replaced", "clash"]


@dataclass(eq=False)
class Device:
    name: str  # <line>-<unit>
    line: Line
    unit: int
    profile: Profile
    utility: Utility
    timeout: float
    retries: int
    plan: tuple[Read, ...]  # the read requests of one poll
    serial: str | None = None  # the meter id in every message; None until read
    verify_serial: bool = True  # read the serial before the next reading
    cycles_since_verify: int = 0
    silent_cycles: int = 0  # consecutive poll cycles without an answer
    clash: str | None = None  # a serial it reported that another device already has
    baselines: dict[Register, Baseline] = field(default_factory=dict)
    reported: tuple[str, str] | None = None  # (state, problem) last published

    @property
    def where(self) -> str:
        return f"unit {self.unit} on {self.line}"

    def __str__(self) -> str:
        return f"meter {self.serial or '(serial unknown)'} ({self.where})"


class DeviceTable:
    """All devices, and which one has which serial (for commands)."""

    def __init__(self, devices: list[Device]) -> None:
        self.devices = devices
        self.lines = list(dict.fromkeys(d.line for d in devices))
        self._by_serial: dict[str, Device] = {}
        self.changes = 0  # serials read for the first time or found changed, so far

    @classmethod
    def build(cls, config: GatewayConfig, lines: dict[str, Line]) -> DeviceTable:
        profiles = config.profiles()
        devices = []
        for group in config.meters:
            profile = profiles[group.profile]
            line_config = config.line(group.line)
            wanted = (profile.polled if group.poll is None
                      else tuple(profile.register(n) for n in group.poll))
            wanted = tuple(dict.fromkeys((*wanted, *profile.billing)))  # billing always
            plan = plan_reads(profile, wanted, block=group.block_reads,
                              max_gap=line_config.max_gap)
            for unit in group.units:
                devices.append(Device(
                    name=f"{group.line}-{unit}", line=lines[group.line], unit=unit,
                    profile=profile, utility=group.utility or profile.utilities[0],
                    timeout=group.timeout or line_config.timeout,
                    retries=line_config.retries if group.retries is None else group.retries,
                    plan=plan))
        return cls(devices)

    def on(self, line: Line) -> list[Device]:
        return [d for d in self.devices if d.line is line]

    def find(self, serial: str) -> Device | None:
        return self._by_serial.get(serial)

    @property
    def identified(self) -> list[Device]:
        return [d for d in self.devices if d.serial is not None and d.clash is None]

    def restore(self, device: Device, serial: str | None,
                baselines: dict[Register, Baseline]) -> None:
        """What the gateway remembered of ``device`` from its last run (checked again at the
        first poll: ``verify_serial`` stays set)."""
        if serial is not None and serial not in self._by_serial:
            device.serial = serial
            device.baselines = dict(baselines)
            self._by_serial[serial] = device

    def assign(self, device: Device, serial: str) -> tuple[Identified, str | None]:
        """Record the serial ``device`` answered with: ("same" | "first" | "replaced" with
        the previous serial | "clash" if another device already has it, and ``device`` is
        left out until that changes)."""
        device.cycles_since_verify = 0
        owner = self._by_serial.get(serial)
        device.verify_serial = owner is not None and owner is not device  # a clash: again
        if owner is not None and owner is not device:
            if device.clash != serial:  # said once, not every cycle
                log.error("%s reports serial %s, which %s already has: left out until fixed",
                          device.where, serial, owner.where)
            device.clash = serial
            self._forget(device)
            return "clash", None
        device.clash = None
        previous = device.serial
        if previous == serial:
            return "same", None
        if previous is not None:
            log.warning("%s now reports serial %s instead of %s: meter replaced",
                        device.where, serial, previous)
            self._forget(device)
        device.serial = serial
        self._by_serial[serial] = device
        self.changes += 1
        return ("first", None) if previous is None else ("replaced", previous)

    def _forget(self, device: Device) -> None:
        if device.serial is not None and self._by_serial.get(device.serial) is device:
            del self._by_serial[device.serial]
        device.serial = None
