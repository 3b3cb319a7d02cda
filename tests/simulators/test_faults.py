"""Injected faults as a Modbus master sees them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from meterline.profiles import shipped_profile
from simulators.config import MeterGroup, SimulatorConfig, TcpServer
from simulators.faults import (
    ClockDrift,
    ExceptionReply,
    Garbage,
    PowerLoss,
    Replacement,
    Rollover,
    Timeout,
    parse_fault,
)
from simulators.fleet import Fleet, serve, serve_fleet
from tests.simulators.fleet_harness import ManualClock

SDM120 = shipped_profile("eastron-sdm120")
ENERGY = SDM120.register("import_active_energy").address
DEVICE_FAILURE = 0x04


@pytest.fixture
async def modbus(fleet: Fleet) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient(fleet.host, port=fleet.port, timeout=0.3, retries=0)
    client.set_max_no_responses(100)  # a silent meter must not drop the connection here
    assert await client.connect()
    yield client
    client.close()


async def energy_words(client: AsyncModbusTcpClient, unit: int) -> list[int]:
    response = await client.read_input_registers(ENERGY, count=2, device_id=unit)
    assert not response.isError(), response
    return list(response.registers)


async def test_a_timeout_fault_leaves_requests_unanswered_then_the_meter_answers(
    fleet: Fleet, modbus: AsyncModbusTcpClient
) -> None:
    fleet.inject(2, Timeout(requests=2))
    for _ in range(2):
        with pytest.raises(ModbusIOException):
            await modbus.read_input_registers(ENERGY, count=2, device_id=2)
    await energy_words(modbus, 1)  # the others answered all along
    await energy_words(modbus, 2)


async def test_an_exception_fault_answers_the_exception_code(
    fleet: Fleet, modbus: AsyncModbusTcpClient
) -> None:
    fleet.inject(1, ExceptionReply(requests=1))
    response = await modbus.read_input_registers(ENERGY, count=2, device_id=1)
    assert response.isError() and response.exception_code == DEVICE_FAILURE
    await energy_words(modbus, 1)


async def test_a_garbage_fault_answers_other_words(fleet: Fleet,
                                                   modbus: AsyncModbusTcpClient) -> None:
    good = await energy_words(modbus, 3)
    fleet.inject(3, Garbage(requests=1))
    assert await energy_words(modbus, 3) != good
    assert await energy_words(modbus, 3) == good  # the clock is frozen: the same as before


async def test_a_replacement_shows_another_serial_at_the_same_unit(
    fleet: Fleet, modbus: AsyncModbusTcpClient
) -> None:
    fleet.inject(4, Replacement(serial=70_000_004, opening=1.0))
    response = await modbus.read_holding_registers(SDM120.serial.address, count=2, device_id=4)
    assert (response.registers[0] << 16) | response.registers[1] == 70_000_004
    assert SDM120.codec(SDM120.register("import_active_energy")).decode(
        await energy_words(modbus, 4)) == pytest.approx(1.0)


async def test_faults_of_state_on_counters_and_clocks(clock: ManualClock) -> None:
    async with serve_fleet(port=0, meters=1, profile="pulse-counter-16", clock=clock) as gas, \
            serve_fleet(port=0, meters=1, profile="din-relay-meter", clock=clock) as din:
        client = AsyncModbusTcpClient(gas.host, port=gas.port, timeout=2, retries=0)
        other = AsyncModbusTcpClient(din.host, port=din.port, timeout=2, retries=0)
        assert await client.connect() and await other.connect()
        try:
            gas.inject(1, Rollover(steps=3))
            assert (await client.read_holding_registers(0, count=1, device_id=1)).registers == [
                65_533]
            gas.inject(1, PowerLoss())
            assert (await client.read_holding_registers(0, count=1, device_id=1)).registers == [0]
            clock_at = shipped_profile("din-relay-meter").register("meter_clock").address
            before = (await other.read_holding_registers(clock_at, count=2, device_id=1)).registers
            din.inject(1, ClockDrift(seconds=3_600))
            after = (await other.read_holding_registers(clock_at, count=2, device_id=1)).registers
            drift = ((after[0] << 16) | after[1]) - ((before[0] << 16) | before[1])
            assert 3_600 <= drift <= 3_602  # and the second or two the test took
        finally:
            client.close()
            other.close()


def test_faults_are_read_from_their_file_form() -> None:
    assert parse_fault({"kind": "timeout", "requests": 3}) == Timeout(requests=3)
    assert parse_fault({"kind": "exception", "code": 6, "seconds": 2}) == ExceptionReply(
        code=6, seconds=2)
    with pytest.raises(ValueError, match="needs requests or seconds"):
        parse_fault({"kind": "garbage"})
    with pytest.raises(ValueError, match="kind"):
        parse_fault({"kind": "lightning"})


async def test_a_rollover_of_a_float_meter_is_refused(fleet: Fleet) -> None:
    with pytest.raises(ValueError, match="no counter with a width"):
        fleet.inject(1, Rollover())


async def test_a_scheduled_fault_is_injected_at_its_time() -> None:
    config = SimulatorConfig.model_validate({
        "tcp": [TcpServer(port=0, meters=[MeterGroup(units=[1], profile="eastron-sdm120",
                                                     serial_base=1)])],
        "faults": [{"at": 0.0, "server": "tcp:0", "unit": 1,
                    "fault": {"kind": "replacement", "serial": 99}}],
    })
    async with serve(config) as fleet:
        await asyncio.wait_for(fleet.faults_injected.wait(), 5)
        assert fleet.serial(1) == 99
