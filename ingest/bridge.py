"""The MQTT -> Kafka bridge.

Gateway batches (``{root}/{gateway}/readings``) are taken in groups: the ones waiting when
the bridge is ready for more, up to ``GROUP``. For each group, in order:
1. check each batch (a malformed batch or sample is dead-lettered with the reason), skip a
   batch already forwarded (``ingest_batches``, key (gateway, seq));
2. in one transaction: store the readings (idempotent), the dead letters, produce one Kafka
   record per batch and account (key = account) and wait for Kafka's acknowledgement, record
   the batches;
3. only then acknowledge the MQTT messages. A crash anywhere before makes the broker deliver
   them again (persistent session); every step above is idempotent.

It also stores the gateways' command acks and runs the relay command dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from aiokafka import AIOKafkaProducer

from ingest.commands import dispatch, record_ack
from ingest.directory import MeterDirectory
from ingest.readings import (
    Replacement,
    Routed,
    Samples,
    account_records,
    check_replacements,
    check_samples,
    latest_allowed_us,
    parse_envelope,
    records,
    route,
    route_replacements,
    successors,
)
from ingest.telemetry import forwarded_before, keep_telemetry_store, mark_forwarded
from meterline.contracts import BatchConfirmation, BatchEnvelope
from meterline.dead_letters import dead_letter
from meterline.kafka import AccountPartitions, ensure_topics
from meterline.metrics import (
    BRIDGE,
    BRIDGE_BATCHES,
    BRIDGE_GROUP_BATCHES,
    BRIDGE_GROUP_SECONDS,
    BRIDGE_READINGS_IN,
    BRIDGE_READINGS_OUT,
    BRIDGE_RECORDS,
    serving,
)
from meterline.mqtt import Message, MqttLink
from meterline.services import settle_heap
from meterline.settings import Settings
from meterline.telemetry import ReadingColumns, write_readings

log = logging.getLogger("meterline.ingest")

# gateway batches taken in one transaction at most: those waiting when the bridge is ready
# for more (the broker sends a subscriber a limited number unacknowledged at a time anyway)
GROUP = 100


class Bridge:
    def __init__(self, settings: Settings, *, group: int = GROUP) -> None:
        self.settings = settings
        self.group = group
        self.directory = MeterDirectory()
        self.link = MqttLink(settings, settings.bridge_client_id, clean_session=False,
                             manual_ack=True)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=2,
            enable_idempotence=False,
        )
        self._partitions: AccountPartitions | None = None
        self.batches = 0  # forwarded since start
        self.progress = asyncio.Condition()  # notified whenever ``batches`` grows
        self.ready = asyncio.Event()  # subscribed, and the command dispatcher listens

    async def handle(self, conn: psycopg.AsyncConnection[Any],
                     messages: Sequence[Message]) -> None:
        """Command acks one by one; gateway batches together, in one transaction."""
        batches: list[tuple[str, bytes]] = []
        for message in messages:
            parts = message.topic.split("/")
            gateway, kind = parts[-2], parts[-1]
            if kind == "acks":
                async with conn.transaction():
                    reason = await record_ack(conn, message.payload)
                    if reason:
                        await dead_letter(conn.cursor(), "mqtt",
                                          [(reason, _text(message.payload))])
            else:
                batches.append((gateway, message.payload))
        if batches:
            await self.forward(conn, batches)

    async def forward(self, conn: psycopg.AsyncConnection[Any],
                      batches: Sequence[tuple[str, bytes]]) -> None:
        """Check, store and produce gateway batches ((topic gateway, payload) pairs): all in
        one transaction that commits only after Kafka acknowledged every record."""
        started = time.perf_counter()
        dead: list[tuple[str, str]] = []
        envelopes: list[BatchEnvelope] = []
        for gateway, payload in batches:
            envelope = parse_envelope(payload, gateway)
            if isinstance(envelope, str):
                dead.append((envelope, _text(payload)))
            else:
                envelopes.append(envelope)
        latest = latest_allowed_us(datetime.now(UTC), self.settings.max_clock_skew)
        out = 0
        async with conn.transaction():
            cur = conn.cursor()
            seen = await forwarded_before(cur, [(e.gateway, e.seq) for e in envelopes])
            fresh: list[BatchEnvelope] = []
            for envelope in envelopes:  # skip batches seen before, here or in this group
                if (envelope.gateway, envelope.seq) not in seen:
                    seen.add((envelope.gateway, envelope.seq))
                    fresh.append(envelope)
            samples = Samples()
            replacements: list[Replacement] = []
            for envelope in fresh:
                good, bad = check_samples(envelope, latest)
                found, refused = check_replacements(envelope)
                samples.extend(good)
                replacements += [Replacement(envelope.gateway, f"{envelope.gateway}/"
                                             f"{envelope.seq}", r) for r in found]
                dead += bad + refused
            reports = set(zip(samples.meter, samples.gateway, strict=True)) | {
                (r.replacement.old_meter, r.gateway) for r in replacements}
            meters = await self.directory.resolve(conn, reports)
            replaced, refused = route_replacements(replacements, meters)
            new_meters = successors(replaced, meters)
            self.directory.learn(new_meters.values())
            routed = route(samples, {**meters, **new_meters})
            routed.replacements = replaced
            dead += routed.dead + refused
            await self.store(conn, samples, routed)
            await dead_letter(cur, "mqtt", dead)
            sent = []
            if self.settings.bridge_record_version == 1:  # the skeleton's design (baseline)
                for key, v1 in account_records(samples, routed):
                    sent.append(await self.producer.send(
                        self.settings.readings_topic, value=v1.model_dump_json().encode(),
                        key=key.encode()))
                out = len(routed.keep)
            else:
                partitions = await self.partitions()
                for partition, record in records(samples, routed,
                                                 [(e.gateway, e.seq) for e in fresh],
                                                 partitions.of):
                    sent.append(await self.producer.send(
                        self.settings.readings_topic, value=record.model_dump_json().encode(),
                        partition=partition))
                out = len(routed.keep)
            await asyncio.gather(*sent)
            if fresh:
                await mark_forwarded(cur, [(e.gateway, e.seq, len(e.samples)) for e in fresh])
        self.confirm(envelopes)
        BRIDGE_GROUP_SECONDS.observe(time.perf_counter() - started)
        BRIDGE_GROUP_BATCHES.observe(len(batches))
        BRIDGE_BATCHES.labels("forwarded").inc(len(fresh))
        BRIDGE_BATCHES.labels("duplicate").inc(len(envelopes) - len(fresh))
        BRIDGE_BATCHES.labels("refused").inc(len(batches) - len(envelopes))
        BRIDGE_READINGS_IN.inc(sum(len(e.samples) for e in fresh))
        BRIDGE_READINGS_OUT.inc(out)
        BRIDGE_RECORDS.inc(len(sent))
        if fresh:
            async with self.progress:
                self.batches += len(fresh)
                self.progress.notify_all()

    def subscriptions(self) -> list[str]:
        """The gateways' readings and acks; with ``bridge_share``, as an MQTT shared
        subscription (``$share/{group}/...``): the broker hands each message to one of the
        bridges of the group, and keeps a bridge's unacknowledged ones in its session."""
        s = self.settings
        topics = [s.topic("+", "readings"), s.topic("+", "acks")]
        return [f"$share/{s.bridge_share}/{t}" for t in topics] if s.bridge_share else topics

    def confirm(self, envelopes: Sequence[BatchEnvelope]) -> None:
        """Tell each gateway which of its batches are committed (new ones and ones had
        before), so it drops them from its outbox (``{root}/{gateway}/confirms``, QoS 1; a
        confirmation lost is made good when the gateway sends the batch again)."""
        by_gateway: dict[str, list[int]] = {}
        for envelope in envelopes:
            by_gateway.setdefault(envelope.gateway, []).append(envelope.seq)
        for gateway, seqs in by_gateway.items():
            confirmation = BatchConfirmation(gateway=gateway, seqs=seqs)
            self.link.publish_nowait(self.settings.topic(gateway, "confirms"),
                                     confirmation.model_dump_json())

    async def store(self, conn: psycopg.AsyncConnection[Any], samples: Samples,
                    routed: Routed) -> None:
        """The routed readings into the telemetry store (idempotent on meter, register, ts)."""
        if not len(routed.keep):
            return
        keep = routed.keep.tolist()
        await write_readings(conn, ReadingColumns(
            meter=[samples.meter[i] for i in keep],
            register=[samples.register[i] for i in keep],
            ts=np.asarray(samples.ts, dtype=np.int64)[routed.keep],
            value=np.asarray(samples.value, dtype=np.int64)[routed.keep],
            gateway=[samples.gateway[i] for i in keep],
        ))

    async def partitions(self) -> AccountPartitions:
        """The readings topic's partitioning (re-read when the partition count changes)."""
        count = len(await self.producer.partitions_for(self.settings.readings_topic))
        if self._partitions is None or self._partitions.count != count:
            self._partitions = AccountPartitions(count)
        return self._partitions

    async def run(self) -> None:
        s = self.settings
        await ensure_topics(s.kafka_bootstrap, [s.readings_topic], s.kafka_partitions)
        await self.producer.start()
        try:
            async with await psycopg.AsyncConnection.connect(
                s.database_url, application_name="meterline-bridge"
            ) as conn, asyncio.TaskGroup() as background:
                await self.directory.load(conn)
                await conn.commit()
                settle_heap()
                await self.link.connect(self.subscriptions())
                dispatcher_ready = asyncio.Event()
                background.create_task(dispatch(s, self.link, dispatcher_ready))
                background.create_task(keep_telemetry_store(s.database_url))
                await dispatcher_ready.wait()
                await self.link.subscribed.wait()
                self.ready.set()
                log.info("bridge ready: %s -> kafka %s", self.subscriptions()[0],
                         s.readings_topic)
                await self._forward_forever(conn)
        finally:
            self.ready.clear()
            await self.link.close()
            await self.producer.stop()

    async def _forward_forever(self, conn: psycopg.AsyncConnection[Any]) -> None:
        queue = self.link.messages
        while True:
            messages = [await queue.get()]
            while len(messages) < self.group and not queue.empty():
                messages.append(queue.get_nowait())
            # an error here (database or Kafka gone) stops the bridge before the MQTT acks:
            # the broker delivers the messages again to the next bridge
            await self.handle(conn, messages)
            for message in messages:
                self.link.ack(message)


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", "replace")


async def run(settings: Settings) -> None:
    """Run a bridge, with its /metrics and /ready, until cancelled."""
    bridge = Bridge(settings)
    async with serving(BRIDGE, settings.metrics_host, settings.bridge_metrics_port,
                       bridge.ready.is_set):
        await bridge.run()
