"""When poll cycles start: aligned on the period, or one period after the last."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.schedule import Schedule


async def test_aligned_cycles_start_on_multiples_of_the_period() -> None:
    schedule = Schedule(0.25, align=True)
    for _ in range(3):
        await schedule.wait()
        phase = time.time() % 0.25
        assert min(phase, 0.25 - phase) < 0.05  # on the quarter second, give or take


async def test_unaligned_cycles_start_at_once_then_one_period_apart() -> None:
    schedule = Schedule(0.2, align=False)
    started = time.monotonic()
    await schedule.wait()
    assert time.monotonic() - started < 0.05
    await schedule.wait()
    assert time.monotonic() - started == pytest.approx(0.2, abs=0.05)


async def test_a_new_period_takes_effect_at_once() -> None:
    schedule = Schedule(3600.0, align=True)  # the next one is up to an hour away
    waiting = asyncio.create_task(schedule.wait())
    await asyncio.sleep(0)  # lets it start waiting
    started = time.monotonic()
    schedule.period = 0.1
    await asyncio.wait_for(waiting, 1.0)
    assert time.monotonic() - started < 0.15


def test_every_15_minutes_on_the_quarter_hour() -> None:
    schedule = Schedule(900.0, align=True)
    assert schedule.next_after(1_764_331_234.5) == 1_764_332_100.0  # 12:00:34 -> 12:15:00 UTC
    assert schedule.next_after(1_764_332_100.0) == 1_764_333_000.0  # on it: the next one
