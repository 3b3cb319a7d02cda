"""Simulated time: load profiles run ``speedup`` times faster than real time, from an epoch."""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """``now()`` is simulated UNIX time in seconds: ``epoch + elapsed * speedup``, where
    ``elapsed`` is measured on ``source`` (``time.monotonic`` unless a test drives it).
    ``wall()`` is real UNIX time (what a meter's own clock shows) and ``monotonic()`` the
    source itself (what fault durations are measured on)."""

    def __init__(
        self,
        speedup: float,
        *,
        source: Callable[[], float] = time.monotonic,
        epoch: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not speedup > 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        self.speedup = speedup
        self.epoch = time.time() if epoch is None else epoch
        self._source = source
        self._wall = wall
        self._start = source()

    def now(self) -> float:
        return self.epoch + (self._source() - self._start) * self.speedup

    def at(self, real_seconds_from_now: float) -> float:
        """The simulated instant ``real_seconds_from_now`` real seconds ahead."""
        return self.now() + real_seconds_from_now * self.speedup

    def wall(self) -> float:
        return self._wall()

    def monotonic(self) -> float:
        return self._source()
