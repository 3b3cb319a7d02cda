"""``simulators.service.run``: what ``meterline simulators`` starts."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterline.kafka import free_port, port_open
from meterline.profiles import shipped_profile
from meterline.settings import Settings
from simulators.config import ConfigError, config_from_settings, load_config
from simulators.service import run

SERIAL = shipped_profile("eastron-sdm120").serial.address


class ReadyWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ready = asyncio.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if "ready" in record.getMessage():
            self.ready.set()


async def serving(settings: Settings, caplog: pytest.LogCaptureFixture) -> tuple[
        asyncio.Task[None], ReadyWatch]:
    caplog.set_level(logging.INFO, logger="meterline.simulators")
    watch = ReadyWatch()
    logging.getLogger("meterline.simulators").addHandler(watch)
    task = asyncio.create_task(run(settings))
    await asyncio.wait_for(watch.ready.wait(), 10)
    return task, watch


async def stop(task: asyncio.Task[None], watch: ReadyWatch) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    logging.getLogger("meterline.simulators").removeHandler(watch)


async def test_run_serves_the_settings_fleet_until_cancelled(
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    # the simulator needs no database or broker: plain Settings, not make_settings
    settings = Settings(
        _env_file=None, sim_host="127.0.0.1", sim_port=free_port(), sim_meters=3,
        sim_serial_base=55_000_000, sim_speedup=60.0, sim_seed=3, sim_state_dir=tmp_path,
        sim_metrics_port=free_port(),
    )
    task, watch = await serving(settings, caplog)
    try:
        assert f"tcp:{settings.sim_port} on 127.0.0.1:{settings.sim_port}: 3 SDM120" in \
            "\n".join(watch.lines)
        modbus = AsyncModbusTcpClient("127.0.0.1", port=settings.sim_port, timeout=2, retries=0)
        assert await modbus.connect()
        response = await modbus.read_holding_registers(SERIAL, count=2, device_id=3)
        modbus.close()
        assert (response.registers[0] << 16) | response.registers[1] == 55_000_002
    finally:
        await stop(task, watch)
    assert not port_open("127.0.0.1", settings.sim_port)
    assert not port_open("127.0.0.1", settings.sim_metrics_port)
    assert (tmp_path / f"meters-{settings.sim_port}.json").exists()


async def test_run_serves_a_configuration_file(caplog: pytest.LogCaptureFixture,
                                               tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "simulators.toml"
    path.write_text(f"""
speedup = 60
state_file = "{tmp_path / 'state.json'}"
[[tcp]]
port = {port}
[[tcp.meters]]
units = "1-2"
profile = "eastron-sdm630"
serial_base = 100
[[tcp.meters]]
units = "3"
profile = "heat-meter"
serial_base = 200
[[rtu]]
name = "rs485-1"
link = "{tmp_path / 'ttyMETERS'}"
[[rtu.meters]]
units = "1-4"
profile = "pulse-counter-32"
utility = "hot_water"
serial_base = 300
""")
    settings = Settings(_env_file=None, sim_config=path, sim_metrics_port=free_port())
    task, watch = await serving(settings, caplog)
    try:
        text = "\n".join(watch.lines)
        assert f"tcp:{port} on 127.0.0.1:{port}: 2 SDM630, 1 HM-1, unit ids 1-3" in text
        assert f"rtu:rs485-1 on {tmp_path / 'ttyMETERS'}: 4 PCM-32" in text
        assert "ready: 7 meters on 2 server(s)" in text
    finally:
        await stop(task, watch)


def test_configuration_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[tcp]]\nport = 5020\n[[tcp.meters]]\nunits = "1-300"\nprofile = "x"\n'
                    'serial_base = 1\n')
    with pytest.raises(ConfigError, match=r"tcp\[0\]\.meters\[0\]\.units: unit id 300 is "
                                          r"outside 1-247"):
        load_config(path)
    path.write_text('[[tcp]]\nport = 5020\n[[tcp.meters]]\nunits = "1"\nprofile = "sdm999"\n'
                    'serial_base = 1\n')
    with pytest.raises(ConfigError, match="unknown profile 'sdm999'"):
        load_config(path).profiles()
    with pytest.raises(ConfigError, match="cannot read"):
        config_from_settings(Settings(_env_file=None, sim_config=tmp_path / "none.toml"))
