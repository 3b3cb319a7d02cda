"""Fixtures of the gateway tests: a simulated fleet, the real Mosquitto, and gateways
started in this event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.config import GatewayConfig, parse_config
from gateway.service import Gateway, mqtt_client_id
from meterline.settings import Settings
from simulators.fleet import Fleet, serve_fleet
from tests.gateway.mqtt_probe import MqttProbe, forget_session
from tests.simulators.fleet_harness import ManualClock

FLEET_METERS = 3
FLEET_SERIAL_BASE = 30_000_000
POLL_INTERVAL = 0.2


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fleet(clock: ManualClock) -> AsyncIterator[Fleet]:
    async with serve_fleet(
        port=0, meters=FLEET_METERS, serial_base=FLEET_SERIAL_BASE, speedup=600.0, seed=2,
        clock=clock,
    ) as running:
        yield running


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """These tests run a gateway against the broker alone: no platform confirms its batches,
    so it lets a batch go once the broker has it (tests/e2e and tests/ingest/test_backlog
    run it with the platform's confirmations)."""

    def make(**overrides: Any) -> Settings:
        return make_settings(**{"gateway_await_confirmation": False, **overrides})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fleet: Fleet) -> Settings:
    return make_settings(
        gateway_meters=f"127.0.0.1:{fleet.port}/1-{FLEET_METERS}", poll_interval=POLL_INTERVAL
    )


@pytest.fixture
async def probe(mqtt_broker: tuple[str, int]) -> AsyncIterator[Callable[..., Awaitable[MqttProbe]]]:
    """``await probe(topic, ...)``: a subscribed MQTT client, stopped after the test."""
    probes: list[MqttProbe] = []

    async def start(*topics: str) -> MqttProbe:
        started = MqttProbe(*mqtt_broker)
        probes.append(started)
        await started.start(topics)
        return started

    yield start
    for started in probes:
        await started.stop()


class RunningGateways:
    """Starts gateways as tasks of the test's loop; at the end stops them and ends their
    broker sessions."""

    def __init__(self, mqtt_broker: tuple[str, int]) -> None:
        self.mqtt_broker = mqtt_broker
        self.tasks: dict[Gateway, asyncio.Task[None]] = {}
        self.retained: dict[str, set[str]] = {}  # gateway id -> its status topics

    async def start(self, settings: Settings, *, wait_ready: bool = True,
                    **options: Any) -> Gateway:
        """Start a gateway and wait until it is ready (unless ``wait_ready`` is False: with
        the broker away, it polls and stores batches but never gets ready)."""
        gateway = Gateway(settings, **options)
        self.retained.setdefault(settings.gateway_id, set()).update(
            [settings.topic(settings.gateway_id, "status")]
            + [settings.topic(settings.gateway_id, f"devices/{line.name}-{unit}")
               for group in gateway.config.meters for line in [gateway.config.line(group.line)]
               for unit in group.units])
        task = asyncio.create_task(gateway.run())
        self.tasks[gateway] = task
        if not wait_ready:
            return gateway
        ready = asyncio.create_task(gateway.ready.wait())
        done, _ = await asyncio.wait(
            {ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            ready.cancel()
            task.result()  # the gateway's own error
        if ready not in done:
            ready.cancel()
            await self.stop(gateway)
            raise AssertionError("the gateway did not get ready in 10 s")
        return gateway

    async def stop(self, gateway: Gateway) -> None:
        task = self.tasks.pop(gateway)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(self) -> None:
        for gateway in list(self.tasks):
            await self.stop(gateway)
        for gateway_id, topics in self.retained.items():
            await asyncio.to_thread(
                forget_session, *self.mqtt_broker, mqtt_client_id(gateway_id), retained=topics
            )


@pytest.fixture
async def gateways(mqtt_broker: tuple[str, int]) -> AsyncIterator[RunningGateways]:
    running = RunningGateways(mqtt_broker)
    yield running
    await running.close()


def tcp_config(*fleets: tuple[Fleet, str], every: float = POLL_INTERVAL,
               **checks: Any) -> GatewayConfig:
    """A gateway configuration polling each (fleet, profile) on a TCP line of its own
    (line ``tcp-<n>``, from 1), every ``every`` seconds, not aligned."""
    return parse_config({
        "polling": {"every": every, "align": False},
        "checks": checks,
        "lines": [{"name": f"tcp-{n}", "transport": "tcp", "host": fleet.host, "port": fleet.port,
                   "timeout": 0.5, "retries": 0}
                  for n, (fleet, _) in enumerate(fleets, 1)],
        "meters": [{"line": f"tcp-{n}", "units": fleet.units, "profile": profile}
                   for n, (fleet, profile) in enumerate(fleets, 1)],
    }, "test configuration")
