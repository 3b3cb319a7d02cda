"""One poll cycle: every device read once, lines in parallel, the devices of a line one after
another (as jobs of the line's worker, so a command can go between two of them).

A line that cannot be reached leaves all its devices out of the cycle with one warning; a
device that does not answer is left out with a warning (then a reminder every
``REMIND_EVERY`` cycles) and reported offline; one that answers again is reported online.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import partial

from gateway.devices import Device, DeviceTable
from gateway.lines import Line, MeterError
from gateway.reading import DeviceReading, Reader, Skipped
from gateway.status import StatusReporter
from meterline.contracts import Measurements, MeterReplacement, SampleV2

log = logging.getLogger("meterline.gateway")

REMIND_EVERY = 60  # cycles between warnings about a meter that stays silent


@dataclass
class Cycle:
    """What one cycle read."""

    samples: list[SampleV2] = field(default_factory=list)
    measurements: list[Measurements] = field(default_factory=list)
    replacements: list[MeterReplacement] = field(default_factory=list)


class Poller:
    def __init__(self, table: DeviceTable, reader: Reader, status: StatusReporter) -> None:
        self.table = table
        self.reader = reader
        self.status = status
        self._found: list[MeterReplacement] = []  # found outside a cycle: in the next batch

    async def identify_all(self) -> int:
        """Read the serial of every device whose serial is not confirmed yet; how many are
        identified."""
        await asyncio.gather(*(self._identify_on(line) for line in self.table.lines))
        return len(self.table.identified)

    async def _identify_on(self, line: Line) -> None:
        devices = [d for d in self.table.on(line) if d.verify_serial]
        if not devices or not await self._connect(line, devices):
            return
        for device in devices:
            try:
                replacement = await line.run(partial(self.reader.identify, device))
                if replacement is not None:
                    self._found.append(replacement)
            except Skipped as exc:
                self.status.device(device, "offline", str(exc))
            except MeterError as exc:
                self._silent(device, exc)

    async def poll(self, only: str | None = None) -> Cycle:
        """Read every device (or only the one of meter ``only``)."""
        devices = [d for d in self.table.devices if only is None or d.serial == only]
        per_line = await asyncio.gather(*(
            self._poll_line(line, [d for d in devices if d.line is line])
            for line in self.table.lines))
        cycle = Cycle(replacements=self._found)
        self._found = []
        for readings in per_line:
            for reading in readings:
                cycle.samples += reading.samples
                if reading.measurements is not None:
                    cycle.measurements.append(reading.measurements)
                if reading.replacement is not None:
                    cycle.replacements.append(reading.replacement)
        return cycle

    async def _poll_line(self, line: Line, devices: list[Device]) -> list[DeviceReading]:
        if not devices or not await self._connect(line, devices):
            return []
        jobs = [line.submit(partial(self.reader.read, device)) for device in devices]
        readings: list[DeviceReading] = []
        for device, outcome in zip(devices, await asyncio.gather(*jobs, return_exceptions=True),
                                   strict=True):
            if isinstance(outcome, DeviceReading):
                readings.append(outcome)
                self._answered(device, outcome)
            elif isinstance(outcome, Skipped):
                self.status.device(device, "offline", str(outcome))
            elif isinstance(outcome, MeterError):
                self._silent(device, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        return readings

    async def _connect(self, line: Line, devices: list[Device]) -> bool:
        """Connect if need be; if that fails, the line's devices are silent this cycle (one
        warning for the line rather than one per meter)."""
        try:
            await line.run(line.ensure_connected)
        except MeterError as exc:
            remind = False
            for device in devices:
                remind |= self._count_silence(device)
                self.status.device(device, "offline", str(exc))
            if remind:
                units = ", ".join(f"{d.unit} (meter {d.serial})" if d.serial else str(d.unit)
                                  for d in devices)
                log.warning("%s does not answer, units %s left out of the readings: %s",
                            line.address, units, exc)
            return False
        return True

    def _count_silence(self, device: Device) -> bool:
        """Count one more silent cycle; True when it is time to warn about it."""
        device.silent_cycles += 1
        device.verify_serial = True  # it may come back as a different meter
        return device.silent_cycles == 1 or device.silent_cycles % REMIND_EVERY == 0

    def _silent(self, device: Device, exc: Exception) -> None:
        if self._count_silence(device):
            log.warning("%s does not answer (%d time(s) in a row), left out of the readings: %s",
                        device, device.silent_cycles, exc)
        self.status.device(device, "offline", str(exc))

    def _answered(self, device: Device, reading: DeviceReading) -> None:
        if device.silent_cycles:
            log.info("%s answers again after %d silent cycle(s)", device, device.silent_cycles)
        device.silent_cycles = 0
        for problem in reading.problems:
            log.warning("%s: %s", device, problem)
        self.status.device(device, "online", "; ".join(reading.problems),
                           reading.clock_offset_s)
