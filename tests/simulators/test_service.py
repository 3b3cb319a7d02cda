"""``simulators.service.run``: what ``meterline sim`` starts."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterline.kafka import free_port, port_open
from meterline.register_maps import SDM120
from meterline.settings import Settings
from simulators.service import run


class ReadyWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ready = asyncio.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if "ready" in record.getMessage():
            self.ready.set()


async def test_run_serves_the_settings_fleet_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the simulator needs no database or broker: plain Settings, not make_settings
    settings = Settings(
        _env_file=None, sim_host="127.0.0.1", sim_port=free_port(), sim_meters=3,
        sim_serial_base=55_000_000, sim_speedup=60.0, sim_seed=3, sim_metrics_port=free_port(),
    )
    caplog.set_level(logging.INFO, logger="meterline.simulators")
    watch = ReadyWatch()
    logger = logging.getLogger("meterline.simulators")
    logger.addHandler(watch)
    task = asyncio.create_task(run(settings))
    try:
        await asyncio.wait_for(watch.ready.wait(), 10)
        assert f"127.0.0.1:{settings.sim_port}" in watch.lines[-1]
        modbus = AsyncModbusTcpClient("127.0.0.1", port=settings.sim_port, timeout=2, retries=0)
        assert await modbus.connect()
        response = await modbus.read_holding_registers(SDM120.serial_address, count=2,
                                                       device_id=3)
        modbus.close()
        assert (response.registers[0] << 16) | response.registers[1] == 55_000_002
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        logger.removeHandler(watch)
    assert not port_open("127.0.0.1", settings.sim_port)
    assert not port_open("127.0.0.1", settings.sim_metrics_port)
