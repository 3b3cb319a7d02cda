"""An asyncio face on paho-mqtt, shared by the gateway and the bridge.

paho runs its network loop in a thread; everything it reports is handed to the asyncio loop
through ``call_soon_threadsafe``: incoming messages land in the ``messages`` queue, the
``connected`` and ``subscribed`` events follow the connection, and ``connections`` counts
the connections made.

paho reconnects by itself, subscribes again after every connect, and keeps QoS 1 messages
published while the broker is away in memory, sending them once it is back (in memory only:
a restart loses what was not delivered yet; the gateway keeps its readings on disk in its
outbox and hands paho only a window of them). ``publish`` waits for the broker's PUBACK;
``publish_nowait`` only queues (its ``on_ack`` callback runs once that message is
acknowledged), and ``drain`` waits until every message queued so far is acknowledged.

With ``manual_ack`` a message is acknowledged only when ``ack`` is called, so the broker
delivers it again if the process dies before that (needs a persistent session:
``clean_session=False`` and a stable client id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from meterline.settings import Settings

KEEPALIVE = 30  # seconds


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
        max_queued_messages: int = 0,
        reconnect_max_delay: int = 10,
        logger: logging.Logger | None = None,
        will: tuple[str, str | bytes] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        """``max_queued_messages``: how many QoS 1 messages may wait unacknowledged (0: no
        limit); past it ``publish_nowait`` drops a message. ``reconnect_max_delay``: the
        longest pause, in seconds, between attempts to reach a broker that is away.
        ``logger``: where connection events are logged (the service's own logger).
        ``will``: (topic, payload) the broker publishes, retained, if this client vanishes
        without disconnecting. ``on_connected``: called in the event loop after every
        connection (a birth message goes there)."""
        self.settings = settings
        self.log = logger or logging.getLogger("meterline.mqtt")
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            manual_ack=manual_ack,
            protocol=paho.MQTTv311,
        )
        self.client.max_queued_messages_set(max_queued_messages)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self._on_connected = on_connected
        self.client.reconnect_delay_set(min_delay=1, max_delay=reconnect_max_delay)
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()  # connected and the subscriptions acknowledged
        # connections made so far: after each new one paho sends again what it still holds
        self.connections = 0
        self._subscriptions: tuple[str, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[int] = set()  # mids of QoS 1 messages not acknowledged yet
        self._on_ack: dict[int, Callable[[], None]] = {}  # mid -> publish_nowait's on_ack
        self._drained = asyncio.Event()
        self._drained.set()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    @property
    def address(self) -> str:
        return f"{self.settings.mqtt_host}:{self.settings.mqtt_port}"

    # paho's thread -------------------------------------------------------------------------
    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: the service is gone
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: Any,
        _flags: paho.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.log.error("MQTT broker %s refused the connection: %s (retrying)",
                           self.address, reason)
            return
        self.log.info("connected to MQTT broker %s", self.address)
        if self._subscriptions:
            client.subscribe([(topic, 1) for topic in self._subscriptions])
            self._to_loop(self._set_connected)
        else:
            self._to_loop(self._set_connected_and_subscribed)

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.log.warning(
                "lost the MQTT broker %s: %s (reconnecting; unacknowledged messages go again)",
                self.address, reason,
            )
        self._to_loop(self._set_disconnected)

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: Any,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            self.log.error("MQTT broker refused the subscription to %s: %s",
                           list(self._subscriptions), refused)
            return
        self._to_loop(self.subscribed.set)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos)
        self._to_loop(self.messages.put_nowait, message)

    def _on_publish(
        self,
        _client: paho.Client,
        _userdata: Any,
        mid: int,
        _reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._to_loop(self._published, mid)

    # asyncio side --------------------------------------------------------------------------
    def _set_connected(self) -> None:
        self.connections += 1
        self.connected.set()
        if self._on_connected is not None:
            self._on_connected()

    def _set_connected_and_subscribed(self) -> None:
        self._set_connected()
        self.subscribed.set()

    def _set_disconnected(self) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _published(self, mid: int) -> None:
        self._pending.discard(mid)
        if not self._pending:
            self._drained.set()
        on_ack = self._on_ack.pop(mid, None)
        if on_ack is not None:
            on_ack()

    def start(self, subscriptions: Sequence[str] = ()) -> None:
        """Connect in the background, neither waiting nor raising: paho keeps trying until
        the broker answers, and subscribes (QoS 1) to ``subscriptions`` after every connect.
        Watch ``connected`` and ``subscribed``."""
        self._loop = asyncio.get_running_loop()
        self._subscriptions = tuple(subscriptions)
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port,
                                  keepalive=KEEPALIVE)
        self.client.loop_start()

    async def connect(self, subscriptions: Sequence[str] = (), timeout: float = 10.0) -> None:
        """``start``, then wait until connected; MqttError (and closed) if that takes longer
        than ``timeout``."""
        self.start(subscriptions)
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError as exc:
            await self.close()
            raise MqttError(f"no MQTT broker at {self.address}") from exc

    def _queue(self, topic: str, payload: bytes | str,
               retain: bool = False) -> paho.MQTTMessageInfo:
        """Hand a QoS 1 message to paho; tracked until acknowledged unless paho refused it
        (queue full). paho keeps it even when it could not be sent yet."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            # on_publish reaches the loop through call_soon_threadsafe: after this runs
            self._pending.add(info.mid)
            self._drained.clear()
        return info

    async def publish(self, topic: str, payload: bytes | str, timeout: float = 10.0) -> None:
        """Publish with QoS 1 and wait for the broker's acknowledgement."""
        info = self._queue(topic, payload)
        if info.rc != paho.MQTT_ERR_SUCCESS:  # not connected: paho keeps it queued
            raise MqttError(f"publish to {topic} not sent: {paho.error_string(info.rc)}")
        await asyncio.to_thread(info.wait_for_publish, timeout)
        if not info.is_published():
            raise MqttError(f"broker did not acknowledge a message on {topic} in {timeout}s")

    def publish_nowait(
        self, topic: str, payload: bytes | str, *, on_ack: Callable[[], None] | None = None,
        retain: bool = False,
    ) -> bool:
        """Queue a QoS 1 message; paho sends it, and keeps it while the broker is away.
        False if the queue is full (``max_queued_messages``): the message is dropped.
        ``on_ack`` is called in the event loop once the broker acknowledged this message
        (never, if it was dropped or the link closed first). ``retain``: the broker keeps
        it for whoever subscribes later."""
        info = self._queue(topic, payload, retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            return False
        if on_ack is not None:
            # on_publish reaches the loop through call_soon_threadsafe: after this runs
            self._on_ack[info.mid] = on_ack
        return True

    @property
    def unacknowledged(self) -> int:
        """How many QoS 1 messages the broker has not acknowledged yet."""
        return len(self._pending)

    async def drain(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every message published so far; False if it
        has not after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def ack(self, message: Message) -> None:
        self.client.ack(message.mid, message.qos)

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
        self._set_disconnected()
