"""Simulated time: the wall clock at start, running ``speedup`` times faster."""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """``now()`` is simulated UNIX time in seconds: ``epoch + elapsed * speedup``, where
    ``elapsed`` is measured on ``source`` (``time.monotonic`` unless a test drives it)."""

    def __init__(
        self,
        speedup: float,
        *,
        source: Callable[[], float] = time.monotonic,
        epoch: float | None = None,
    ) -> None:
        if not speedup > 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        self.speedup = speedup
        self.epoch = time.time() if epoch is None else epoch
        self._source = source
        self._start = source()

    def now(self) -> float:
        return self.epoch + (self._source() - self._start) * self.speedup
