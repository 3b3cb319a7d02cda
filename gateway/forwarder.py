"""Feeds readings batches from the outbox to the MQTT link: oldest first, at most ``WINDOW``
of them unacknowledged at a time, and each removed from the outbox once the broker
acknowledged it.

So paho holds at most the window in memory, and nothing new while the broker is away: the
rest waits on disk and goes out as acknowledgements come back. Batches left in the outbox by
an earlier run go out first, under their own seq, then the new ones.

They go out in seq order. After a reconnection paho sends again what it still holds, so
nothing new is handed to it until all of that is acknowledged: a new batch never overtakes
an older one (one the broker had before the connection broke may still come twice, QoS 1).

With ``confirmed`` (what the gateway service uses) a batch leaves the outbox only when the
platform confirms it has committed it (``BatchConfirmation`` on ``{root}/{gateway}/confirms``),
not when the broker has it: the broker drops a subscriber's messages past its queue, so the
window, not the broker, bounds how far a backlog runs ahead of the platform. A window not
confirmed within ``confirm_timeout`` goes out again from its oldest batch (the platform
drops what it already has, and confirms it again).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterable
from functools import partial

from gateway.outbox import Outbox
from meterline.metrics import GATEWAY_BATCHES_ACKNOWLEDGED
from meterline.mqtt import MqttLink

log = logging.getLogger("meterline.gateway")

WINDOW = 256  # batches handed to paho and not acknowledged (or confirmed) yet, at most
CONFIRM_TIMEOUT = 30.0  # seconds without the platform's confirmation before sending again


class Forwarder:
    def __init__(self, outbox: Outbox, mqtt: MqttLink, topic: str, *,
                 window: int = WINDOW, confirmed: bool = False,
                 confirm_timeout: float = CONFIRM_TIMEOUT) -> None:
        self.outbox = outbox
        self.mqtt = mqtt
        self.topic = topic
        self.window = window
        self.confirmed = confirmed
        self.confirm_timeout = confirm_timeout
        self.in_flight: set[int] = set()  # seqs handed to paho, not acknowledged yet
        self._handed_at: dict[int, float] = {}  # confirmed mode: when each seq went out
        self._last_handed = -1  # the highest seq handed to paho in this run
        self._connection = 0  # the link's connection the batches in flight were handed on
        self._acked: list[int] = []  # acknowledged, still to remove from the outbox
        self._fresh = True  # batches in the outbox not handed yet (the old ones, at first)
        self._wake = asyncio.Event()
        self._wake.set()
        self._queue_full = False

    def stored(self) -> None:
        """A new batch is in the outbox. (Also what wakes the forwarder once a broker that
        was away is back: within a poll cycle.)"""
        self._fresh = True
        self._wake.set()

    async def run(self) -> None:
        """Forward until cancelled. Acknowledgements are gathered while more than half the
        window is still out, so the outbox is read and written in runs, not one by one."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._fresh and len(self.in_flight) > self.window // 2:
                continue
            try:
                self.step()
            except sqlite3.Error:  # a disk error must not stop the gateway; tried again later
                log.exception("outbox %s: forwarding batches failed", self.outbox.path)

    def step(self) -> None:
        """What ``run`` does when woken: remove the acknowledged batches from the outbox,
        then hand paho the next ones, as many as the window has room for."""
        self.settle()
        self._resend_unconfirmed()
        self._fill()

    def confirm(self, seqs: Iterable[int]) -> None:
        """The platform committed these batches: they may leave the outbox."""
        for seq in seqs:
            if self._handed_at.pop(seq, None) is not None:
                GATEWAY_BATCHES_ACKNOWLEDGED.inc()
            self.in_flight.discard(seq)
            self._acked.append(seq)
        self._wake.set()

    def _resend_unconfirmed(self) -> None:
        if not self._handed_at:
            return
        oldest = min(self._handed_at)
        waited = time.monotonic() - self._handed_at[oldest]
        if waited < self.confirm_timeout:
            return
        log.warning("batches %d to %d not confirmed by the platform in %.0fs: sending them again",
                    oldest, max(self._handed_at), waited)
        self._last_handed = oldest - 1
        self.in_flight.clear()
        self._handed_at.clear()
        self._fresh = True

    def settle(self) -> int:
        """Remove the batches acknowledged so far from the outbox; how many there were."""
        if not self._acked:
            return 0
        acked, self._acked = self._acked, []
        try:
            return self.outbox.remove(acked)
        except BaseException:
            self._acked.extend(acked)  # try again next time
            raise

    def _fill(self) -> None:
        if not self.mqtt.connected.is_set():
            return  # the broker is away: the batches wait on disk, not in paho's memory
        if self.mqtt.connections != self._connection:
            if self.in_flight:
                return  # paho is sending those again: let them go first
            self._connection = self.mqtt.connections
        self._fresh = False
        room = self.window - len(self.in_flight)
        if room <= 0:
            return
        for seq, payload in self.outbox.after(self._last_handed, room):
            if not self.mqtt.publish_nowait(
                self.topic, payload, on_ack=partial(self._acknowledged, seq)
            ):
                if not self._queue_full:
                    log.error("MQTT queue full: batch %d waits in the outbox", seq)
                self._queue_full = True
                self._fresh = True  # try again on the next wake
                return
            self._queue_full = False
            self.in_flight.add(seq)
            if self.confirmed:
                self._handed_at[seq] = time.monotonic()
            self._last_handed = seq

    def _acknowledged(self, seq: int) -> None:
        if self.confirmed:
            return  # the broker has it; it stays in the window until the platform confirms
        GATEWAY_BATCHES_ACKNOWLEDGED.inc()
        self.in_flight.discard(seq)
        self._acked.append(seq)
        self._wake.set()
