"""Meter replacements in rating: the old meter charged up to its closing readings, the new one
opened, in the transaction of the batch that reports it (or of an operator's command).

``reported`` turns a gateway's ``MeterReplacement`` into the kernel's ``Replacement``;
``apply_replacements`` records each (``meterline.replacements.replace_meter``) and returns the
old meters' closing readings as readings to price with the batch; ``register_replacement`` is
an operator's replacement, priced and committed on its own (``meterline meters replace``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import psycopg

from meterline.contracts import MeterReplacement
from meterline.errors import DomainError
from meterline.instants import micros
from meterline.money import to_micro
from meterline.replacements import RegisterReading, Replaced, Replacement, replace_meter
from rating.pricing import RoutedReadings


def reported(replacement: MeterReplacement) -> Replacement:
    """A replacement a gateway reported: the new meter took over when it was detected."""
    return Replacement(
        old_meter=replacement.old_meter, new_meter=replacement.new_meter,
        at=replacement.detected_at, source="gateway", profile=replacement.profile,
        closing=tuple(RegisterReading(c.register.value, c.value, c.ts)
                      for c in replacement.closing),
        reason=f"another meter answered at device {replacement.device}")


def closing_readings(done: Sequence[tuple[Replaced, Replacement]]) -> RoutedReadings:
    """The old meters' closing readings, as a batch of the old meters' accounts."""
    rows = [(replaced, r) for replaced, replacement in done for r in replacement.closing]
    return RoutedReadings(
        account=[d.account_id for d, _ in rows], meter=[d.old_meter for d, _ in rows],
        register=[r.register for _, r in rows], unit=[d.units[r.register] for d, r in rows],
        provider=[d.provider_id for d, _ in rows], utility=[d.utility for d, _ in rows],
        ts=np.array([micros(r.ts) for _, r in rows], dtype=np.int64),
        value=np.array([to_micro(r.value) for _, r in rows], dtype=np.int64),
    )


async def apply_replacements(
    conn: psycopg.AsyncConnection[Any], replacements: Sequence[Replacement],
    dead: list[tuple[str, str]],
) -> tuple[list[Replaced], RoutedReadings]:
    """Record the replacements in the caller's transaction (each in a savepoint); what was
    recorded, and the old meters' closing readings to price (those of a replacement recorded
    before too: pricing them again charges nothing). One that cannot be recorded (an unknown
    meter, a serial in use, another replacement of the same meter) is dead-lettered in
    ``dead`` with the reason."""
    done: list[tuple[Replaced, Replacement]] = []
    for replacement in replacements:
        try:
            async with conn.transaction():
                done.append((await replace_meter(conn, replacement), replacement))
        except DomainError as exc:
            dead.append((f"meter replacement refused: {exc}", _json(replacement)))
    return [d for d, _ in done], closing_readings(done)


def _json(replacement: Replacement) -> str:
    return json.dumps(asdict(replacement), default=str)
