"""Moments as exact integer microseconds since the Unix epoch (UTC), the way the pure numpy
cores (rating, pricing) carry time: no float on the way in or out."""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = 1_000_000


def micros(moment: datetime) -> int:
    """A moment as exact integer microseconds since the epoch."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds


def from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value // SECOND, UTC).replace(microsecond=value % SECOND)
