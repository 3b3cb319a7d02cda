"""When poll cycles start: every ``period`` seconds, aligned on the period's multiples of UTC
time (every 15 minutes on the quarter hour, every second on the second), or simply one period
after the last start. A cycle that overruns its period makes the next ones it overlapped be
skipped, not queued. A new period (a command) takes effect at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

log = logging.getLogger("meterline.gateway")


class Schedule:
    def __init__(self, period: float, *, align: bool,
                 wall: Callable[[], float] = time.time) -> None:
        self.align = align
        self._period = period
        self._wall = wall
        self._changed = asyncio.Event()
        self._due: float | None = None  # wall time of the next cycle

    @property
    def period(self) -> float:
        return self._period

    @period.setter
    def period(self, seconds: float) -> None:
        self._period = seconds
        self._due = None
        self._changed.set()

    def next_after(self, now: float) -> float:
        """When the cycle after instant ``now`` (UNIX time) is due."""
        if self.align:
            return (math.floor(now / self._period) + 1) * self._period
        return now + self._period

    async def wait(self) -> None:
        """Sleep until the next cycle is due (at once, the first time when not aligned)."""
        now = self._wall()
        if self._due is None:
            self._due = self.next_after(now) if self.align else now
        elif now > self._due + self._period:
            missed = math.floor((now - self._due) / self._period)
            log.warning("poll cycle took longer than %gs: %d cycle(s) skipped", self._period,
                        missed)
            self._due += missed * self._period
        delay = self._due - now
        self._changed.clear()
        if delay > 0:
            # a schedule, not a synchronisation: woken early only by a new period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)
            if self._changed.is_set():
                return await self.wait()
        self._due = self.next_after(self._due) if self.align else self._due + self._period
