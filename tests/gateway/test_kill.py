"""A gateway process killed with SIGKILL mid-run, with the broker there and during a broker
outage: every batch it stored arrives, under its own number, in order (a batch the broker may
have had before the kill can come twice, identical: the platform keeps it once), and the
broker tells everyone the gateway is gone (its last will)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from meterline.contracts import GatewayStatus, ReadingsBatchV2
from meterline.services import Child
from meterline.settings import Settings
from simulators.fleet import Fleet
from tests.gateway.mqtt_probe import MqttProbe, forget_session
from tests.gateway.tcp_proxy import TcpProxy
from tests.waiting import until

Probe = Callable[..., Awaitable[MqttProbe]]


def stored_seqs(settings: Settings) -> list[int]:
    """Batches in the gateway's outbox, read from its file while it runs (WAL)."""
    path = settings.gateway_state_dir / f"{settings.gateway_id}.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [seq for (seq,) in db.execute("SELECT seq FROM batches ORDER BY seq")]


@pytest.fixture
async def proxy(mqtt_broker: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    running = TcpProxy(*mqtt_broker)
    yield running
    await running.cut()


class Run:
    def __init__(self, settings: Settings, mqtt: MqttProbe, log_dir: Path) -> None:
        self.settings, self.mqtt, self.log_dir = settings, mqtt, log_dir
        self.readings = settings.topic(settings.gateway_id, "readings")
        self.status = settings.topic(settings.gateway_id, "status")
        self.arrived: list[ReadingsBatchV2] = []
        self.payloads: dict[int, set[bytes]] = {}
        self.children: list[Child] = []

    def start(self) -> Child:
        child = Child("gateway", self.log_dir / f"run-{len(self.children) + 1}",
                      self.settings.as_env())
        self.children.append(child)
        return child

    async def state(self, expected: str) -> GatewayStatus:
        async with asyncio.timeout(10):
            while True:
                status = GatewayStatus.model_validate_json(await self.mqtt.next(self.status, 10))
                if status.state == expected:
                    return status

    async def batches_until(self, seq: int) -> None:
        async with asyncio.timeout(20):  # paho retries after 1 s, then 2 s, 4 s...
            while not self.arrived or max(b.seq for b in self.arrived) < seq:
                payload = await self.mqtt.next(self.readings, 20)
                batch = ReadingsBatchV2.model_validate_json(payload)
                self.arrived.append(batch)
                self.payloads.setdefault(batch.seq, set()).add(payload)


async def test_a_killed_gateway_loses_no_batch_and_keeps_their_order(
    make_settings: Callable[..., Settings], fleet: Fleet, proxy: TcpProxy,
    mqtt_broker: tuple[str, int], probe: Probe, tmp_path: Path,
) -> None:
    settings = make_settings(gateway_meters=f"127.0.0.1:{fleet.port}/1-{len(fleet.units)}",
                             poll_interval=0.2, mqtt_port=await proxy.start())
    run = Run(settings, await probe(settings.topic(settings.gateway_id, "readings"),
                                    settings.topic(settings.gateway_id, "status")), tmp_path)
    try:
        # 1. killed while the broker is there
        first = run.start()
        await asyncio.to_thread(first.wait_ready, 30)
        assert (await run.state("online")).reason == "connected"  # its birth
        await run.batches_until(3)
        first.proc.kill()
        await asyncio.to_thread(first.proc.wait)
        will = await run.state("offline")  # published by the broker, not the gateway
        assert will.reason == "connection lost"

        # 2. killed during an outage, started again before the broker is back
        second = run.start()
        await asyncio.to_thread(second.wait_ready, 30)
        await run.state("online")
        await proxy.cut()
        last_seen = max(b.seq for b in run.arrived)
        await until(lambda: _stored_after(settings, last_seen + 3), timeout=20,
                    what="batches stored while the broker is away")
        second.proc.kill()
        await asyncio.to_thread(second.proc.wait)
        killed_with = stored_seqs(settings)
        third = run.start()  # the broker still away: it polls, stores, never gets ready
        await until(lambda: _stored_after(settings, max(killed_with) + 2), timeout=20,
                    what="the restarted gateway to store batches of its own")
        await proxy.start()
        await asyncio.to_thread(third.wait_ready, 30)
        await run.batches_until(max(killed_with) + 2)
        await asyncio.to_thread(third.stop)
    finally:
        for child in run.children:
            await asyncio.to_thread(child.stop)  # the simulator answers meanwhile: same loop
        await asyncio.to_thread(
            forget_session, *mqtt_broker, f"meterline-gateway-{settings.gateway_id}",
            retained=[run.status] + [settings.topic(settings.gateway_id, f"devices/tcp-1-{u}")
                                     for u in fleet.units])

    seqs = [b.seq for b in run.arrived]
    assert set(seqs) == set(range(max(seqs) + 1))  # nothing lost, across both kills
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == sorted(first_seen)  # none overtook an older one
    assert all(len(payloads) == 1 for payloads in run.payloads.values())  # a repeat is a copy
    assert set(killed_with) <= set(seqs)  # what the kill left in the outbox went out later
    by_seq = {b.seq: b for b in run.arrived}
    for meter in {s.meter for b in run.arrived for s in b.samples}:
        times = [s.ts for seq in sorted(by_seq) for s in by_seq[seq].samples if s.meter == meter]
        assert times == sorted(times) and len(times) == len(set(times))  # in order, once


async def _stored_after(settings: Settings, seq: int) -> bool:
    try:
        seqs = stored_seqs(settings)
    except sqlite3.Error:
        return False
    return bool(seqs) and max(seqs) >= seq
