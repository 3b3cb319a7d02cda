"""The running gateway: ``run(settings)`` is what ``meterline gateway`` starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from datetime import UTC, datetime

from gateway.commands import CommandHandler
from gateway.forwarder import WINDOW, Forwarder
from gateway.meter_table import MeterTable
from gateway.meters_config import parse_gateway_meters
from gateway.modbus_endpoint import ModbusEndpoint
from gateway.outbox import MAX_BYTES, Outbox
from gateway.poller import Poller
from meterline.contracts import ReadingsBatch
from meterline.metrics import (
    GATEWAY,
    GATEWAY_BATCHES_STORED,
    GATEWAY_IN_FLIGHT,
    GATEWAY_OUTBOX_BATCHES,
    GATEWAY_OUTBOX_BYTES,
    GATEWAY_POLL_SECONDS,
    GATEWAY_POLLS,
    GATEWAY_READINGS,
    GATEWAY_RELAY_COMMANDS,
    serving,
)
from meterline.mqtt import MqttLink
from meterline.profiles import Profile, shipped_profile
from meterline.settings import Settings

log = logging.getLogger("meterline.gateway")

DRAIN_TIMEOUT = 2.0  # on shutdown, seconds to wait for the broker to acknowledge the rest
# Readings wait on disk (the outbox) and take at most WINDOW of paho's queue; the rest is
# room for command acks. Far below 65535, so the ids of unacknowledged messages never repeat.
MAX_QUEUED_MESSAGES = WINDOW + 1_000
RECONNECT_MAX_DELAY = 30  # seconds between attempts to reach a broker that is away, at most
DEFAULT_PROFILE = "eastron-sdm120"  # the model of the meters ``gateway_meters`` lists


def mqtt_client_id(gateway_id: str) -> str:
    """The client id a gateway connects with: stable, so its session (subscriptions and
    QoS 1 commands queued while it was offline) survives restarts."""
    return f"meterline-gateway-{gateway_id}"


class Gateway:
    """Polls the meters of ``settings.gateway_meters`` every ``poll_interval`` seconds,
    publishes one ReadingsBatch per cycle and executes relay commands, until cancelled.

    ``ready`` is set once the serials have been read and the command subscription is
    acknowledged by the broker. Polling starts before that: every batch is stored in the
    outbox (on disk) before it is published, and stays there until the broker acknowledged
    it, so batches wait for a broker that is away across restarts too."""

    def __init__(
        self,
        settings: Settings,
        *,
        profile: Profile | None = None,
        modbus_timeout: float = 1.0,
        persistent_session: bool = True,
        outbox_max_bytes: int = MAX_BYTES,
    ) -> None:
        self.settings = settings
        self.profile = profile or shipped_profile(DEFAULT_PROFILE)
        self.endpoint_configs = parse_gateway_meters(settings.gateway_meters)
        self.modbus_timeout = modbus_timeout
        self.persistent_session = persistent_session
        self.outbox_max_bytes = outbox_max_bytes
        self.readings_topic = settings.topic(settings.gateway_id, "readings")
        self.commands_topic = settings.topic(settings.gateway_id, "commands")
        self.acks_topic = settings.topic(settings.gateway_id, "acks")
        self.ready = asyncio.Event()
        self.table: MeterTable | None = None

    async def run(self) -> None:
        settings = self.settings
        # a damaged outbox stops the gateway here, rather than reuse batch numbers
        outbox = Outbox(settings.gateway_state_dir, settings.gateway_id,
                        max_bytes=self.outbox_max_bytes)
        endpoints = [ModbusEndpoint(c, timeout=self.modbus_timeout) for c in self.endpoint_configs]
        table = self.table = MeterTable(endpoints, self.profile)
        poller = Poller(table)
        commands = CommandHandler(settings.gateway_id, table)
        mqtt = MqttLink(
            settings,
            mqtt_client_id(settings.gateway_id),
            clean_session=not self.persistent_session,
            max_queued_messages=MAX_QUEUED_MESSAGES,
            reconnect_max_delay=RECONNECT_MAX_DELAY,
            logger=log,
        )
        forwarder = Forwarder(outbox, mqtt, self.readings_topic)
        GATEWAY_OUTBOX_BATCHES.set_function(lambda: len(outbox))
        GATEWAY_OUTBOX_BYTES.set_function(lambda: outbox.size)
        GATEWAY_IN_FLIGHT.set_function(lambda: len(forwarder.in_flight))
        log.info(
            "gateway %s starting: %d meter(s) on %s, next batch %d, %d earlier batch(es) "
            "in the outbox to send first, MQTT %s:%d",
            settings.gateway_id, len(table.meters),
            ", ".join(e.address for e in endpoints), outbox.next_seq, len(outbox),
            settings.mqtt_host, settings.mqtt_port,
        )
        mqtt.start([self.commands_topic])
        try:
            await poller.identify_all()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(forwarder.run(), name="gateway forward")
                tasks.create_task(self._poll_forever(poller, outbox, forwarder),
                                  name="gateway poll")
                tasks.create_task(self._serve_commands(commands, mqtt), name="gateway commands")
                await mqtt.subscribed.wait()
                log.info(
                    "gateway %s ready: %d/%d meters identified, MQTT %s:%d, "
                    "readings on %s every %gs, commands on %s",
                    settings.gateway_id, len(table.identified), len(table.meters),
                    settings.mqtt_host, settings.mqtt_port, self.readings_topic,
                    settings.poll_interval, self.commands_topic,
                )
                self.ready.set()
        finally:
            self.ready.clear()
            drained = await mqtt.drain(DRAIN_TIMEOUT)
            with contextlib.suppress(sqlite3.Error):  # left in the outbox: sent again later
                forwarder.settle()
            if len(outbox):
                log.warning(
                    "gateway %s stopping with %d batch(es) the broker has not acknowledged: "
                    "they stay in the outbox %s and are sent on the next start",
                    settings.gateway_id, len(outbox), outbox.path,
                )
            elif not drained:
                log.warning(
                    "gateway %s stopping with %d message(s) the broker has not acknowledged",
                    settings.gateway_id, mqtt.unacknowledged,
                )
            await mqtt.close()
            outbox.close()
            for endpoint in endpoints:
                endpoint.close()
            log.info("gateway %s stopped", settings.gateway_id)

    async def _poll_forever(self, poller: Poller, outbox: Outbox, forwarder: Forwarder) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.poll_interval
        due = loop.time()
        while True:
            try:
                await self._cycle(poller, outbox, forwarder)
            except Exception:  # a bug in one cycle must not stop the gateway
                log.exception("poll cycle failed")
            due += interval
            now = loop.time()
            if due < now:
                missed = math.ceil((now - due) / interval)
                log.warning("poll cycle took longer than %gs: %d cycle(s) skipped",
                            interval, missed)
                due += missed * interval
            await asyncio.sleep(due - now)

    async def _cycle(self, poller: Poller, outbox: Outbox, forwarder: Forwarder) -> None:
        polled_at = datetime.now(UTC)
        started = time.perf_counter()
        samples = await poller.poll()
        GATEWAY_POLL_SECONDS.observe(time.perf_counter() - started)
        GATEWAY_POLLS.inc()
        GATEWAY_READINGS.inc(len(samples))

        def payload(seq: int) -> str:
            return ReadingsBatch(
                gateway=self.settings.gateway_id, seq=seq, polled_at=polled_at, samples=samples
            ).model_dump_json()

        try:
            seq = outbox.add(payload)  # on disk before it is published
        except sqlite3.Error as exc:
            log.error("cannot store the batch in the outbox %s, batch not sent: %s",
                      outbox.path, exc)
            return
        GATEWAY_BATCHES_STORED.inc()
        forwarder.stored()
        log.debug("batch %d: %d sample(s)", seq, len(samples))

    async def _serve_commands(self, commands: CommandHandler, mqtt: MqttLink) -> None:
        while True:
            payload = (await mqtt.messages.get()).payload  # only the commands topic
            try:
                ack = await commands.handle(payload)
                if ack is not None:
                    GATEWAY_RELAY_COMMANDS.labels(ack.action, "ok" if ack.ok else "failed").inc()
                if ack is not None and not mqtt.publish_nowait(
                    self.acks_topic, ack.model_dump_json()
                ):
                    log.error("MQTT queue full: ack of command %s dropped", ack.command_id)
            except Exception:  # one bad command must not stop the gateway
                log.exception("relay command failed: %r", payload[:200])


async def run(settings: Settings) -> None:
    """Run the gateway ``settings`` describe, with its /metrics and /ready, until cancelled."""
    gateway = Gateway(settings)
    async with serving(GATEWAY, settings.metrics_host, settings.gateway_metrics_port,
                       gateway.ready.is_set):
        await gateway.run()
