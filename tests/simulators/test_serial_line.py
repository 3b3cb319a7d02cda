"""Meters on a Modbus RTU line: the simulator serves a pseudo-terminal, a master opens the
other end by its path, as it would open an RS-485 adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from meterline.profiles import shipped_profile
from simulators.config import MeterGroup, RtuLine, SimulatorConfig
from simulators.fleet import Fleet, serve

LINE = "rtu:rs485-1"


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Fleet]:
    config = SimulatorConfig(rtu=[RtuLine(name="rs485-1", link=tmp_path / "ttyMETERS", meters=[
        MeterGroup(units=[1, 2], profile="pulse-counter-16", utility="gas", serial_base=3_000),
        MeterGroup(units=[5], profile="din-relay-meter", serial_base=4_000),
    ])])
    async with serve(config) as fleet:
        yield fleet
    assert not (tmp_path / "ttyMETERS").exists()  # the link goes with the line


async def test_meters_on_one_line_answer_by_unit_id(line: Fleet, tmp_path: Path) -> None:
    server = line.servers[0]
    assert (tmp_path / "ttyMETERS").resolve() == Path(server.device)
    client = AsyncModbusSerialClient(str(tmp_path / "ttyMETERS"), baudrate=9600, timeout=0.5,
                                     retries=0)
    assert await client.connect()
    try:
        for unit, profile_id in ((1, "pulse-counter-16"), (2, "pulse-counter-16"),
                                 (5, "din-relay-meter")):
            profile = shipped_profile(profile_id)
            codec = profile.codec(profile.serial)
            response = await client.read_holding_registers(
                profile.serial.address, count=codec.words, device_id=unit)
            assert codec.decode(response.registers) == line.serial(unit, LINE)
        relay = shipped_profile("din-relay-meter").relay
        assert relay is not None
        assert not (await client.write_registers(relay.address, [relay.open],
                                                 device_id=5)).isError()
        assert line.meter(5, LINE).relay_closed is False
        with pytest.raises(ModbusIOException):  # nobody at unit 9: no answer on the line
            await client.read_holding_registers(0, count=1, device_id=9)
        response = await client.read_holding_registers(0, count=1, device_id=2)
        assert not response.isError()  # and the line works on
    finally:
        client.close()
