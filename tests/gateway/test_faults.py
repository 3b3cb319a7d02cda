"""Each fault of a meter is detected and reported: in the readings (flags, replacements) and in
the meter's retained status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.contracts import DeviceStatus, ReadingFlag, ReadingsBatchV2, SampleV2
from meterline.settings import Settings
from simulators.faults import (
    ClockDrift,
    ExceptionReply,
    Garbage,
    Jump,
    PowerLoss,
    Replacement,
    Rollover,
    Timeout,
)
from simulators.fleet import Fleet, serve_fleet
from tests.gateway.conftest import RunningGateways, tcp_config
from tests.gateway.mqtt_probe import MqttProbe
from tests.simulators.fleet_harness import ManualClock

Probe = Callable[..., Awaitable[MqttProbe]]
# The test's clock jumps ten simulated hours between two polls 0.2 s apart: up to 3.5 m3 of
# gas, which must look plausible (a rollover), while a counter falling by 150 m3 must not (a
# reset): 6 m3/h x 10,000 x 0.2 s x 1.5 = 5 m3 per poll.
RATE_FACTOR = 10_000


class Watch:
    """The gateway's readings and its meters' statuses, as the platform receives them."""

    def __init__(self, settings: Settings, mqtt: MqttProbe, devices: list[str]) -> None:
        self.settings, self.mqtt = settings, mqtt
        self.readings = settings.topic(settings.gateway_id, "readings")
        self.status = {d: settings.topic(settings.gateway_id, f"devices/{d}") for d in devices}

    async def batch(self, after: datetime | None = None) -> ReadingsBatchV2:
        async with asyncio.timeout(10):
            while True:
                batch = ReadingsBatchV2.model_validate_json(await self.mqtt.next(self.readings, 10))
                if after is None or batch.polled_at > after:
                    return batch

    async def sample(self, meter: str, flag: ReadingFlag | None = None) -> SampleV2:
        """The next sample of ``meter`` (with ``flag``, if given)."""
        async with asyncio.timeout(10):
            while True:
                for sample in (await self.batch()).samples:
                    if sample.meter == meter and (flag is None or flag in sample.flags):
                        return sample

    async def device(self, device: str, state: str, problem: str = "") -> DeviceStatus:
        """The next status of ``device`` in ``state`` whose problem contains ``problem``."""
        async with asyncio.timeout(10):
            while True:
                status = DeviceStatus.model_validate_json(
                    await self.mqtt.next(self.status[device], 10))
                if status.state == state and problem in status.problem:
                    return status


@pytest.fixture
async def gas(clock: ManualClock) -> AsyncIterator[Fleet]:
    async with serve_fleet(port=0, meters=2, profile="pulse-counter-16", serial_base=33_000_000,
                           clock=clock) as running:
        running.inject(1, Rollover(steps=5))  # before the gateway's first reading
        yield running


@pytest.fixture
async def din(clock: ManualClock) -> AsyncIterator[Fleet]:
    async with serve_fleet(port=0, meters=1, profile="din-relay-meter", serial_base=34_000_000,
                           clock=clock) as running:
        yield running


@pytest.fixture
async def watch(make_settings: Callable[..., Settings], fleet: Fleet, gas: Fleet, din: Fleet,
                gateways: RunningGateways, probe: Probe) -> Watch:
    settings = make_settings()
    config = tcp_config((fleet, "eastron-sdm120"), (gas, "pulse-counter-16"),
                        (din, "din-relay-meter"), rate_factor=RATE_FACTOR, clock_drift_s=60)
    devices = ["tcp-1-1", "tcp-1-2", "tcp-1-3", "tcp-2-1", "tcp-2-2", "tcp-3-1"]
    mqtt = await probe(settings.topic(settings.gateway_id, "readings"),
                       *(settings.topic(settings.gateway_id, f"devices/{d}") for d in devices))
    await gateways.start(settings, config=config)
    watched = Watch(settings, mqtt, devices)
    for device in devices:
        await watched.device(device, "online")  # every meter reported once it answered
    return watched


async def test_a_meter_that_times_out_goes_offline_then_online_again(
    watch: Watch, fleet: Fleet,
) -> None:
    fleet.inject(2, Timeout(requests=3))
    status = await watch.device("tcp-1-2", "offline", "no answer in 0.5s")
    assert status.meter == str(fleet.serial(2)) and status.profile == "eastron-sdm120"
    await watch.device("tcp-1-2", "online")


async def test_an_exception_response_is_reported_with_its_code(watch: Watch,
                                                               fleet: Fleet) -> None:
    fleet.inject(3, ExceptionReply(requests=2))
    await watch.device("tcp-1-3", "offline", "exception 04 (server device failure)")
    await watch.device("tcp-1-3", "online")


async def test_garbage_once_is_read_again_and_not_published(watch: Watch, fleet: Fleet) -> None:
    meter = str(fleet.serial(1))
    before = await watch.sample(meter)
    fleet.inject(1, Garbage(requests=1))
    status = await watch.device("tcp-1-1", "online", "did not hold up when read again")
    assert "import_active_energy" in status.problem
    after = await watch.sample(meter)
    assert after.value == before.value and after.flags == ()  # the clock stands still


async def test_a_16_bit_counter_rolls_over(watch: Watch, gas: Fleet, clock: ManualClock) -> None:
    meter = str(gas.serial(1))
    top = await watch.sample(meter)
    assert top.value > Decimal("655.2")  # five pulses below the wrap
    clock.advance(60.0)  # ten simulated hours: far more than five pulses
    wrapped = await watch.sample(meter, ReadingFlag.ROLLOVER)
    assert wrapped.value < top.value and ReadingFlag.RESET not in wrapped.flags


async def test_a_power_loss_resets_the_volatile_counter(watch: Watch, gas: Fleet) -> None:
    meter = str(gas.serial(2))
    assert (await watch.sample(meter)).value > 0
    gas.inject(2, PowerLoss())
    reset = await watch.sample(meter, ReadingFlag.RESET)
    assert reset.value == 0
    await watch.device("tcp-2-2", "online", "volume reset")


async def test_an_implausible_jump_and_a_drifting_meter_clock(watch: Watch, din: Fleet) -> None:
    meter = str(din.serial(1))
    before = await watch.sample(meter)
    din.inject(1, Jump(amount=1_000_000))
    jumped = await watch.sample(meter, ReadingFlag.IMPLAUSIBLE_JUMP)
    assert jumped.value >= before.value + 1_000_000
    din.inject(1, ClockDrift(seconds=3_600))
    status = await watch.device("tcp-3-1", "online", "clock is 3600 s ahead")
    assert status.clock_offset_s is not None and 3_599 <= status.clock_offset_s <= 3_602


async def test_a_replaced_meter_is_reported_with_the_old_ones_closing_reading(
    watch: Watch, fleet: Fleet,
) -> None:
    old = str(fleet.serial(3))
    last = await watch.sample(old)
    fleet.inject(3, Replacement(serial=35_000_003, opening=0.5))
    async with asyncio.timeout(10):
        while not (batch := await watch.batch()).replacements:
            pass
    (replacement,) = batch.replacements
    assert (replacement.device, replacement.old_meter, replacement.new_meter) == (
        "tcp-1-3", old, "35000003")
    (closing,) = replacement.closing
    assert (closing.register, closing.value) == (last.register, last.value)
    new = [s for s in batch.samples if s.meter == "35000003"]
    assert len(new) == 1 and new[0].value == Decimal("0.5") and new[0].flags == ()
    assert old not in {s.meter for s in batch.samples}
    assert replacement.detected_at >= batch.polled_at >= datetime(2020, 1, 1, tzinfo=UTC)


async def test_a_meter_replaced_while_the_gateway_was_off_is_still_reported(
    make_settings: Callable[..., Settings], fleet: Fleet, gateways: RunningGateways,
    probe: Probe,
) -> None:
    settings = make_settings()
    config = tcp_config((fleet, "eastron-sdm120"))
    watch = Watch(settings, await probe(settings.topic(settings.gateway_id, "readings")), [])
    gateway = await gateways.start(settings, config=config)
    old = str(fleet.serial(2))
    last = await watch.sample(old)
    await gateways.stop(gateway)  # its memory keeps the serial and the last reading
    fleet.inject(2, Replacement(serial=35_000_102, opening=0.0))
    await gateways.start(settings, config=config)
    async with asyncio.timeout(10):
        while not (batch := await watch.batch()).replacements:
            pass
    (replacement,) = batch.replacements
    assert (replacement.old_meter, replacement.new_meter) == (old, "35000102")
    assert [c.value for c in replacement.closing] == [last.value]
