"""Writing what the bridge takes in: readings (and their partitions) and forwarded batches.

Readings go through binary COPY into a staging table, then one idempotent INSERT on the
natural key (meter, register, ts): a batch delivered twice stores each reading once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from meterline.contracts import Sample
from meterline.db import copy_rows

log = logging.getLogger("meterline.ingest")

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS readings_in (
    meter_id text, register text, ts timestamptz, value numeric, gateway_id text
) ON COMMIT DELETE ROWS
"""

_STORE = """
INSERT INTO readings (meter_id, register, ts, value, gateway_id)
SELECT meter_id, register, ts, value, gateway_id FROM readings_in
ON CONFLICT (meter_id, register, ts) DO NOTHING
"""


_PARTITIONS = "SELECT ensure_readings_partitions(0, %s)"
PARTITION_CHECK_EVERY = 12 * 3600.0  # seconds
MONTHS_AHEAD = 3

_SEEN = """
SELECT b.gateway_id, b.seq
  FROM ingest_batches b
  JOIN unnest(%s::text[], %s::bigint[]) AS k(gateway_id, seq)
    ON b.gateway_id = k.gateway_id AND b.seq = k.seq
"""
_FORWARDED = """
INSERT INTO ingest_batches (gateway_id, seq, samples)
SELECT * FROM unnest(%s::text[], %s::bigint[], %s::integer[])
ON CONFLICT DO NOTHING
"""


async def store_readings(
    cur: psycopg.AsyncCursor[Any], samples: Sequence[tuple[str, Sample]]
) -> None:
    """Store (gateway, sample) pairs; a reading already stored is left as it is."""
    if not samples:
        return
    await cur.execute(_STAGING)
    await copy_rows(
        cur, "readings_in",
        ("meter_id", "register", "ts", "value", "gateway_id"),
        ("text", "text", "timestamptz", "numeric", "text"),
        ((s.meter, s.register.value, s.ts, s.value, gateway) for gateway, s in samples),
    )
    await cur.execute(_STORE)


async def forwarded_before(
    cur: psycopg.AsyncCursor[Any], batches: Sequence[tuple[str, int]]
) -> set[tuple[str, int]]:
    """Which of these (gateway, seq) batches were forwarded already."""
    await cur.execute(_SEEN, ([g for g, _ in batches], [s for _, s in batches]))
    return {(gateway, seq) for gateway, seq in await cur.fetchall()}


async def mark_forwarded(
    cur: psycopg.AsyncCursor[Any], batches: Sequence[tuple[str, int, int]]
) -> None:
    """Record (gateway, seq, samples) batches as forwarded."""
    await cur.execute(_FORWARDED, tuple(map(list, zip(*batches, strict=True))))


async def keep_partitions_ahead(database_url: str) -> None:
    """Make sure the readings table has partitions for the coming months, now and twice a
    day, until cancelled (a no-op on TimescaleDB, which makes its chunks itself)."""
    while True:
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, application_name="meterline-partitions"
        ) as conn:
            cur = await conn.execute(_PARTITIONS, (MONTHS_AHEAD,))
            row = await cur.fetchone()
            if row and row[0]:
                log.info("created %d readings partition(s) ahead", row[0])
        await asyncio.sleep(PARTITION_CHECK_EVERY)  # a schedule, not a synchronisation
