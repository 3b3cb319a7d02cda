"""The shared MQTT link against the machine's Mosquitto, and against a port nobody listens on
(the broker away)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from meterline.kafka import free_port
from meterline.mqtt import MqttError, MqttLink
from meterline.settings import Settings
from tests.conftest import unique

LinkFactory = Callable[..., MqttLink]


@pytest.fixture
async def links(mqtt_broker: tuple[str, int]) -> AsyncIterator[LinkFactory]:
    """``links(**options)``: a link to the machine's broker (``port=`` another one), closed
    after the test."""
    made: list[MqttLink] = []

    def make(port: int | None = None, **options: Any) -> MqttLink:
        settings = Settings(
            _env_file=None,
            mqtt_host=mqtt_broker[0],
            mqtt_port=mqtt_broker[1] if port is None else port,
            mqtt_topic_root=unique("meterline-test") + "/v1",
        )
        link = MqttLink(settings, unique("link"), **options)
        made.append(link)
        return link

    yield make
    for link in made:
        await link.close()


async def test_start_subscribes_in_the_background_and_messages_arrive(
    links: LinkFactory,
) -> None:
    link = links()
    topic = link.settings.topic("gw", "commands")
    link.start([topic])  # returns at once
    await asyncio.wait_for(link.subscribed.wait(), 5)
    assert link.connected.is_set()

    assert link.publish_nowait(topic, b"one")
    assert await link.drain(5)
    assert link.unacknowledged == 0
    message = await asyncio.wait_for(link.messages.get(), 5)
    assert (message.topic, message.payload, message.qos) == (topic, b"one", 1)

    await link.close()
    assert not link.connected.is_set() and not link.subscribed.is_set()


async def test_without_subscriptions_subscribed_follows_connected(links: LinkFactory) -> None:
    link = links()
    await link.connect()
    assert link.subscribed.is_set()


async def test_while_the_broker_is_away_messages_wait_up_to_the_queue_limit(
    links: LinkFactory,
) -> None:
    link = links(port=free_port(), max_queued_messages=3)
    link.start(["nobody/listens"])  # neither waits nor raises
    await asyncio.sleep(0.2)
    assert not link.connected.is_set()
    assert [link.publish_nowait("away/readings", f"{n}") for n in range(4)] == [
        True, True, True, False,  # the fourth is dropped
    ]
    assert link.unacknowledged == 3
    assert not await link.drain(0.2)


async def test_connect_gives_up_after_its_timeout(links: LinkFactory) -> None:
    link = links(port=free_port())
    with pytest.raises(MqttError, match="no MQTT broker"):
        await link.connect(timeout=0.5)
