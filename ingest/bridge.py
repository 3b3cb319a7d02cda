"""The MQTT -> Kafka bridge.

For each gateway batch (``{root}/{gateway}/readings``), in order:
1. check it (a malformed batch or sample is dead-lettered with the reason), skip a batch
   already forwarded (``ingest_batches``, key (gateway, seq));
2. in one transaction: store the readings (idempotent), the dead letters, produce one Kafka
   record per account (key = account) and wait for Kafka's acknowledgement, record the batch;
3. only then acknowledge the MQTT message. A crash anywhere before makes the broker deliver
   the batch again (persistent session); every step above is idempotent.

It also stores the gateways' command acks and runs the relay command dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from ingest.commands import dispatch, record_ack
from ingest.directory import MeterDirectory
from ingest.readings import check_samples, parse_envelope, route
from ingest.telemetry import (
    already_forwarded,
    keep_partitions_ahead,
    mark_forwarded,
    store_readings,
)
from meterline.dead_letters import dead_letter
from meterline.kafka import ensure_topics
from meterline.mqtt import Message, MqttLink
from meterline.settings import Settings

log = logging.getLogger("meterline.ingest")


class Bridge:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = MeterDirectory()
        self.link = MqttLink(settings, settings.bridge_client_id, clean_session=False,
                             manual_ack=True)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=2,
            enable_idempotence=False,
        )
        self.batches = 0
        self.ready = asyncio.Event()  # subscribed, and the command dispatcher listens

    async def handle(self, conn: psycopg.AsyncConnection[Any], message: Message) -> None:
        parts = message.topic.split("/")
        gateway, kind = parts[-2], parts[-1]
        if kind == "acks":
            async with conn.transaction():
                reason = await record_ack(conn, message.payload)
                if reason:
                    await dead_letter(conn.cursor(), "mqtt", [(reason, _text(message.payload))])
            return
        await self.forward(conn, gateway, message.payload)

    async def forward(self, conn: psycopg.AsyncConnection[Any], gateway: str,
                      payload: bytes) -> None:
        async with conn.transaction():
            cur = conn.cursor()
            envelope = parse_envelope(payload, gateway)
            if isinstance(envelope, str):
                await dead_letter(cur, "mqtt", [(envelope, _text(payload))])
                return
            if await already_forwarded(cur, envelope.gateway, envelope.seq):
                log.debug("batch %s/%s seen before, skipped", envelope.gateway, envelope.seq)
                return
            latest = datetime.now(UTC) + timedelta(seconds=self.settings.max_clock_skew)
            samples, dead = check_samples(envelope, latest)
            meters = await self.directory.resolve(conn, {s.meter for s in samples})
            routed = route(envelope, samples, meters)
            await store_readings(cur, envelope.gateway, routed.samples)
            await dead_letter(cur, "mqtt", dead + routed.dead)
            sent = [
                await self.producer.send(
                    self.settings.readings_topic,
                    value=record.model_dump_json().encode(),
                    key=record.account.encode(),
                )
                for record in routed.records
            ]
            await asyncio.gather(*sent)
            await mark_forwarded(cur, envelope.gateway, envelope.seq, len(envelope.samples))
        self.batches += 1

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
                await self.link.connect([s.topic("+", "readings"), s.topic("+", "acks")])
                dispatcher_ready = asyncio.Event()
                background.create_task(dispatch(s, self.link, dispatcher_ready))
                background.create_task(keep_partitions_ahead(s.database_url))
                await dispatcher_ready.wait()
                await self.link.subscribed.wait()
                self.ready.set()
                log.info("bridge ready: %s -> kafka %s", s.topic("+", "readings"),
                         s.readings_topic)
                await self._forward_forever(conn)
        finally:
            await self.link.close()
            await self.producer.stop()

    async def _forward_forever(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            message = await self.link.messages.get()
            # an error here (database or Kafka gone) stops the bridge before the MQTT ack:
            # the broker delivers the message again to the next bridge
            await self.handle(conn, message)
            self.link.ack(message)


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", "replace")


async def run(settings: Settings) -> None:
    await Bridge(settings).run()
