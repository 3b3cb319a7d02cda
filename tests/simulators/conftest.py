"""Fixtures of the simulator tests: a fleet on a free port whose simulated time the test
drives, and a real pymodbus client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterline.kafka import free_port
from simulators.fleet import Fleet, serve_fleet
from tests.simulators.fleet_harness import METERS, SERIAL_BASE, SPEEDUP, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fleet(clock: ManualClock) -> AsyncIterator[Fleet]:
    async with serve_fleet(
        "127.0.0.1", free_port(), meters=METERS, serial_base=SERIAL_BASE, speedup=SPEEDUP,
        seed=7, clock=clock,
    ) as running:
        yield running


@pytest.fixture
async def client(fleet: Fleet) -> AsyncIterator[AsyncModbusTcpClient]:
    modbus = AsyncModbusTcpClient(fleet.host, port=fleet.port, timeout=2, retries=0)
    assert await modbus.connect()
    yield modbus
    modbus.close()
