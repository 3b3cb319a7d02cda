"""What simulator and gateway tests share: a clock the test drives, the fleet they start,
and float32 decoding done independently of the gateway's own."""

from __future__ import annotations

import struct
from collections.abc import Sequence

SERIAL_BASE = 41_000_000
METERS = 4
SPEEDUP = 600.0


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def float32(registers: Sequence[int]) -> float:
    """Two big-endian registers, high word first, as an IEEE-754 float32."""
    value: float = struct.unpack(">f", struct.pack(">HH", *registers))[0]
    return value
