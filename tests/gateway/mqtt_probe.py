"""A test's own MQTT client on the real broker: what it receives lands in asyncio queues."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class MqttProbe:
    """Subscribes (QoS 1) to exact topics; ``next(topic)`` waits for the next payload."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._loop = asyncio.get_running_loop()
        self._queues: dict[str, asyncio.Queue[bytes]] = {}
        self._subscribed = asyncio.Event()
        self._client = Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex}")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    async def start(self, topics: Iterable[str], timeout: float = 5.0) -> None:
        self._queues = {topic: asyncio.Queue() for topic in topics}
        self._client.connect_async(self.host, self.port)
        self._client.loop_start()
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def next(self, topic: str, timeout: float = 5.0) -> bytes:
        return await asyncio.wait_for(self._queues[topic].get(), timeout)

    def received(self, topic: str) -> list[bytes]:
        """The payloads that arrived and were not taken yet, without waiting."""
        queue = self._queues[topic]
        return [queue.get_nowait() for _ in range(queue.qsize())]

    def publish(self, topic: str, payload: str | bytes) -> None:
        self._client.publish(topic, payload, qos=1)

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def _on_connect(
        self, client: Client, userdata: Any, flags: ConnectFlags, reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        client.subscribe([(topic, 1) for topic in self._queues])

    def _on_subscribe(
        self, client: Client, userdata: Any, mid: int, reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        queue = self._queues[message.topic]
        self._loop.call_soon_threadsafe(queue.put_nowait, bytes(message.payload))


def forget_session(host: str, port: int, client_id: str, timeout: float = 5.0) -> None:
    """End the persistent broker session of ``client_id`` (a gateway's) by connecting once
    with a clean session, so test runs leave no sessions behind on the machine's broker."""
    connected = threading.Event()
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.on_connect = lambda *args: connected.set()
    client.connect(host, port)
    client.loop_start()
    try:
        connected.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
