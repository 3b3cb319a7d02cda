"""Reading one device: what a poll of it yields, done as one job on its line.

1. Its serial, when due (first poll, after silence, every ``verify_serial_every`` cycles, and
   before believing a counter that went down or leapt): another serial at the same place is a
   meter replacement, reported with the old meter's closing readings.
2. Its registers, in the block reads its profile plans: billing registers become samples,
   the others measurements.
3. The counter checks (``counters``). A reading that looks wrong (a counter down or leaping,
   a value that does not decode) is read once more before it is believed: a meter answering
   garbage once is not a reset; one that says the same twice is reported as it is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from gateway.config import Checks
from gateway.counters import SUSPECT, Baseline, check
from gateway.decoding import measurement_value, register_value
from gateway.devices import Device, DeviceTable
from gateway.lines import MeterError
from meterline.contracts import (
    ClosingReading,
    Measurements,
    MeterReplacement,
    ReadingFlag,
    SampleV2,
)
from meterline.profiles import DecodingError, Measure, RegisterSpec
from meterline.units import Unit

log = logging.getLogger("meterline.gateway")


@dataclass
class Raw:
    """One read of a device: decoded values, and what would not decode."""

    billing: list[tuple[RegisterSpec, Decimal, datetime]] = field(default_factory=list)
    measured: dict[str, float] = field(default_factory=dict)
    measured_at: datetime | None = None
    meter_clock: tuple[float, float] | None = None  # (meter's clock, ours) at the read
    bad: list[str] = field(default_factory=list)


@dataclass
class DeviceReading:
    device: Device
    serial: str
    samples: list[SampleV2]
    measurements: Measurements | None
    replacement: MeterReplacement | None = None
    problems: list[str] = field(default_factory=list)
    clock_offset_s: float | None = None


class Skipped(Exception):
    """The device is left out of this cycle (its serial clashes with another device's)."""


class Reader:
    def __init__(self, table: DeviceTable, checks: Checks) -> None:
        self.table = table
        self.checks = checks

    async def identify(self, device: Device) -> MeterReplacement | None:
        """Read the serial (a job on the device's line); the replacement it reveals."""
        spec = device.profile.serial
        codec = device.profile.codec(spec)
        words = await device.line.read_registers(device.unit, spec.table, spec.address,
                                                 codec.words, timeout=device.timeout,
                                                 retries=device.retries)
        try:
            serial = str(codec.decode(words))
        except DecodingError as exc:
            raise MeterError(f"{device.where}: bad serial number: {exc}") from exc
        closing = dict(device.baselines)
        outcome, previous = self.table.assign(device, serial)
        if outcome == "clash":
            raise Skipped(f"reports serial {serial}, which another meter of this gateway has")
        if outcome in ("first", "replaced"):
            device.baselines = {}
        if outcome != "replaced" or previous is None:
            return None
        return MeterReplacement(
            device=device.name, old_meter=previous, new_meter=serial, profile=device.profile.id,
            closing=[ClosingReading(register=reg, unit=Unit(_unit_of(device, reg)),
                                    value=b.value, ts=b.ts) for reg, b in closing.items()],
            detected_at=datetime.now(UTC))

    async def read(self, device: Device) -> DeviceReading:
        """Poll ``device`` (a job on its line). MeterError if it does not answer."""
        replacement = None
        if device.verify_serial or device.cycles_since_verify >= self.checks.verify_serial_every:
            replacement = await self.identify(device)
        device.cycles_since_verify += 1
        raw = await self._read_registers(device)
        flags = self._flags(device, raw)
        problems: list[str] = []
        if raw.bad or any(SUSPECT & set(f) for f in flags.values()):
            first = raw
            replacement = await self.identify(device) or replacement
            raw = await self._read_registers(device)
            flags = self._flags(device, raw)
            if _values(raw) != _values(first):
                problems.append("an answer that did not hold up when read again (garbage?): "
                                + "; ".join(first.bad or _summary(first)))
        assert device.serial is not None
        problems += raw.bad
        samples = []
        for reg, value, ts in raw.billing:
            assert reg.register is not None
            before = device.baselines.get(reg.register)
            noticed = [f for f in flags[reg.name] if f is not ReadingFlag.FLOAT32_RESOLUTION]
            if noticed and before is not None:
                problems.append(f"{reg.name} {', '.join(noticed)}: {before.value} -> {value}")
            samples.append(SampleV2(meter=device.serial, register=reg.register,
                                    unit=Unit(reg.unit), value=value, ts=ts,
                                    flags=flags[reg.name]))
            device.baselines[reg.register] = Baseline(value, ts)
        measurements = None
        if raw.measured and raw.measured_at is not None:
            measurements = Measurements(meter=device.serial, ts=raw.measured_at,
                                        values=raw.measured)
        offset = None
        if raw.meter_clock is not None:
            offset = round(raw.meter_clock[0] - raw.meter_clock[1], 1)
            if abs(offset) > self.checks.clock_drift_s:
                problems.append(f"the meter's clock is {abs(offset):.0f} s "
                                f"{'ahead' if offset > 0 else 'behind'}")
        return DeviceReading(device, device.serial, samples, measurements, replacement,
                             problems, offset)

    async def _read_registers(self, device: Device) -> Raw:
        raw = Raw()
        for read in device.plan:
            words = await device.line.read_registers(
                device.unit, read.table, read.start, read.count, timeout=device.timeout,
                retries=device.retries)
            ts = datetime.now(UTC)
            wall = time.time()
            for reg, offset in read.registers:
                value_words = words[offset:offset + reg.words]
                codec = device.profile.codec(reg)
                try:
                    if reg.billing:
                        raw.billing.append((reg, register_value(codec, reg, value_words), ts))
                        continue
                    value = measurement_value(codec, reg, value_words)
                except DecodingError as exc:
                    raw.bad.append(f"{reg.name} {value_words}: {exc}")
                    continue
                if reg.measure is Measure.METER_CLOCK and reg.name == device.profile.clock:
                    raw.meter_clock = (value, wall)
                raw.measured[reg.name] = value
                raw.measured_at = ts
        return raw

    def _flags(self, device: Device, raw: Raw) -> dict[str, tuple[ReadingFlag, ...]]:
        flags: dict[str, tuple[ReadingFlag, ...]] = {}
        for reg, value, ts in raw.billing:
            assert reg.register is not None
            flags[reg.name] = check(reg, value, ts, device.baselines.get(reg.register),
                                    self.checks.rate_factor)
        return flags


def _unit_of(device: Device, register: object) -> str:
    return next(r.unit for r in device.profile.billing if r.register == register)


def _values(raw: Raw) -> list[object]:
    return [value for _, value, _ in raw.billing] + [raw.bad]


def _summary(raw: Raw) -> list[str]:
    return [f"{reg.name} {value}" for reg, value, _ in raw.billing]
