"""The forwarder between an outbox and a real MQTT link (the machine's Mosquitto): a bounded
window of batches in paho's memory, the rest on disk, sent in seq order."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from gateway.forwarder import Forwarder
from gateway.outbox import Outbox
from meterline.kafka import free_port
from meterline.mqtt import MqttLink
from meterline.settings import Settings
from tests.conftest import unique
from tests.gateway.mqtt_probe import MqttProbe

WINDOW = 16


def store(outbox: Outbox, count: int) -> None:
    for _ in range(count):
        outbox.add(lambda seq: json.dumps({"seq": seq}))


@contextlib.asynccontextmanager
async def forwarding(outbox: Outbox, link: MqttLink, topic: str) -> AsyncIterator[Forwarder]:
    forwarder = Forwarder(outbox, link, topic, window=WINDOW)
    task = asyncio.create_task(forwarder.run())
    try:
        yield forwarder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await link.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    opened = Outbox(tmp_path, unique("gw"))
    yield opened
    opened.close()


async def test_a_backlog_goes_out_in_order_a_window_at_a_time(
    outbox: Outbox, mqtt_broker: tuple[str, int],
    probe: Callable[..., Awaitable[MqttProbe]],
) -> None:
    settings = Settings(_env_file=None, mqtt_host=mqtt_broker[0], mqtt_port=mqtt_broker[1],
                        mqtt_topic_root=unique("meterline-test") + "/v1")
    topic = settings.topic("gw", "readings")
    mqtt = await probe(topic)
    store(outbox, 600)  # left by an earlier run
    link = MqttLink(settings, unique("forwarder"))
    async with forwarding(outbox, link, topic) as forwarder:
        await link.connect()
        forwarder.stored()  # what wakes it once the broker is there
        received: list[int] = []
        most_out = 0
        async with asyncio.timeout(30):
            while len(received) < 700:
                received.append(json.loads(await mqtt.next(topic))["seq"])
                most_out = max(most_out, link.unacknowledged, len(forwarder.in_flight))
                if len(received) == 300:  # new batches while the backlog goes out: after it
                    store(outbox, 100)
                    forwarder.stored()
        assert received == list(range(700))
        assert 0 < most_out <= WINDOW
        assert await link.drain(5)
        forwarder.settle()
        assert (len(outbox), outbox.size, outbox.next_seq) == (0, 0, 700)


async def test_while_the_broker_is_away_batches_wait_on_disk_only(outbox: Outbox) -> None:
    settings = Settings(_env_file=None, mqtt_port=free_port())  # nobody listens
    link = MqttLink(settings, unique("forwarder"))
    link.start()
    try:
        forwarder = Forwarder(outbox, link, "away/readings", window=WINDOW)
        store(outbox, 50)
        forwarder.step()
        assert (link.unacknowledged, len(forwarder.in_flight), len(outbox)) == (0, 0, 50)
    finally:
        await link.close()
