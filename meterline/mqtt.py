"""An asyncio face on paho-mqtt, shared by the gateway and the bridge.

paho runs its network loop in a thread; incoming messages are handed to the asyncio loop
through a queue, and ``publish`` waits for the broker's PUBACK (QoS 1) without blocking it.
With ``manual_ack`` a message is acknowledged only when ``ack`` is called, so the broker
delivers it again if the process dies before that (needs a persistent session:
``clean_session=False`` and a stable client id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from meterline.settings import Settings

log = logging.getLogger("meterline.mqtt")


class MqttError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int


class MqttLink:
    def __init__(
        self,
        settings: Settings,
        client_id: str,
        *,
        clean_session: bool = True,
        manual_ack: bool = False,
    ) -> None:
        self.settings = settings
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            manual_ack=manual_ack,
            protocol=paho.MQTTv311,
        )
        self.client.max_queued_messages_set(0)  # unlimited: keep every QoS 1 message
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.connected = asyncio.Event()
        self._subscriptions: Sequence[str] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # paho's thread -------------------------------------------------------------------------
    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT connection refused: %s", reason)
            return
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.connected.clear)
        if reason.is_failure:
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.messages.put_nowait, message)

    # asyncio side --------------------------------------------------------------------------
    async def connect(self, subscriptions: Sequence[str] = (), timeout: float = 10.0) -> None:
        """Connect (and subscribe, again after every reconnect); wait until connected."""
        self._loop = asyncio.get_running_loop()
        self._subscriptions = tuple(subscriptions)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
        self.client.loop_start()
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError as exc:
            await self.close()
            raise MqttError(
                f"no MQTT broker at {self.settings.mqtt_host}:{self.settings.mqtt_port}"
            ) from exc

    async def publish(self, topic: str, payload: bytes | str, timeout: float = 10.0) -> None:
        """Publish with QoS 1 and wait for the broker's acknowledgement."""
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:  # not connected: paho keeps it queued
            raise MqttError(f"publish to {topic} not sent: {paho.error_string(info.rc)}")
        await asyncio.to_thread(info.wait_for_publish, timeout)
        if not info.is_published():
            raise MqttError(f"broker did not acknowledge a message on {topic} in {timeout}s")

    def publish_nowait(self, topic: str, payload: bytes | str) -> None:
        """Queue a QoS 1 message; paho sends it, and keeps it while the broker is away."""
        self.client.publish(topic, payload, qos=1)

    def ack(self, message: Message) -> None:
        self.client.ack(message.mid, message.qos)

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
