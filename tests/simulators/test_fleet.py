"""The fleet over real Modbus TCP: a pymodbus client against the simulator server."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterline.kafka import free_port
from meterline.profiles import plan_reads, shipped_profile, shipped_profiles
from simulators.fleet import Fleet, SimulatorError, serve_fleet
from tests.simulators.fleet_harness import METERS, SERIAL_BASE, SPEEDUP, ManualClock, float32

SDM120 = shipped_profile("eastron-sdm120")
ENERGY = SDM120.register("import_active_energy").address
POWER = SDM120.register("active_power").address
CURRENT = SDM120.register("current").address
SERIAL = SDM120.serial.address
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, GATEWAY_NO_RESPONSE = 0x01, 0x02, 0x03, 0x0B


async def read_float(client: AsyncModbusTcpClient, unit: int, address: int) -> float:
    response = await client.read_input_registers(address, count=2, device_id=unit)
    assert not response.isError(), response
    return float32(response.registers)


async def test_each_unit_reports_its_serial(client: AsyncModbusTcpClient, fleet: Fleet) -> None:
    assert fleet.units == list(range(1, METERS + 1))
    for unit in fleet.units:
        response = await client.read_holding_registers(SERIAL, count=2, device_id=unit)
        assert not response.isError()
        high, low = response.registers
        assert (high << 16) | low == SERIAL_BASE + unit - 1 == fleet.serial(unit)


async def test_input_registers_are_big_endian_float32_of_the_meter(
    client: AsyncModbusTcpClient, fleet: Fleet
) -> None:
    t, wall = fleet.clock.now(), fleet.clock.wall()  # the clock is frozen: what the server shows
    for unit in fleet.units:
        meter = fleet.meter(unit)
        for reg in SDM120.registers:
            response = await client.read_input_registers(reg.address, count=2, device_id=unit)
            assert np.float32(float32(response.registers)) == np.float32(
                meter.value(reg, t, wall)), reg.name
        assert 200 < meter.value(SDM120.register("voltage"), t, wall) < 260
        assert meter.value(SDM120.register("active_power"), t, wall) > 0


async def test_a_block_read_across_the_map_is_answered_like_the_real_meter(
    client: AsyncModbusTcpClient, fleet: Fleet
) -> None:
    """What mbpoll was refused before: three float32 from 0x0000 (two of them on addresses a
    single-phase meter leaves empty, which read zero), and the gateway's one read of 74."""
    response = await client.read_input_registers(0x0000, count=6, device_id=1)
    assert not response.isError(), response
    assert 200 < float32(response.registers[0:2]) < 260
    assert response.registers[2:6] == [0, 0, 0, 0]
    (read,) = plan_reads(SDM120)
    response = await client.read_input_registers(read.start, count=read.count, device_id=1)
    assert not response.isError() and len(response.registers) == 74
    assert float32(response.registers[ENERGY:ENERGY + 2]) == await read_float(client, 1, ENERGY)


@pytest.mark.parametrize("profile_id", sorted(shipped_profiles()))
async def test_every_profile_answers_its_planned_block_reads_with_its_values(
    profile_id: str, clock: ManualClock
) -> None:
    profile = shipped_profile(profile_id)
    async with serve_fleet(port=0, meters=2, profile=profile_id, clock=clock) as fleet:
        modbus = AsyncModbusTcpClient(fleet.host, port=fleet.port, timeout=2, retries=0)
        assert await modbus.connect()
        try:
            meter = fleet.meter(2)
            t, wall = fleet.clock.now(), fleet.clock.wall()
            for read in plan_reads(profile, profile.registers):
                call = (modbus.read_holding_registers if read.table == "holding"
                        else modbus.read_input_registers)
                response = await call(read.start, count=read.count, device_id=2)
                assert not response.isError(), (str(read), response)
                for reg, offset in read.registers:
                    words = response.registers[offset:offset + reg.words]
                    expected = meter.raw(reg, meter.value(reg, t, wall))
                    assert profile.codec(reg).decode(words) == pytest.approx(
                        expected, rel=1e-6), reg.name
            serial = profile.serial
            response = await modbus.read_holding_registers(
                serial.address, count=profile.codec(serial).words, device_id=2)
            assert profile.codec(serial).decode(response.registers) == fleet.serial(2)
        finally:
            modbus.close()


async def test_energy_grows_with_simulated_time(
    client: AsyncModbusTcpClient, fleet: Fleet, clock: ManualClock
) -> None:
    meter = fleet.meter(2)
    t0 = fleet.clock.now()
    before = await read_float(client, 2, ENERGY)
    clock.advance(30.0)  # 30 s real = 5 simulated hours
    after = await read_float(client, 2, ENERGY)
    grown = meter.behaviour.load.amount(t0, t0 + 30.0 * SPEEDUP)
    assert after > before
    assert after == np.float32(meter.behaviour.opening + grown)


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
    assert (await client.read_coils(0, count=1, device_id=unit)).bits[0] is True

    response = await client.write_coil(0, False, device_id=unit)
    assert not response.isError()
    assert (await client.read_coils(0, count=1, device_id=unit)).bits[0] is False
    assert fleet.meter(unit).relay_closed is False
    assert fleet.meter(unit - 1).relay_closed is True  # only that meter
    assert await read_float(client, unit, POWER) == 0.0
    assert await read_float(client, unit, CURRENT) == 0.0
    stopped = await read_float(client, unit, ENERGY)
    clock.advance(60.0)
    assert await read_float(client, unit, ENERGY) == stopped

    response = await client.write_coil(0, True, device_id=unit)
    assert not response.isError()
    assert (await client.read_coils(0, count=1, device_id=unit)).bits[0] is True
    assert await read_float(client, unit, POWER) > 0.0
    clock.advance(60.0)
    assert await read_float(client, unit, ENERGY) > stopped


async def test_relay_opened_outside_modbus_shows_on_the_coil(
    client: AsyncModbusTcpClient, fleet: Fleet
) -> None:
    fleet.set_relay(1, False)
    assert (await client.read_coils(0, count=1, device_id=1)).bits[0] is False
    assert await read_float(client, 1, POWER) == 0.0


async def test_the_din_meter_relay_takes_function_16_only_and_reads_back(
    clock: ManualClock,
) -> None:
    relay = shipped_profile("din-relay-meter").relay
    assert relay is not None
    async with serve_fleet(port=0, meters=1, profile="din-relay-meter", clock=clock) as fleet:
        modbus = AsyncModbusTcpClient(fleet.host, port=fleet.port, timeout=2, retries=0)
        assert await modbus.connect()
        try:
            refused = await modbus.write_register(relay.address, relay.open, device_id=1)
            assert refused.isError() and refused.exception_code == ILLEGAL_FUNCTION
            assert fleet.meter(1).relay_closed
            assert not (await modbus.write_registers(relay.address, [relay.open],
                                                     device_id=1)).isError()
            assert fleet.meter(1).relay_closed is False
            back = await modbus.read_holding_registers(relay.address, count=1, device_id=1)
            assert back.registers == [relay.open]
            nonsense = await modbus.write_registers(relay.address, [7], device_id=1)
            assert nonsense.isError() and nonsense.exception_code == ILLEGAL_VALUE
            coils = await modbus.read_coils(0, count=1, device_id=1)
            assert coils.isError() and coils.exception_code == ILLEGAL_FUNCTION
            too_many = await modbus.read_holding_registers(0, count=70, device_id=1)
            assert too_many.isError() and too_many.exception_code == ILLEGAL_VALUE
        finally:
            modbus.close()


async def test_unit_outside_the_fleet_gets_gateway_no_response(
    client: AsyncModbusTcpClient,
) -> None:
    response = await client.read_input_registers(ENERGY, count=2, device_id=METERS + 1)
    assert response.isError()
    assert response.exception_code == GATEWAY_NO_RESPONSE


async def test_unmapped_address_and_serial_writes_are_refused(
    client: AsyncModbusTcpClient, fleet: Fleet
) -> None:
    response = await client.read_input_registers(0x0050, count=2, device_id=1)  # past the span
    assert response.isError() and response.exception_code == ILLEGAL_ADDRESS
    response = await client.write_register(SERIAL, 1, device_id=1)
    assert response.isError() and response.exception_code == ILLEGAL_ADDRESS
    serial = await client.read_holding_registers(SERIAL, count=2, device_id=1)
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
        response = await modbus.read_holding_registers(SERIAL, count=2)
        modbus.close()
        assert response.registers == [0, 5]


async def test_fleet_size_and_serials_are_checked() -> None:
    with pytest.raises(SimulatorError, match="1 to 247"):
        async with serve_fleet(meters=248):
            pass
    with pytest.raises(SimulatorError, match="uint32"):
        async with serve_fleet(meters=2, serial_base=0xFFFF_FFFF):
            pass


async def test_stopped_fleet_no_longer_listens() -> None:
    port = free_port()
    async with serve_fleet("127.0.0.1", port, meters=1):
        pass
    modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0,
                                  reconnect_delay=0)
    assert not await modbus.connect()
    modbus.close()
