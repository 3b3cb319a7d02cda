"""The gateway's MQTT connection: paho-mqtt running its network loop on its own thread,
with everything it reports handed to the asyncio loop through ``call_soon_threadsafe``.

paho reconnects by itself and keeps QoS 1 messages published while the broker is away in
memory, sending them once it is back (store-and-forward in memory only: a gateway restart
loses what was not delivered yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger("meterline.gateway")

# About a day of 2-second cycles waiting for a broker that is away; below 65535, so the
# message ids of unacknowledged messages never repeat.
MAX_QUEUED_MESSAGES = 50_000


def mqtt_client_id(gateway_id: str) -> str:
    """The client id a gateway connects with: stable, so its session (subscriptions and
    QoS 1 commands queued while it was offline) survives restarts."""
    return f"meterline-gateway-{gateway_id}"


class MqttLink:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        username: str | None,
        password: str | None,
        subscriptions: Sequence[str],
        on_message: Callable[[str, bytes], None],
        persistent_session: bool = True,
        keepalive: int = 30,
    ) -> None:
        """``on_message(topic, payload)`` runs on the asyncio loop, for messages on the
        ``subscriptions`` (QoS 1, renewed on every connect)."""
        self.host, self.port = host, port
        self._loop = asyncio.get_running_loop()
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._keepalive = keepalive
        self._pending: set[int] = set()  # mids of QoS 1 messages not acknowledged yet
        self._drained = asyncio.Event()
        self._drained.set()
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()  # connected and the subscriptions acknowledged

        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent_session,
        )
        if username is not None:
            client.username_pw_set(username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_subscribe = self._paho_subscribe
        client.on_message = self._paho_message
        client.on_publish = self._paho_publish
        self._client = client

    # --- asyncio side

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()

    def publish(self, topic: str, payload: str | bytes) -> bool:
        """Queue a QoS 1 message; False if the in-memory queue is full (message dropped)."""
        info = self._client.publish(topic, payload, qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            return False
        self._pending.add(info.mid)
        self._drained.clear()
        return True

    @property
    def unacknowledged(self) -> int:
        return len(self._pending)

    async def drain(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every message published so far."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self.connected.clear()
        self.subscribed.clear()

    def _published(self, mid: int) -> None:
        self._pending.discard(mid)
        if not self._pending:
            self._drained.set()

    def _set_connected(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()
            self.subscribed.clear()

    # --- paho's thread

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: the gateway is gone
            self._loop.call_soon_threadsafe(callback, *args)

    def _paho_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error(
                "MQTT broker %s:%d refused the connection: %s (retrying)",
                self.host, self.port, reason_code,
            )
            return
        log.info("connected to MQTT broker %s:%d", self.host, self.port)
        if self._subscriptions:
            client.subscribe([(topic, 1) for topic in self._subscriptions])
        self._to_loop(self._set_connected, True)

    def _paho_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.value != 0:
            log.warning(
                "lost the MQTT broker %s:%d: %s (reconnecting; QoS 1 messages wait in memory)",
                self.host, self.port, reason_code,
            )
        self._to_loop(self._set_connected, False)

    def _paho_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.error(
                "MQTT broker refused the subscription to %s: %s", self._subscriptions, refused
            )
            return
        self._to_loop(self.subscribed.set)

    def _paho_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        self._to_loop(self._on_message, message.topic, bytes(message.payload))

    def _paho_publish(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._to_loop(self._published, mid)
