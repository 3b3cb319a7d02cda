"""Store-and-forward in memory: batches published while the broker is unreachable are sent
once it is back, none lost, their numbers consecutive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import cast

import pytest

from meterline.contracts import ReadingsBatch
from meterline.settings import Settings
from simulators.fleet import Fleet
from tests.gateway.conftest import FLEET_METERS, POLL_INTERVAL, RunningGateways
from tests.gateway.mqtt_probe import MqttProbe
from tests.gateway.tcp_proxy import TcpProxy


class LogWatch(logging.Handler):
    """Collects records and wakes ``until`` on each, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._loop.call_soon_threadsafe(self._changed.set)

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


def batches_logged(watch: LogWatch, since: int) -> list[int]:
    """Seqs of the batches the gateway published, as logged, from record ``since`` on."""
    return [int(cast(int, r.args[0])) for r in watch.records[since:]
            if r.msg == "batch %d: %d sample(s)" and isinstance(r.args, tuple)]


@pytest.fixture
async def proxy(mqtt_broker: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    """The gateway's only way to the broker. Set up before the gateway, so it is torn down
    after it: a gateway stopping with the broker away would wait for acks in vain."""
    running = TcpProxy(*mqtt_broker)
    yield running
    await running.cut()


async def test_batches_published_while_the_broker_is_away_arrive_later(
    proxy: TcpProxy, make_settings: Callable[..., Settings], fleet: Fleet,
    gateways: RunningGateways, probe: Callable[..., Awaitable[MqttProbe]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        gateway_meters=f"127.0.0.1:{fleet.port}/1-{FLEET_METERS}",
        poll_interval=POLL_INTERVAL, mqtt_port=await proxy.start(),
    )
    readings = settings.topic(settings.gateway_id, "readings")
    mqtt = await probe(readings)  # straight to the broker, subscribed all along
    caplog.set_level(logging.DEBUG, logger="meterline.gateway")
    watch = LogWatch()
    logger = logging.getLogger("meterline.gateway")
    logger.addHandler(watch)
    try:
        await gateways.start(settings)
        first = ReadingsBatch.model_validate_json(await mqtt.next(readings))
        assert first.seq == 0

        await proxy.cut()
        await watch.until(lambda: any("lost the MQTT broker" in r.getMessage()
                                      for r in watch.records))
        lost_at = len(watch.records)
        await watch.until(lambda: len(batches_logged(watch, lost_at)) >= 3)
        sent_while_away = batches_logged(watch, lost_at)
        await proxy.start()
        back = datetime.now(UTC)

        seqs = {first.seq}
        async with asyncio.timeout(20):  # paho retries after 1 s, then 2 s, 4 s...
            while True:
                batch = ReadingsBatch.model_validate_json(await mqtt.next(readings, 20))
                seqs.add(batch.seq)  # QoS 1: one sent just before the cut may come twice
                if batch.polled_at > back:
                    break
        assert set(sent_while_away) <= seqs
        assert seqs == set(range(max(seqs) + 1))  # nothing lost
    finally:
        logger.removeHandler(watch)
