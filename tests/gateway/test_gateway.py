"""The gateway against a real simulated fleet (Modbus TCP) and the machine's Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient

from gateway.outbox import Outbox
from gateway.service import mqtt_client_id, run
from meterline.contracts import CommandAck, ReadingsBatchV2, RelayAction, RelayCommand
from meterline.kafka import free_port
from meterline.settings import Settings
from meterline.units import Register, Unit
from simulators.fleet import Fleet, serve_fleet
from tests.gateway.conftest import FLEET_METERS, POLL_INTERVAL, RunningGateways
from tests.gateway.mqtt_probe import MqttProbe, forget_session
from tests.simulators.fleet_harness import ManualClock

Probe = Callable[..., Awaitable[MqttProbe]]


def shown(value: float) -> Decimal:
    """What a meter whose register holds ``value`` shows: the float32, shortest form."""
    return Decimal(str(np.float32(value)))


def topics(settings: Settings) -> tuple[str, str, str]:
    gid = settings.gateway_id
    return (settings.topic(gid, "readings"), settings.topic(gid, "commands"),
            settings.topic(gid, "acks"))


async def next_batch(probe: MqttProbe, topic: str, *, after: datetime | None = None,
                     timeout: float = 5.0) -> ReadingsBatchV2:
    """The next batch, or the first one polled after ``after``."""
    async with asyncio.timeout(timeout):
        while True:
            batch = ReadingsBatchV2.model_validate_json(await probe.next(topic, timeout))
            if after is None or batch.polled_at > after:
                return batch


def relay_command(meter: str, action: RelayAction) -> RelayCommand:
    return RelayCommand(command_id=uuid.uuid4(), meter=meter, action=action,
                        reason="test", issued_at=datetime.now(UTC))


async def read_relay(fleet: Fleet, unit: int) -> bool:
    modbus = AsyncModbusTcpClient(fleet.host, port=fleet.port, timeout=2, retries=0)
    assert await modbus.connect()
    try:
        response = await modbus.read_coils(0, count=1, device_id=unit)
        assert not response.isError()
        return bool(response.bits[0])
    finally:
        modbus.close()


async def test_one_batch_per_cycle_with_one_sample_per_meter(
    settings: Settings, fleet: Fleet, clock: ManualClock, gateways: RunningGateways,
    probe: Probe,
) -> None:
    readings, _, _ = topics(settings)
    mqtt = await probe(readings)
    await gateways.start(settings)

    batches = [await next_batch(mqtt, readings) for _ in range(3)]
    assert [b.seq for b in batches] == [0, 1, 2]  # a new gateway, consecutive numbers
    span = batches[-1].polled_at - batches[0].polled_at
    assert span >= timedelta(seconds=2 * POLL_INTERVAL - 0.05)  # one message per cycle
    serials = [str(fleet.serial(unit)) for unit in fleet.units]
    for batch in batches:
        assert (batch.v, batch.gateway) == (2, settings.gateway_id)
        assert [s.meter for s in batch.samples] == serials
        for sample, unit in zip(batch.samples, fleet.units, strict=True):
            assert (sample.register, sample.unit) == (Register.ACTIVE_IMPORT, Unit.KWH)
            # simulated time stands still: the meter holds its opening reading
            assert sample.value == shown(fleet.meter(unit).amount)
            assert batch.polled_at <= sample.ts <= datetime.now(UTC)

    before = {s.meter: s.value for s in batches[-1].samples}
    clock.advance(20.0)  # 20 s of real time: 200 simulated minutes
    moved = datetime.now(UTC)
    batch = await next_batch(mqtt, readings, after=moved)
    for sample, unit in zip(batch.samples, fleet.units, strict=True):
        assert sample.value == shown(fleet.meter(unit).amount)
        assert sample.value > before[sample.meter]


async def test_seq_continues_after_a_restart(
    settings: Settings, fleet: Fleet, gateways: RunningGateways, probe: Probe
) -> None:
    readings, _, _ = topics(settings)
    mqtt = await probe(readings)
    first = await gateways.start(settings)
    seqs = [(await next_batch(mqtt, readings)).seq for _ in range(2)]
    await gateways.stop(first)

    restarted_at = datetime.now(UTC)
    await gateways.start(settings)  # same gateway id, same state dir
    while True:
        batch = await next_batch(mqtt, readings)
        if batch.polled_at > restarted_at:
            break
        seqs.append(batch.seq)  # published by the first run before it stopped
    assert seqs == list(range(len(seqs)))
    assert batch.seq == seqs[-1] + 1
    assert (await next_batch(mqtt, readings)).seq == batch.seq + 1


def outbox_seqs(settings: Settings) -> list[int]:
    """The batches in a gateway's outbox, read straight from its file (the gateway may be
    running: WAL lets a reader in)."""
    path = settings.gateway_state_dir / f"{settings.gateway_id}.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [seq for (seq,) in db.execute("SELECT seq FROM batches ORDER BY seq")]


async def test_acknowledged_batches_leave_the_outbox(
    settings: Settings, fleet: Fleet, gateways: RunningGateways, probe: Probe
) -> None:
    readings, _, _ = topics(settings)
    mqtt = await probe(readings)
    gateway = await gateways.start(settings)
    latest = first = await next_batch(mqtt, readings)
    assert first.seq == 0
    async with asyncio.timeout(10):  # the broker's ack follows: a cycle or two later, gone
        while first.seq in outbox_seqs(settings):
            latest = await next_batch(mqtt, readings)
    assert latest.seq - first.seq <= 3
    assert len(outbox_seqs(settings)) <= 2  # the one just published, maybe not acked yet

    await gateways.stop(gateway)  # waits for the acks of the rest
    outbox = Outbox(settings.gateway_state_dir, settings.gateway_id)
    try:
        assert (len(outbox), outbox.size) == (0, 0)
        last = outbox.next_seq - 1
    finally:
        outbox.close()
    while latest.seq < last:  # every batch that left the outbox did reach the broker
        batch = await next_batch(mqtt, readings)
        assert batch.seq == latest.seq + 1
        latest = batch


async def test_numbering_taken_over_from_the_old_seq_file_never_goes_back(
    settings: Settings, fleet: Fleet, gateways: RunningGateways, probe: Probe
) -> None:
    readings, _, _ = topics(settings)
    old_file = settings.gateway_state_dir / f"{settings.gateway_id}.seq"
    old_file.parent.mkdir(parents=True)
    old_file.write_text("41\n")  # a gateway upgraded in the field: it has sent 0 to 40
    mqtt = await probe(readings)
    first = await gateways.start(settings)
    seqs = [(await next_batch(mqtt, readings)).seq for _ in range(2)]
    assert seqs == [41, 42]
    assert not old_file.exists()
    await gateways.stop(first)

    old_file.write_text("41\n")  # say the old file came back (a backup restored)
    restarted_at = datetime.now(UTC)
    await gateways.start(settings)
    batch = await next_batch(mqtt, readings)
    while batch.polled_at <= restarted_at:
        seqs.append(batch.seq)  # published by the first run before it stopped
        batch = await next_batch(mqtt, readings)
    assert seqs == list(range(41, 41 + len(seqs)))
    assert batch.seq == seqs[-1] + 1  # never back to 41
    assert not old_file.exists()


async def test_relay_commands_write_the_coil_and_are_acknowledged(
    settings: Settings, fleet: Fleet, gateways: RunningGateways, probe: Probe
) -> None:
    _, commands, acks = topics(settings)
    mqtt = await probe(acks)
    await gateways.start(settings)
    unit = 2
    serial = str(fleet.serial(unit))
    assert await read_relay(fleet, unit) is True

    steps: tuple[tuple[RelayAction, bool], ...] = (("disconnect", False), ("connect", True))
    for action, closed in steps:
        command = relay_command(serial, action)
        mqtt.publish(commands, command.model_dump_json())
        ack = CommandAck.model_validate_json(await mqtt.next(acks))
        assert (ack.command_id, ack.meter, ack.action, ack.ok) == (
            command.command_id, serial, action, True
        )
        assert ack.at >= command.issued_at
        assert await read_relay(fleet, unit) is closed  # a real Modbus read
        assert fleet.meter(unit).relay_closed is closed
        assert all(fleet.meter(u).relay_closed for u in fleet.units if u != unit)


async def test_unknown_meter_gets_a_failed_ack(
    settings: Settings, fleet: Fleet, gateways: RunningGateways, probe: Probe
) -> None:
    _, commands, acks = topics(settings)
    mqtt = await probe(acks)
    await gateways.start(settings)
    command = relay_command("99999999", "disconnect")
    mqtt.publish(commands, command.model_dump_json())
    ack = CommandAck.model_validate_json(await mqtt.next(acks))
    assert ack.command_id == command.command_id
    assert ack.ok is False
    assert "unknown meter 99999999" in ack.detail
    assert all(fleet.meter(u).relay_closed for u in fleet.units)


async def test_malformed_commands_are_ignored_and_the_gateway_goes_on(
    settings: Settings, fleet: Fleet, gateways: RunningGateways, probe: Probe,
    caplog: pytest.LogCaptureFixture,
) -> None:
    readings, commands, acks = topics(settings)
    mqtt = await probe(readings, acks)
    await gateways.start(settings)
    valid = relay_command(str(fleet.serial(1)), "disconnect")
    for payload in (
        b"{not json",
        b"\xff\xfe",
        b'{"v": 1, "meter": "1"}',
        valid.model_dump_json().replace('"disconnect"', '"explode"'),
        valid.model_dump_json().replace('"v":1', '"v":3'),
    ):
        mqtt.publish(commands, payload)
    mqtt.publish(commands, valid.model_dump_json())

    ack = CommandAck.model_validate_json(await mqtt.next(acks))
    assert ack.command_id == valid.command_id and ack.ok  # the first ack: none for the junk
    ignored = [r for r in caplog.records if "malformed command" in r.getMessage()]
    assert len(ignored) == 5 and all(r.levelno == logging.WARNING for r in ignored)

    after = datetime.now(UTC)
    batch = await next_batch(mqtt, readings, after=after)
    assert (await next_batch(mqtt, readings)).seq == batch.seq + 1
    assert len(batch.samples) == FLEET_METERS


@contextlib.asynccontextmanager
async def second_fleet() -> AsyncIterator[tuple[Fleet, Callable[[], Awaitable[None]]]]:
    """A one-meter fleet the test can stop halfway (the second value)."""
    serving = serve_fleet(port=0, meters=1, serial_base=31_000_000)
    fleet = await serving.__aenter__()
    stopped = False

    async def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            await serving.__aexit__(None, None, None)

    try:
        yield fleet, stop
    finally:
        await stop()


async def test_meters_that_do_not_answer_are_left_out(
    make_settings: Callable[..., Settings], fleet: Fleet, gateways: RunningGateways,
    probe: Probe, caplog: pytest.LogCaptureFixture,
) -> None:
    async with second_fleet() as (other, stop_other):
        nobody = free_port()
        settings = make_settings(
            gateway_meters=(
                f"127.0.0.1:{fleet.port}/1-{FLEET_METERS + 1};"  # the last unit is absent
                f"127.0.0.1:{other.port}/1;127.0.0.1:{nobody}/1"  # nobody listens on the last
            ),
            poll_interval=POLL_INTERVAL,
        )
        readings, commands, acks = topics(settings)
        mqtt = await probe(readings, acks)
        await gateways.start(settings, modbus_timeout=0.5)

        answering = [str(fleet.serial(u)) for u in fleet.units] + [str(other.serial(1))]
        batch = await next_batch(mqtt, readings)
        assert [s.meter for s in batch.samples] == answering
        warnings = "\n".join(r.getMessage() for r in caplog.records
                             if r.levelno == logging.WARNING)
        assert f"unit {FLEET_METERS + 1} on line tcp-1 (127.0.0.1:{fleet.port})" in warnings
        assert f"cannot connect to 127.0.0.1:{nobody}" in warnings

        await stop_other()  # a meter goes silent while the gateway runs
        stopped_at = datetime.now(UTC)
        batch = await next_batch(mqtt, readings, after=stopped_at)
        assert [s.meter for s in batch.samples] == answering[:-1]
        following = await next_batch(mqtt, readings)
        assert following.seq == batch.seq + 1
        assert f"meter {other.serial(1)}" in "\n".join(r.getMessage() for r in caplog.records)

        command = relay_command(str(other.serial(1)), "disconnect")
        mqtt.publish(commands, command.model_dump_json())
        ack = CommandAck.model_validate_json(await mqtt.next(acks))
        assert ack.command_id == command.command_id and ack.ok is False
        assert "Modbus write of the relay failed" in ack.detail
        assert f"127.0.0.1:{other.port}" in ack.detail


async def test_run_logs_ready_publishes_and_stops_on_cancel(
    settings: Settings, fleet: Fleet, probe: Probe, mqtt_broker: tuple[str, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    readings, _, _ = topics(settings)
    mqtt = await probe(readings)
    caplog.set_level(logging.INFO, logger="meterline.gateway")
    ready = asyncio.Event()

    class ReadyWatch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "ready" in record.getMessage():
                ready.set()

    watch = ReadyWatch(logging.INFO)
    logger = logging.getLogger("meterline.gateway")
    logger.addHandler(watch)
    task = asyncio.create_task(run(settings))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        line = next(r.getMessage() for r in caplog.records if "ready" in r.getMessage())
        assert f"{FLEET_METERS}/{FLEET_METERS} meters identified" in line
        assert (await next_batch(mqtt, readings)).gateway == settings.gateway_id
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        logger.removeHandler(watch)
        await asyncio.to_thread(
            forget_session, *mqtt_broker, mqtt_client_id(settings.gateway_id),
            retained=[settings.topic(settings.gateway_id, "status")]
            + [settings.topic(settings.gateway_id, f"devices/tcp-1-{u}") for u in fleet.units])
    assert any(r.getMessage() == f"gateway {settings.gateway_id} stopped" for r in caplog.records)
    assert (settings.gateway_state_dir / f"{settings.gateway_id}.sqlite").exists()


async def test_a_serial_reported_by_two_meters_is_left_out_of_the_second(
    make_settings: Callable[..., Settings], fleet: Fleet, gateways: RunningGateways,
    probe: Probe, caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve_fleet(port=0, meters=1, serial_base=fleet.serial(1)) as twin:
        settings = make_settings(
            gateway_meters=f"127.0.0.1:{fleet.port}/1-{FLEET_METERS};127.0.0.1:{twin.port}/1",
            poll_interval=POLL_INTERVAL,
        )
        readings, _, _ = topics(settings)
        mqtt = await probe(readings)
        await gateways.start(settings)
        serials = [str(fleet.serial(unit)) for unit in fleet.units]
        for _ in range(3):
            batch = await next_batch(mqtt, readings)
            assert [s.meter for s in batch.samples] == serials
    clashes = [r for r in caplog.records
               if r.levelno == logging.ERROR and "already has" in r.getMessage()]
    assert len(clashes) == 1  # said once, not every cycle
    assert f"unit 1 on line tcp-2 (127.0.0.1:{twin.port})" in clashes[0].getMessage()
