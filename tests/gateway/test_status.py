"""What a gateway says about itself and its meters (retained), and the topics it uses, which
the contracts list (``MQTT_TOPICS``) for the broker's ACL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from paho.mqtt.client import topic_matches_sub

from meterline.contracts import MQTT_TOPICS, DeviceStatus, GatewayStatus
from meterline.settings import Settings
from simulators.fleet import Fleet
from tests.gateway.conftest import RunningGateways, tcp_config
from tests.gateway.mqtt_probe import MqttProbe

Probe = Callable[..., Awaitable[MqttProbe]]


async def test_birth_device_statuses_and_stop_are_retained_on_acl_listed_topics(
    make_settings: Callable[..., Settings], fleet: Fleet, gateways: RunningGateways,
    probe: Probe,
) -> None:
    settings = make_settings()
    everything = settings.topic(settings.gateway_id, "#")
    watcher = await probe(everything)  # sees all the gateway's topics from the start
    gateway = await gateways.start(settings, config=tcp_config((fleet, "eastron-sdm120")))
    late = await probe(settings.topic(settings.gateway_id, "status"),
                       *(settings.topic(settings.gateway_id, f"devices/tcp-1-{unit}")
                         for unit in fleet.units))  # subscribes after: gets the retained ones
    status = GatewayStatus.model_validate_json(
        await late.next(settings.topic(settings.gateway_id, "status")))
    assert (status.state, status.reason, status.devices) == ("online", "connected", 3)
    for unit in fleet.units:
        device = DeviceStatus.model_validate_json(
            await late.next(settings.topic(settings.gateway_id, f"devices/tcp-1-{unit}")))
        assert (device.device, device.meter, device.state, device.problem) == (
            f"tcp-1-{unit}", str(fleet.serial(unit)), "online", "")

    await gateways.stop(gateway)
    seen: list[tuple[str, bytes]] = []
    async with asyncio.timeout(5):
        while not seen or not (seen[-1][0].endswith("/status")
                               and b'"offline"' in seen[-1][1]):
            seen.append(await watcher.next_message(everything))
    assert GatewayStatus.model_validate_json(seen[-1][1]).reason == "stopped"
    allowed = [settings.topic(settings.gateway_id, topic.kind) for topic in MQTT_TOPICS
               if topic.publisher == "gateway"]  # what the ACL lets a gateway publish
    for topic, _ in seen:
        assert any(topic_matches_sub(pattern, topic) for pattern in allowed), topic
    assert {topic.rsplit("/", 1)[-1] for topic, _ in seen} >= {"readings", "status"}
