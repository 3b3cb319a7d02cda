"""Store-and-forward: batches published while the broker is unreachable are sent once it is
back, none lost, their numbers consecutive, even when the gateway restarts meanwhile (they
wait in the outbox on disk); a full outbox drops its oldest batches."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from meterline.contracts import ReadingsBatchV2
from meterline.settings import Settings
from simulators.fleet import Fleet
from tests.gateway.conftest import FLEET_METERS, POLL_INTERVAL, RunningGateways
from tests.gateway.mqtt_probe import MqttProbe
from tests.gateway.tcp_proxy import TcpProxy

Probe = Callable[..., Awaitable[MqttProbe]]


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
        first = ReadingsBatchV2.model_validate_json(await mqtt.next(readings))
        assert first.seq == 0

        await proxy.cut()
        await watch.until(lambda: any("lost the MQTT broker" in r.getMessage()
                                      for r in watch.records))
        lost_at = len(watch.records)
        await watch.until(lambda: len(batches_logged(watch, lost_at)) >= 3)
        sent_while_away = batches_logged(watch, lost_at)
        await proxy.start()
        back = datetime.now(UTC)

        arrived = [first.seq]
        async with asyncio.timeout(20):  # paho retries after 1 s, then 2 s, 4 s...
            while True:
                batch = ReadingsBatchV2.model_validate_json(await mqtt.next(readings, 20))
                arrived.append(batch.seq)  # QoS 1: one sent just before the cut may come twice
                if batch.polled_at > back:
                    break
        seqs = set(arrived)
        assert set(sent_while_away) <= seqs
        assert seqs == set(range(max(seqs) + 1))  # nothing lost
        first_seen = list(dict.fromkeys(arrived))
        assert first_seen == sorted(first_seen)  # none overtook an older one
    finally:
        logger.removeHandler(watch)


@pytest.fixture
async def watch(caplog: pytest.LogCaptureFixture) -> AsyncIterator[LogWatch]:
    """The gateway's log records, debug ones included."""
    caplog.set_level(logging.DEBUG, logger="meterline.gateway")
    running = LogWatch()
    logger = logging.getLogger("meterline.gateway")
    logger.addHandler(running)
    yield running
    logger.removeHandler(running)


def dropped_seqs(watch: LogWatch) -> set[int]:
    """The seqs a full outbox dropped, as logged once it had room again or closed."""
    dropped: set[int] = set()
    for record in watch.records:
        found = re.search(r"dropped while it was full, seq (\d+) to (\d+)", record.getMessage())
        if found:
            dropped.update(range(int(found[1]), int(found[2]) + 1))
    return dropped


class Outage:
    """A gateway that loses the broker, is restarted while it is away, and finds it back."""

    def __init__(self, proxy: TcpProxy, gateways: RunningGateways, watch: LogWatch,
                 settings: Settings, mqtt: MqttProbe) -> None:
        self.proxy, self.gateways, self.watch = proxy, gateways, watch
        self.settings, self.mqtt = settings, mqtt
        self.readings = settings.topic(settings.gateway_id, "readings")
        self.received: list[ReadingsBatchV2] = []
        self.after_back: list[ReadingsBatchV2] = []  # received once the broker was back
        self.stored_before_cut: list[int] = []
        self.stored_by_first_run: list[int] = []
        self.restarted_at = self.back_at = datetime.now(UTC)

    async def run(self, **options: Any) -> None:
        first = await self.gateways.start(self.settings, **options)
        self.received.append(await self.next())
        self.stored_before_cut = batches_logged(self.watch, 0)
        cut = len(self.watch.records)
        await self.proxy.cut()
        await self.watch.until(lambda: any("lost the MQTT broker" in r.getMessage()
                                           for r in self.watch.records[cut:]))
        await self.watch.until(lambda: len(batches_logged(self.watch, cut)) >= 4)
        await self.gateways.stop(first)  # acks awaited in vain: the batches stay on disk
        self.stored_by_first_run = batches_logged(self.watch, 0)

        stopped = len(self.watch.records)
        self.restarted_at = datetime.now(UTC)
        await self.gateways.start(self.settings, wait_ready=False, **options)  # broker away
        await self.watch.until(lambda: len(batches_logged(self.watch, stopped)) >= 2)
        # what reached the broker before the cut (a second ago at least) reached the probe too
        self.received += [ReadingsBatchV2.model_validate_json(payload)
                          for payload in self.mqtt.received(self.readings)]
        await self.proxy.start()
        self.back_at = datetime.now(UTC)
        async with asyncio.timeout(30):  # paho retries after 1 s, then 2 s, 4 s...
            while True:
                batch = await self.next(30)
                self.after_back.append(batch)
                if batch.polled_at > self.back_at:
                    break
        self.received += self.after_back

    async def next(self, timeout: float = 5.0) -> ReadingsBatchV2:
        return ReadingsBatchV2.model_validate_json(await self.mqtt.next(self.readings, timeout))

    @property
    def seqs(self) -> list[int]:
        return [batch.seq for batch in self.received]


async def test_batches_stored_while_the_broker_is_away_survive_a_restart(
    proxy: TcpProxy, make_settings: Callable[..., Settings], fleet: Fleet,
    gateways: RunningGateways, probe: Probe, watch: LogWatch,
) -> None:
    settings = make_settings(
        gateway_meters=f"127.0.0.1:{fleet.port}/1-{FLEET_METERS}",
        poll_interval=POLL_INTERVAL, mqtt_port=await proxy.start(),
    )
    mqtt = await probe(settings.topic(settings.gateway_id, "readings"))
    outage = Outage(proxy, gateways, watch, settings, mqtt)
    await outage.run()

    messages = [r.getMessage() for r in watch.records]
    assert any("they stay in the outbox" in m for m in messages)
    waiting = [int(found[1]) for m in messages
               if (found := re.search(r"(\d+) earlier batch\(es\) in the outbox", m))]
    assert waiting[0] == 0 and waiting[1] >= 4  # the second start found the first's batches

    seqs = outage.seqs
    assert set(seqs) == set(range(max(seqs) + 1))  # nothing lost, across the restart
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == sorted(first_seen)  # the old ones first, in seq order
    for seq, times in Counter(seqs).items():
        # QoS 1: only a batch that may have reached the broker before the cut comes twice
        assert times == 1 or (times == 2 and seq in outage.stored_before_cut), (seq, times)
    # the first run's batches came under their own numbers, with their own readings
    by_seq = {batch.seq: batch for batch in outage.received}
    for seq in outage.stored_by_first_run:
        assert by_seq[seq].polled_at < outage.restarted_at
        assert len(by_seq[seq].samples) == FLEET_METERS
    assert all(batch.polled_at > outage.restarted_at for batch in outage.received
               if batch.seq not in outage.stored_by_first_run)
    assert len(outage.stored_by_first_run) >= 5
    assert max(seqs) > max(outage.stored_by_first_run)


async def test_a_full_outbox_drops_its_oldest_batches(
    proxy: TcpProxy, make_settings: Callable[..., Settings], fleet: Fleet,
    gateways: RunningGateways, probe: Probe, watch: LogWatch,
) -> None:
    settings = make_settings(
        gateway_meters=f"127.0.0.1:{fleet.port}/1-{FLEET_METERS}",
        poll_interval=POLL_INTERVAL, mqtt_port=await proxy.start(),
    )
    mqtt = await probe(settings.topic(settings.gateway_id, "readings"))
    outage = Outage(proxy, gateways, watch, settings, mqtt)
    await outage.run(outbox_max_bytes=3200)  # about three batches of three meters (v2)

    assert any(r.levelno == logging.ERROR and "full (3,200 bytes of batches): dropping the "
               "oldest" in r.getMessage() for r in watch.records)
    # the first acknowledgement after the outage makes room, and the log sums up the drops
    await watch.until(lambda: any("has room again" in r.getMessage() for r in watch.records))
    dropped = dropped_seqs(watch)  # in the first run, and in the second until the broker is back
    assert dropped, "the outbox never filled up"
    seqs = outage.seqs
    after_back = {batch.seq for batch in outage.after_back}
    newest_dropped = max(dropped)
    # every seq either arrived or was dropped as the oldest; the newest ones all arrived
    assert set(seqs) | dropped == set(range(max(seqs) + 1))
    assert set(range(newest_dropped + 1, max(seqs) + 1)) <= set(seqs)
    # a dropped batch arrives only if the broker had it before the cut
    assert all(seq in outage.stored_before_cut for seq in dropped & set(seqs))
    assert not dropped & after_back
    assert min(dropped) <= max(outage.stored_by_first_run)  # the oldest go first
