"""A test's own MQTT client on the real broker: what it receives lands in asyncio queues."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, MQTTMessage, topic_matches_sub
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class MqttProbe:
    """Subscribes (QoS 1) to topics; ``next(topic)`` waits for the next payload of a topic
    subscribed to (a wildcard subscription's queue holds (topic, payload) pairs)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._loop = asyncio.get_running_loop()
        self._queues: dict[str, asyncio.Queue[Any]] = {}
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
        payload: bytes = await asyncio.wait_for(self._queues[topic].get(), timeout)
        return payload

    async def next_message(self, pattern: str, timeout: float = 5.0) -> tuple[str, bytes]:
        """The next (topic, payload) of wildcard subscription ``pattern``."""
        message: tuple[str, bytes] = await asyncio.wait_for(self._queues[pattern].get(), timeout)
        return message

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
        item: bytes | tuple[str, bytes] = bytes(message.payload)
        if message.topic in self._queues:
            queue = self._queues[message.topic]
        else:
            pattern = next(p for p in self._queues if topic_matches_sub(p, message.topic))
            queue, item = self._queues[pattern], (message.topic, bytes(message.payload))
        self._loop.call_soon_threadsafe(queue.put_nowait, item)


def forget_session(host: str, port: int, client_id: str, timeout: float = 5.0,
                   retained: Iterable[str] = ()) -> None:
    """End the persistent broker session of ``client_id`` (a gateway's) by connecting once
    with a clean session, and clear the ``retained`` topics (its status messages), so test
    runs leave nothing behind on the machine's broker."""
    connected = threading.Event()
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.on_connect = lambda *args: connected.set()
    client.connect(host, port)
    client.loop_start()
    try:
        connected.wait(timeout)
        for topic in retained:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
