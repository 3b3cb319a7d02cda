"""Dead letters: input a service could not take, kept with the reason instead of dropped.

Idempotent like everything else: the same input refused for the same reason (a redelivered
MQTT batch, a Kafka record read twice) is stored once (unique fingerprint).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import psycopg

from meterline.metrics import count_dead_letters

Source = Literal["mqtt", "rating"]

_INSERT = """
INSERT INTO dead_letters (source, reason, payload) VALUES (%s, %s, %s)
ON CONFLICT (fingerprint) DO NOTHING
"""


async def dead_letter(
    cur: psycopg.AsyncCursor[Any], source: Source, refused: Sequence[tuple[str, str]]
) -> None:
    """Store ``(reason, payload)`` pairs refused by ``source``, inside the caller's transaction.
    Counted in ``meterline_dead_letters_total`` as they are written (a transaction retried
    counts them again)."""
    if refused:
        count_dead_letters(source, (reason for reason, _ in refused))
        await cur.executemany(_INSERT, [(source, reason, payload) for reason, payload in refused])
