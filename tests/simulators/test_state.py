"""Meters keep their registers, relays and serials across simulator restarts, clean or not,
as a real meter's non-volatile memory does: a restarted simulator never shows a counter
lower than one a master read before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterline.kafka import free_port
from meterline.profiles import Codec, DataType, shipped_profile
from meterline.settings import Settings
from simulators.config import MeterGroup, SimulatorConfig, TcpServer
from simulators.faults import Replacement
from simulators.fleet import LEASE_S, serve
from simulators.state import StateError, read_state
from tests.services import service
from tests.simulators.fleet_harness import ManualClock

SDM120 = shipped_profile("eastron-sdm120")
ENERGY = SDM120.register("import_active_energy").address
FLOAT32 = Codec(DataType.FLOAT32)


def config(state_file: Path, port: int = 0) -> SimulatorConfig:
    return SimulatorConfig(
        speedup=600, state_file=state_file,
        tcp=[TcpServer(port=port, meters=[MeterGroup(units=[1, 2, 3], profile="eastron-sdm120",
                                                     serial_base=60_000_000)])],
    )


async def connect(port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    return client


async def energy(client: AsyncModbusTcpClient, unit: int) -> float:
    response = await client.read_input_registers(ENERGY, count=2, device_id=unit)
    assert not response.isError(), response
    return float(FLOAT32.decode(response.registers))


async def serial(client: AsyncModbusTcpClient, unit: int) -> int:
    response = await client.read_holding_registers(SDM120.serial.address, count=2, device_id=unit)
    return (response.registers[0] << 16) | response.registers[1]


async def relay_closed(client: AsyncModbusTcpClient, unit: int) -> bool:
    return bool((await client.read_coils(0, count=1, device_id=unit)).bits[0])


async def test_a_restart_keeps_registers_relays_and_serials(tmp_path: Path) -> None:
    state = tmp_path / "meters.json"
    clock = ManualClock()
    async with serve(config(state), clock=clock) as fleet:
        client = await connect(fleet.port)
        clock.advance(30.0)
        before = await energy(client, 1)
        assert not (await client.write_coil(0, False, device_id=2)).isError()
        fleet.inject(3, Replacement(serial=61_000_003, opening=5.0))
        client.close()

    async with serve(config(state), clock=ManualClock()) as fleet:
        client = await connect(fleet.port)
        try:
            assert await energy(client, 1) >= before
            assert await relay_closed(client, 2) is False
            assert await serial(client, 3) == 61_000_003
            assert await energy(client, 3) == pytest.approx(5.0, abs=1.0)
        finally:
            client.close()


async def test_a_crash_never_brings_a_counter_back_below_what_was_read(tmp_path: Path) -> None:
    state, left_by_crash = tmp_path / "meters.json", tmp_path / "crash.json"
    clock = ManualClock()
    async with serve(config(state), clock=clock) as fleet:
        client = await connect(fleet.port)
        read = {}
        for step in range(5):  # past several leases: reads renew the file themselves
            clock.advance(LEASE_S * 0.7)
            read = {unit: await energy(client, unit) for unit in (1, 2, 3)}
            if step == 2:
                assert not (await client.write_coil(0, False, device_id=2)).isError()
        shutil.copy(state, left_by_crash)  # the file as a kill -9 would leave it now
        client.close()
    saved = read_state(left_by_crash)
    assert saved is not None and saved[0] > fleet.clock.now()  # ahead of what was shown

    async with serve(config(left_by_crash), clock=ManualClock()) as fleet:
        client = await connect(fleet.port)
        try:
            for unit in (1, 2, 3):
                assert await energy(client, unit) >= read[unit]
            assert await relay_closed(client, 2) is False
        finally:
            client.close()


def test_a_damaged_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "meters.json"
    path.write_text("{not json")
    with pytest.raises(StateError, match="move it aside"):
        read_state(path)
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(StateError, match="version 1"):
        read_state(path)


async def test_the_simulator_killed_and_started_again_keeps_counting(tmp_path: Path) -> None:
    """What `make demo` run twice does to the simulators: their registers never go back."""
    port = free_port()
    settings = Settings(_env_file=None, sim_port=port, sim_meters=2, sim_speedup=3600,
                        sim_state_dir=tmp_path / "state")
    with service("simulators", settings, tmp_path / "first") as first:
        client = await connect(port)
        before = await energy(client, 1)
        assert not (await client.write_coil(0, False, device_id=2)).isError()
        client.close()
        first.proc.kill()  # SIGKILL: no clean stop, no last save
        first.proc.wait()
    with service("simulators", settings, tmp_path / "second"):
        client = await connect(port)
        try:
            assert await energy(client, 1) >= before
            assert await relay_closed(client, 2) is False
        finally:
            client.close()
