"""A gateway with a Modbus RTU line (meters of four profiles on one RS-485 bus, simulated on a
pseudo-terminal pair) and a Modbus TCP line: every meter read every cycle, commands between
the polls, and never two requests on the bus at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import parse_config
from meterline.contracts import CommandAction, CommandResult, GatewayCommand, ReadingsBatchV2
from meterline.settings import Settings
from meterline.units import Register, Unit
from simulators.config import MeterGroup, RtuLine, SimulatorConfig
from simulators.fleet import Fleet, serve
from tests.gateway.conftest import RunningGateways
from tests.gateway.mqtt_probe import MqttProbe

Probe = Callable[..., Awaitable[MqttProbe]]
BUS = "rtu:rs485-1"


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Fleet]:
    config = SimulatorConfig(rtu=[RtuLine(name="rs485-1", link=tmp_path / "ttyRS485", meters=[
        MeterGroup(units=[1, 2], profile="pulse-counter-16", utility="gas",
                   serial_base=36_000_001),
        MeterGroup(units=[3, 4], profile="pulse-counter-32", utility="cold_water",
                   serial_base=36_000_003),
        MeterGroup(units=[5], profile="din-relay-meter", serial_base=36_000_005),
        MeterGroup(units=[6], profile="heat-meter", serial_base=36_000_006),
    ])])
    async with serve(config) as fleet:
        yield fleet


async def test_meters_on_an_rs485_bus_and_a_tcp_line(
    make_settings: Callable[..., Settings], bus: Fleet, fleet: Fleet, tmp_path: Path,
    gateways: RunningGateways, probe: Probe,
) -> None:
    settings = make_settings()
    config = parse_config({
        "polling": {"every": 0.2, "align": False},
        "lines": [
            {"name": "rs485-1", "transport": "rtu", "device": str(tmp_path / "ttyRS485"),
             "baudrate": 9600, "timeout": 0.5},
            {"name": "tcp-1", "transport": "tcp", "host": fleet.host, "port": fleet.port},
        ],
        "meters": [
            {"line": "rs485-1", "units": "1-2", "profile": "pulse-counter-16", "utility": "gas"},
            {"line": "rs485-1", "units": "3-4", "profile": "pulse-counter-32",
             "utility": "cold_water"},
            {"line": "rs485-1", "units": "5", "profile": "din-relay-meter"},
            {"line": "rs485-1", "units": "6", "profile": "heat-meter"},
            {"line": "tcp-1", "units": fleet.units, "profile": "eastron-sdm120"},
        ],
    }, "test configuration")
    readings, commands, acks = (settings.topic(settings.gateway_id, kind)
                                for kind in ("readings", "commands", "acks"))
    mqtt = await probe(readings, acks)
    await gateways.start(settings, config=config)
    on_bus = [str(bus.serial(unit, BUS)) for unit in range(1, 7)]
    on_tcp = [str(fleet.serial(unit)) for unit in fleet.units]
    relay = str(bus.serial(5, BUS))

    # relay commands to the bus while it is being polled: each waits for one read at most
    actions: list[CommandAction] = ["disconnect", "connect"] * 3
    sent = [GatewayCommand(command_id=uuid.uuid4(), action=action, meter=relay,
                           issued_at=datetime.now(UTC)) for action in actions]
    for command in sent:
        mqtt.publish(commands, command.model_dump_json())
    results: dict[uuid.UUID, CommandResult] = {}
    async with asyncio.timeout(10):
        while len(results) < len(sent):
            result = CommandResult.model_validate_json(await mqtt.next(acks))
            results[result.command_id] = result
    assert all(r.ok and "read back" in r.detail for r in results.values()), results
    assert bus.meter(5, BUS).relay_closed is True  # the last one sent was a connect

    after = datetime.now(UTC)
    batches: list[ReadingsBatchV2] = []
    async with asyncio.timeout(10):
        while len(batches) < 3:
            batch = ReadingsBatchV2.model_validate_json(await mqtt.next(readings))
            if batch.polled_at > after:
                batches.append(batch)
    for batch in batches:
        meters = [s.meter for s in batch.samples]
        assert sorted(meters) == sorted(on_bus + on_tcp)  # every meter, every cycle
        units = {s.meter: (s.register, s.unit) for s in batch.samples}
        assert units[on_bus[0]] == units[on_bus[2]] == (Register.VOLUME, Unit.M3)
        assert units[on_bus[5]] == (Register.HEAT_ENERGY, Unit.GCAL)
        heat = next(m for m in batch.measurements if m.meter == on_bus[5])
        assert heat.values["flow_temperature"] - heat.values["return_temperature"] == \
            pytest.approx(25.0, abs=0.01)
        din = next(m for m in batch.measurements if m.meter == relay)
        assert 200 < din.values["voltage"] < 260
