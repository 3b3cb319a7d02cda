"""Watching a consumer group's progress from outside: has it committed what is on a topic?"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from meterline.settings import Settings
from tests.waiting import until


@asynccontextmanager
async def rating_offsets(settings: Settings) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """A probe of the rating group's progress: ``caught_up()`` is true once the group has
    committed every record that was on the readings topic when the probe was made."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                group_id=settings.rating_group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.readings_topic, p)
                      for p in range(settings.kafka_partitions)]
        ends = await consumer.end_offsets(partitions)

        async def caught_up() -> bool:
            for tp, end in ends.items():
                committed = await consumer.committed(tp)
                if end > 0 and (committed is None or committed < end):
                    return False
            return True

        yield caught_up
    finally:
        await consumer.stop()


async def rating_caught_up(settings: Settings) -> None:
    async with rating_offsets(settings) as caught_up:
        await until(caught_up, what="rating to commit every record on the topic")


