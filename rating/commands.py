"""Rating's commands for operators: a meter replacement registered by hand
(``meterline meters replace``)."""

from __future__ import annotations

from typing import Any

import psycopg

from meterline.replacements import Replaced, Replacement, replace_meter
from rating.ledger import BatchResult, load_tariffs, rate_batch
from rating.replacements import closing_readings


async def register_replacement(conn: psycopg.AsyncConnection[Any],
                               replacement: Replacement) -> tuple[Replaced, BatchResult]:
    """Record an operator's replacement and charge the old meter up to its closing readings,
    in one transaction on ``conn`` (committed when it is not the caller's); ``NotFound``,
    ``Conflict`` or ``Invalid`` when it cannot be recorded (nothing is then changed)."""
    async with conn.transaction():
        replaced = await replace_meter(conn, replacement)
        result = await rate_batch(conn, closing_readings([(replaced, replacement)]),
                                  await load_tariffs(conn))
    return replaced, result
