"""Gateway commands (version 2) over the machine's Mosquitto, against simulated meters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.service import Gateway
from meterline.contracts import CommandAction, CommandResult, GatewayCommand, ReadingsBatchV2
from meterline.settings import Settings
from simulators.faults import Timeout
from simulators.fleet import Fleet, serve_fleet
from tests.gateway.conftest import RunningGateways, tcp_config
from tests.gateway.mqtt_probe import MqttProbe
from tests.simulators.fleet_harness import ManualClock

Probe = Callable[..., Awaitable[MqttProbe]]


@pytest.fixture
async def din(clock: ManualClock) -> AsyncIterator[Fleet]:
    """Two prepaid DIN meters: relay in a holding register, written with function 16."""
    async with serve_fleet(port=0, meters=2, profile="din-relay-meter", serial_base=32_000_000,
                           clock=clock) as running:
        yield running


def command(action: CommandAction, meter: str | None = None, **extra: Any) -> GatewayCommand:
    return GatewayCommand(command_id=uuid.uuid4(), action=action, meter=meter,
                          issued_at=datetime.now(UTC), **extra)


class Commands:
    def __init__(self, settings: Settings, mqtt: MqttProbe, gateway: Gateway) -> None:
        self.gateway = gateway
        self.topic = settings.topic(settings.gateway_id, "commands")
        self.acks = settings.topic(settings.gateway_id, "acks")
        self.readings = settings.topic(settings.gateway_id, "readings")
        self.mqtt = mqtt

    async def send(self, sent: GatewayCommand, timeout: float = 5.0) -> CommandResult:
        self.mqtt.publish(self.topic, sent.model_dump_json())
        result = CommandResult.model_validate_json(await self.mqtt.next(self.acks, timeout))
        assert result.command_id == sent.command_id
        return result


@pytest.fixture
async def commands(make_settings: Callable[..., Settings], fleet: Fleet, din: Fleet,
                   gateways: RunningGateways, probe: Probe) -> Commands:
    settings = make_settings()
    config = tcp_config((fleet, "eastron-sdm120"), (din, "din-relay-meter"))
    mqtt = await probe(settings.topic(settings.gateway_id, "acks"),
                       settings.topic(settings.gateway_id, "readings"))
    return Commands(settings, mqtt, await gateways.start(settings, config=config))


@pytest.mark.parametrize("which", ["coil relay (SDM120)", "holding-register relay (DIN)"])
async def test_a_relay_round_trip_is_verified_by_reading_it_back(
    commands: Commands, fleet: Fleet, din: Fleet, which: str,
) -> None:
    meters = fleet if which.startswith("coil") else din
    meter = str(meters.serial(2))
    result = await commands.send(command("disconnect", meter))
    assert (result.ok, result.relay, result.meter) == (True, "disconnected", meter)
    assert "read back" in result.detail
    assert meters.meter(2).relay_closed is False and meters.meter(1).relay_closed is True
    result = await commands.send(command("connect", meter))
    assert (result.ok, result.relay) == (True, "connected")
    assert meters.meter(2).relay_closed is True


async def test_a_meter_that_does_not_answer_fails_the_command_with_the_reason(
    commands: Commands, din: Fleet,
) -> None:
    din.inject(1, Timeout(requests=100))
    result = await commands.send(command("disconnect", str(din.serial(1))), timeout=10)
    assert result.ok is False and result.relay is None
    assert "Modbus write of the relay failed" in result.detail and "no answer" in result.detail
    assert din.meter(1).relay_closed is True
    unknown = await commands.send(command("disconnect", "99999999"))
    assert unknown.ok is False and "unknown meter 99999999" in unknown.detail
    no_relay = await commands.send(command("read_now", "88888888"))
    assert no_relay.ok is False and "unknown meter 88888888" in no_relay.detail


async def test_a_command_id_seen_again_is_answered_but_not_executed_again(
    commands: Commands, din: Fleet,
) -> None:
    sent = command("disconnect", str(din.serial(2)))
    first = await commands.send(sent)
    assert first.ok and not first.duplicate and din.meter(2).relay_closed is False
    din.set_relay(2, True)  # someone closes it by hand
    again = await commands.send(sent)
    assert again.duplicate and again.model_copy(update={"duplicate": False}) == first
    assert din.meter(2).relay_closed is True  # not opened a second time


async def test_read_now_and_a_new_poll_period(commands: Commands, din: Fleet) -> None:
    meter = str(din.serial(1))
    period = await commands.send(command("set_poll_period", poll_period_s=30))
    assert period.ok and period.detail == "polling every 30 s"
    asked = datetime.now(UTC)
    result = await commands.send(command("read_now", meter))
    assert result.ok and result.batch_seq is not None
    async with asyncio.timeout(5):
        while True:
            batch = ReadingsBatchV2.model_validate_json(await commands.mqtt.next(commands.readings))
            if batch.seq == result.batch_seq:
                break
    assert [s.meter for s in batch.samples] == [meter]  # only the meter asked for
    assert batch.polled_at >= asked
    assert commands.gateway.schedule is not None and commands.gateway.schedule.period == 30
