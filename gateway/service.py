"""The running gateway: ``run(settings)`` is what ``meterline gateway`` starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from datetime import UTC, datetime

from pydantic import ValidationError

from gateway.clock import clock_sync
from gateway.commands import CommandHandler
from gateway.config import GatewayConfig, config_from_settings
from gateway.devices import DeviceTable
from gateway.forwarder import Forwarder
from gateway.lines import Line
from gateway.memory import Memory
from gateway.outbox import MAX_BYTES, Outbox
from gateway.poller import Poller
from gateway.reading import Reader
from gateway.schedule import Schedule
from gateway.status import StatusReporter
from meterline.contracts import BatchConfirmation, ReadingsBatchV2
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
from meterline.settings import Settings

log = logging.getLogger("meterline.gateway")

DRAIN_TIMEOUT = 2.0  # on shutdown, seconds to wait for the broker to acknowledge the rest
# Readings wait on disk (the outbox) and take at most gateway_window of paho's queue; this
# is room for command answers and status messages. Far below 65535, so the ids of
# unacknowledged messages never repeat.
ANSWERS_ROOM = 1_000
RECONNECT_MAX_DELAY = 30  # seconds between attempts to reach a broker that is away, at most


def mqtt_client_id(gateway_id: str) -> str:
    """The client id a gateway connects with: stable, so its session (subscriptions and
    QoS 1 commands queued while it was offline) survives restarts."""
    return f"meterline-gateway-{gateway_id}"


class Gateway:
    """Polls the meters of its configuration (``gateway_config``, or the SDM120s of
    ``gateway_meters``) on its schedule, publishes one ReadingsBatchV2 per cycle, reports its
    own status and its meters', and executes commands, until cancelled.

    ``ready`` is set once the serials have been read and the command subscription is
    acknowledged by the broker. Polling starts before that: every batch is stored in the
    outbox (on disk) before it is published, and stays there until the broker acknowledged
    it, so batches wait for a broker that is away across restarts too."""

    def __init__(
        self,
        settings: Settings,
        *,
        config: GatewayConfig | None = None,
        modbus_timeout: float = 1.0,
        persistent_session: bool = True,
        outbox_max_bytes: int = MAX_BYTES,
    ) -> None:
        self.settings = settings
        self.config = config or config_from_settings(settings, timeout=modbus_timeout)
        self.persistent_session = persistent_session
        self.outbox_max_bytes = outbox_max_bytes
        self.readings_topic = settings.topic(settings.gateway_id, "readings")
        self.commands_topic = settings.topic(settings.gateway_id, "commands")
        self.confirms_topic = settings.topic(settings.gateway_id, "confirms")
        self.acks_topic = settings.topic(settings.gateway_id, "acks")
        self.ready = asyncio.Event()
        self.table: DeviceTable | None = None
        self.schedule: Schedule | None = None
        self._cycle_lock = asyncio.Lock()  # one cycle at a time: a meter's readings in order

    async def run(self) -> None:
        settings, config = self.settings, self.config
        # a damaged outbox stops the gateway here, rather than reuse batch numbers
        outbox = Outbox(settings.gateway_state_dir, settings.gateway_id,
                        max_bytes=self.outbox_max_bytes)
        memory = Memory(settings.gateway_state_dir, settings.gateway_id)
        lines = {c.name: Line(c) for c in config.lines}
        table = self.table = DeviceTable.build(config, lines)
        remembered = memory.devices()
        for device in table.devices:
            kept = remembered.get(device.name)
            if kept is not None and kept.profile == device.profile.id:
                table.restore(device, kept.serial, kept.baselines)
        status = StatusReporter(settings, len(table.devices))
        mqtt = MqttLink(
            settings, mqtt_client_id(settings.gateway_id),
            clean_session=not self.persistent_session,
            max_queued_messages=settings.gateway_window + ANSWERS_ROOM + 2 * len(table.devices),
            reconnect_max_delay=RECONNECT_MAX_DELAY, logger=log,
            will=status.will(), on_connected=status.birth,
        )
        status.mqtt = mqtt
        poller = Poller(table, Reader(table, config.checks), status)
        schedule = self.schedule = Schedule(memory.poll_period() or config.polling.every,
                                            align=config.polling.align)
        forwarder = Forwarder(outbox, mqtt, self.readings_topic, window=settings.gateway_window,
                              confirmed=settings.gateway_await_confirmation)
        GATEWAY_OUTBOX_BATCHES.set_function(lambda: len(outbox))
        GATEWAY_OUTBOX_BYTES.set_function(lambda: outbox.size)
        GATEWAY_IN_FLIGHT.set_function(lambda: len(forwarder.in_flight))

        async def read_now(meter: str | None) -> int:
            return await self._cycle(poller, outbox, forwarder, memory, only=meter)

        def set_period(seconds: float) -> None:
            schedule.period = seconds
            memory.set_poll_period(seconds)

        commands = CommandHandler(settings.gateway_id, table, memory, read_now=read_now,
                                  set_period=set_period)
        log.info(
            "gateway %s starting: %d meter(s) on %s, next batch %d, %d earlier batch(es) "
            "in the outbox to send first, MQTT %s:%d",
            settings.gateway_id, len(table.devices), ", ".join(map(str, lines.values())),
            outbox.next_seq, len(outbox), settings.mqtt_host, settings.mqtt_port,
        )
        for line in lines.values():
            line.start()
        mqtt.start([self.commands_topic, self.confirms_topic]
                   if settings.gateway_await_confirmation else [self.commands_topic])
        try:
            await poller.identify_all()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(forwarder.run(), name="gateway forward")
                tasks.create_task(self._poll_forever(poller, outbox, forwarder, memory),
                                  name="gateway poll")
                tasks.create_task(self._serve_commands(commands, mqtt, tasks, forwarder),
                                  name="gateway commands")
                await mqtt.subscribed.wait()
                log.info(
                    "gateway %s ready: %d/%d meters identified, MQTT %s:%d, readings on %s "
                    "every %gs%s, commands on %s",
                    settings.gateway_id, len(table.identified), len(table.devices),
                    settings.mqtt_host, settings.mqtt_port, self.readings_topic,
                    schedule.period, " (aligned)" if schedule.align else "",
                    self.commands_topic,
                )
                self.ready.set()
        finally:
            self.ready.clear()
            if mqtt.connected.is_set():
                status.stopped()
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
            with contextlib.suppress(sqlite3.Error):
                self._remember(memory, table, force=True)
            memory.close()
            for line in lines.values():
                await line.close()
            log.info("gateway %s stopped", settings.gateway_id)

    async def _poll_forever(self, poller: Poller, outbox: Outbox, forwarder: Forwarder,
                            memory: Memory) -> None:
        assert self.schedule is not None
        while True:
            await self.schedule.wait()
            try:
                await self._cycle(poller, outbox, forwarder, memory)
            except sqlite3.Error:
                pass  # logged; the next cycle tries again
            except Exception:  # a bug in one cycle must not stop the gateway
                log.exception("poll cycle failed")

    async def _cycle(self, poller: Poller, outbox: Outbox, forwarder: Forwarder,
                     memory: Memory, only: str | None = None) -> int:
        """Poll, store the batch in the outbox and hand it to the forwarder; its seq."""
        assert self.table is not None
        async with self._cycle_lock:
            polled_at = datetime.now(UTC)
            changes = self.table.changes
            started = time.perf_counter()
            cycle = await poller.poll(only)
            GATEWAY_POLL_SECONDS.observe(time.perf_counter() - started)
            GATEWAY_POLLS.inc()
            GATEWAY_READINGS.inc(len(cycle.samples))
            clock = clock_sync()

            def payload(seq: int) -> str:
                return ReadingsBatchV2(
                    gateway=self.settings.gateway_id, seq=seq, polled_at=polled_at,
                    clock=clock, samples=cycle.samples, measurements=cycle.measurements,
                    replacements=cycle.replacements,
                ).model_dump_json()

            try:
                seq = outbox.add(payload)  # on disk before it is published
            except sqlite3.Error as exc:
                log.error("cannot store the batch in the outbox %s, batch not sent: %s",
                          outbox.path, exc)
                raise
            forwarder.stored()
            GATEWAY_BATCHES_STORED.inc()
            log.debug("batch %d: %d sample(s)", seq, len(cycle.samples))
            try:
                self._remember(memory, self.table, force=self.table.changes != changes)
            except sqlite3.Error as exc:
                log.error("cannot write the gateway memory %s: %s", memory.path, exc)
            return seq

    @staticmethod
    def _remember(memory: Memory, table: DeviceTable, *, force: bool) -> None:
        memory.save_devices(((d.name, d.profile.id, d.serial, d.baselines)
                             for d in table.devices), force=force)

    async def _serve_commands(self, commands: CommandHandler, mqtt: MqttLink,
                              tasks: asyncio.TaskGroup, forwarder: Forwarder) -> None:
        """Commands, and the platform's confirmations of batches (to the forwarder)."""
        while True:
            message = await mqtt.messages.get()
            payload = message.payload
            if message.topic == self.confirms_topic:
                try:
                    forwarder.confirm(BatchConfirmation.model_validate_json(payload).seqs)
                except ValidationError as exc:
                    log.warning("ignored a malformed batch confirmation %r: %s", payload[:200],
                                exc.errors(include_url=False, include_input=False))
                continue
            # commands run side by side: one for a silent meter holds up no other
            tasks.create_task(self._answer(commands, mqtt, payload))

    async def _answer(self, commands: CommandHandler, mqtt: MqttLink, payload: bytes) -> None:
        try:
            answer = await commands.handle(payload)
            if answer is None:
                return
            GATEWAY_RELAY_COMMANDS.labels(answer.action, "ok" if answer.ok else "failed").inc()
            if not mqtt.publish_nowait(self.acks_topic, answer.model_dump_json()):
                log.error("MQTT queue full: answer to command %s dropped", answer.command_id)
        except Exception:  # one bad command must not stop the gateway
            log.exception("command failed: %r", payload[:200])


async def run(settings: Settings) -> None:
    """Run the gateway ``settings`` describe, with its /metrics and /ready, until cancelled."""
    gateway = Gateway(settings)
    async with serving(GATEWAY, settings.metrics_host, settings.gateway_metrics_port,
                       gateway.ready.is_set):
        await gateway.run()
