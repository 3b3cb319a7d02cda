"""The fleet over real Modbus TCP: a pymodbus client against the simulator server."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterline.kafka import free_port
from meterline.register_maps import SDM120
from simulators.fleet import Fleet, SimulatorError, build_meters, serve_fleet
from tests.simulators.fleet_harness import METERS, SERIAL_BASE, SPEEDUP, ManualClock, float32

REGS = {r.name: r for r in SDM120.registers}
ENERGY = REGS["import_active_energy"].address
POWER = REGS["active_power"].address
CURRENT = REGS["current"].address
GATEWAY_NO_RESPONSE, ILLEGAL_ADDRESS = 0x0B, 0x02


async def read_float(client: AsyncModbusTcpClient, unit: int, address: int) -> float:
    response = await client.read_input_registers(address, count=2, device_id=unit)
    assert not response.isError(), response
    return float32(response.registers)


async def test_each_unit_reports_its_serial(client: AsyncModbusTcpClient, fleet: Fleet) -> None:
    assert fleet.units == list(range(1, METERS + 1))
    for unit in fleet.units:
        response = await client.read_holding_registers(SDM120.serial_address, count=2,
                                                       device_id=unit)
        assert not response.isError()
        high, low = response.registers
        assert (high << 16) | low == SERIAL_BASE + unit - 1 == fleet.serial(unit)


async def test_input_registers_are_big_endian_float32_of_the_readout(
    client: AsyncModbusTcpClient, fleet: Fleet
) -> None:
    for unit in fleet.units:
        readout = fleet.readout(unit)  # the clock is frozen: what the server shows too
        for reg in SDM120.registers:
            response = await client.read_input_registers(reg.address, count=2, device_id=unit)
            expected = np.float32(getattr(readout, reg.name))
            assert np.float32(float32(response.registers)) == expected, reg.name
        assert 200 < readout.voltage < 260
        assert 49 < readout.frequency < 51
        assert readout.active_power > 0


async def test_energy_grows_with_simulated_time(
    client: AsyncModbusTcpClient, fleet: Fleet, clock: ManualClock
) -> None:
    meter = fleet.meter(2)
    t0 = fleet.clock.now()
    before = await read_float(client, 2, ENERGY)
    clock.advance(30.0)  # 30 s real = 5 simulated hours
    after = await read_float(client, 2, ENERGY)
    grown = meter.profile.load.energy_kwh(t0, t0 + 30.0 * SPEEDUP)
    assert after > before
    assert after == np.float32(meter.profile.opening_kwh + grown)


async def test_energy_grows_in_real_time() -> None:
    async with serve_fleet(port=0, meters=1, speedup=36_000.0) as fleet:
        modbus = AsyncModbusTcpClient(fleet.host, port=fleet.port, timeout=2, retries=0)
        assert await modbus.connect()
        try:
            first = await read_float(modbus, 1, ENERGY)
            deadline = time.monotonic() + 5.0
            latest = first
            while latest <= first and time.monotonic() < deadline:
                latest = await read_float(modbus, 1, ENERGY)
            assert latest > first
        finally:
            modbus.close()


async def test_opening_the_relay_stops_energy_and_closing_resumes(
    client: AsyncModbusTcpClient, fleet: Fleet, clock: ManualClock
) -> None:
    unit = 3
    coil = SDM120.relay_coil
    assert coil is not None
    assert (await client.read_coils(coil, count=1, device_id=unit)).bits[0] is True

    response = await client.write_coil(coil, False, device_id=unit)
    assert not response.isError()
    assert (await client.read_coils(coil, count=1, device_id=unit)).bits[0] is False
    assert fleet.meter(unit).relay_closed is False
    assert fleet.meter(unit - 1).relay_closed is True  # only that meter
    assert await read_float(client, unit, POWER) == 0.0
    assert await read_float(client, unit, CURRENT) == 0.0
    stopped = await read_float(client, unit, ENERGY)
    clock.advance(60.0)
    assert await read_float(client, unit, ENERGY) == stopped

    response = await client.write_coil(coil, True, device_id=unit)
    assert not response.isError()
    assert (await client.read_coils(coil, count=1, device_id=unit)).bits[0] is True
    assert await read_float(client, unit, POWER) > 0.0
    clock.advance(60.0)
    assert await read_float(client, unit, ENERGY) > stopped


async def test_relay_opened_outside_modbus_shows_on_the_coil(
    client: AsyncModbusTcpClient, fleet: Fleet
) -> None:
    fleet.set_relay(1, False)
    assert (await client.read_coils(0, count=1, device_id=1)).bits[0] is False
    assert await read_float(client, 1, POWER) == 0.0


async def test_unit_outside_the_fleet_gets_gateway_no_response(
    client: AsyncModbusTcpClient,
) -> None:
    response = await client.read_input_registers(ENERGY, count=2, device_id=METERS + 1)
    assert response.isError()
    assert response.exception_code == GATEWAY_NO_RESPONSE


async def test_unmapped_address_and_serial_writes_are_refused(
    client: AsyncModbusTcpClient, fleet: Fleet
) -> None:
    response = await client.read_input_registers(0x0002, count=2, device_id=1)
    assert response.isError() and response.exception_code == ILLEGAL_ADDRESS
    response = await client.write_register(SDM120.serial_address, 1, device_id=1)
    assert response.isError() and response.exception_code == ILLEGAL_ADDRESS
    serial = await client.read_holding_registers(SDM120.serial_address, count=2, device_id=1)
    assert serial.registers[1] == fleet.serial(1) & 0xFFFF


async def test_a_taken_port_is_a_clear_error(fleet: Fleet) -> None:
    with pytest.raises(SimulatorError, match=f"cannot listen on 127.0.0.1:{fleet.port}"):
        async with serve_fleet("127.0.0.1", fleet.port, meters=1):
            pass


async def test_port_zero_serves_on_the_port_it_got() -> None:
    async with serve_fleet(port=0, meters=1, serial_base=5) as fleet:
        assert fleet.port > 0
        modbus = AsyncModbusTcpClient("127.0.0.1", port=fleet.port, timeout=2, retries=0)
        assert await modbus.connect()
        response = await modbus.read_holding_registers(SDM120.serial_address, count=2)
        modbus.close()
        assert response.registers == [0, 5]


def test_fleet_size_and_serials_are_checked() -> None:
    with pytest.raises(SimulatorError, match="1 to 247"):
        build_meters(248, serial_base=1, seed=1, start_t=0.0)
    with pytest.raises(SimulatorError, match="uint32"):
        build_meters(2, serial_base=0xFFFF_FFFF, seed=1, start_t=0.0)


async def test_stopped_fleet_no_longer_listens() -> None:
    port = free_port()
    async with serve_fleet("127.0.0.1", port, meters=1):
        pass
    modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0,
                                  reconnect_delay=0)
    assert not await modbus.connect()
    modbus.close()
