"""One poll cycle: read the billing registers of every meter, as contract samples.

Endpoints are read concurrently, the units behind one endpoint one after another (they share
a line). A meter that does not answer is left out of the cycle with a warning; one whose
serial is not known yet (or not since it went silent) has its serial read first.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from gateway.decoding import register_value
from gateway.meter_table import MeterTable, PolledMeter
from gateway.modbus_endpoint import MeterError, ModbusEndpoint
from meterline.contracts import Sample
from meterline.profiles import DecodingError
from meterline.units import Unit

log = logging.getLogger("meterline.gateway")

REMIND_EVERY = 60  # cycles between warnings about a meter that stays silent


class Poller:
    def __init__(self, table: MeterTable) -> None:
        self.table = table

    async def identify_all(self) -> int:
        """Read the serial of every meter not identified yet; how many are identified."""
        await asyncio.gather(*(self._identify_on(e) for e in self.table.endpoints))
        return len(self.table.identified)

    async def poll(self) -> list[Sample]:
        """The samples of one cycle, endpoint by endpoint in configuration order."""
        per_endpoint = await asyncio.gather(
            *(self._poll_endpoint(e) for e in self.table.endpoints)
        )
        return [sample for samples in per_endpoint for sample in samples]

    async def _identify_on(self, endpoint: ModbusEndpoint) -> None:
        meters = [m for m in self.table.on(endpoint) if m.verify_serial]
        if meters and await self._connect(endpoint, meters):
            for meter in meters:
                try:
                    await self._identify(meter)
                except MeterError as exc:
                    self._silent(meter, exc)

    async def _identify(self, meter: PolledMeter) -> bool:
        serial = await meter.endpoint.read_serial(meter.unit, meter.profile)
        return self.table.assign(meter, serial)

    async def _connect(self, endpoint: ModbusEndpoint, meters: list[PolledMeter]) -> bool:
        """Connect if need be; if that fails, the meters are silent this cycle (one warning
        for the endpoint rather than one per meter)."""
        try:
            await endpoint.ensure_connected()
        except MeterError as exc:
            remind = False
            for meter in meters:
                remind |= self._count_silence(meter)
            if remind:
                units = ", ".join(
                    f"{m.unit} (meter {m.serial})" if m.serial else str(m.unit) for m in meters
                )
                log.warning(
                    "%s does not answer, units %s left out of the readings: %s",
                    endpoint.address, units, exc,
                )
            return False
        return True

    async def _poll_endpoint(self, endpoint: ModbusEndpoint) -> list[Sample]:
        meters = self.table.on(endpoint)
        if not await self._connect(endpoint, meters):
            return []
        samples: list[Sample] = []
        for meter in meters:
            try:
                if meter.verify_serial and not await self._identify(meter):
                    continue
                samples.extend(await self._read(meter))
            except MeterError as exc:
                self._silent(meter, exc)
            else:
                self._answered(meter)
        return samples

    async def _read(self, meter: PolledMeter) -> list[Sample]:
        """The billing registers of ``meter``: one request per block of its plan."""
        assert meter.serial is not None
        samples = []
        for read in meter.plan:
            words = await meter.endpoint.read_registers(meter.unit, read.table, read.start,
                                                        read.count)
            ts = datetime.now(UTC)
            for reg, offset in read.registers:
                assert reg.register is not None
                value_words = words[offset:offset + reg.words]
                try:
                    value = register_value(meter.profile.codec(reg), reg, value_words)
                    samples.append(Sample(meter=meter.serial, register=reg.register,
                                          unit=Unit(reg.unit), value=value, ts=ts))
                except (DecodingError, ValidationError) as exc:
                    log.warning("%s: %s register %s left out: %s", meter, reg.name,
                                value_words, exc)
        return samples

    def _count_silence(self, meter: PolledMeter) -> bool:
        """Count one more silent cycle; True when it is time to warn about it."""
        meter.silent_cycles += 1
        meter.verify_serial = True  # it may come back as a different meter
        return meter.silent_cycles == 1 or meter.silent_cycles % REMIND_EVERY == 0

    def _silent(self, meter: PolledMeter, exc: MeterError) -> None:
        if self._count_silence(meter):
            log.warning(
                "%s does not answer (%d time(s) in a row), left out of the readings: %s",
                meter, meter.silent_cycles, exc,
            )

    def _answered(self, meter: PolledMeter) -> None:
        if meter.silent_cycles:
            log.info("%s answers again after %d silent cycle(s)", meter, meter.silent_cycles)
        meter.silent_cycles = 0
