"""When poll cycles start: aligned on the period, or one period after the last."""

from __future__ import annotations

import asyncio
import time

from gateway.schedule import Schedule

# Sleeping never ends early, but a loaded machine may end it late: the tests bound a wait from
# below by what the schedule promises and from above only by far less than the alternative.
EARLY = 0.005  # the event loop's clock resolution


async def test_aligned_cycles_start_on_multiples_of_the_period() -> None:
    schedule = Schedule(0.25, align=True)
    for _ in range(3):
        before = time.time()
        await schedule.wait()
        assert time.time() >= schedule.next_after(before) - EARLY  # not before the multiple


async def test_unaligned_cycles_start_at_once_then_one_period_apart() -> None:
    schedule = Schedule(0.2, align=False)
    started = time.monotonic()
    await schedule.wait()
    first = time.monotonic()
    await schedule.wait()
    assert time.monotonic() - started >= 0.2 - EARLY
    assert first - started < 0.2  # the first cycle did not wait a period


async def test_a_new_period_takes_effect_at_once() -> None:
    schedule = Schedule(3600.0, align=True)  # the next one is up to an hour away
    waiting = asyncio.create_task(schedule.wait())
    await asyncio.sleep(0)  # lets it start waiting
    schedule.period = 0.1
    await asyncio.wait_for(waiting, 30.0)  # not the hour the old period had it wait


def test_every_15_minutes_on_the_quarter_hour() -> None:
    schedule = Schedule(900.0, align=True)
    assert schedule.next_after(1_764_331_234.5) == 1_764_332_100.0  # 12:00:34 -> 12:15:00 UTC
    assert schedule.next_after(1_764_332_100.0) == 1_764_333_000.0  # on it: the next one
