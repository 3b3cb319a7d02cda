"""Writing what the bridge takes in: readings and forwarded batches; and the upkeep of the
telemetry store the bridge runs in the background.

Readings are stored by the kernel's readings writer (`meterline.telemetry.write_readings`:
binary COPY into staging, one idempotent merge on (meter, register, ts)): a batch delivered
twice stores each reading once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from meterline.contracts import Sample
from meterline.instants import micros
from meterline.telemetry import (
    ReadingColumns,
    maintain_readings,
    micro_units,
    refresh_rollups,
    write_readings,
)

log = logging.getLogger("meterline.ingest")

MAINTAIN_EVERY = 12 * 3600.0  # seconds between partition upkeep and retention
REFRESH_EVERY = 60.0  # seconds between rollup refreshes (plain PostgreSQL)
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
    await write_readings(cur.connection, ReadingColumns(
        meter=[s.meter for _, s in samples],
        register=[s.register.value for _, s in samples],
        ts=np.fromiter((micros(s.ts) for _, s in samples), np.int64, len(samples)),
        value=np.fromiter((micro_units(s.value) for _, s in samples), np.int64, len(samples)),
        gateway=[gateway for gateway, _ in samples],
    ))


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


async def keep_telemetry_store(database_url: str) -> None:
    """Until cancelled: on plain PostgreSQL, refresh the rollups every REFRESH_EVERY seconds,
    and keep readings partitions MONTHS_AHEAD months ahead and drop the ones past retention
    now and every MAINTAIN_EVERY seconds (on TimescaleDB its own jobs do both: the calls
    return at once). Several bridges may run it: one refresh runs at a time."""
    maintained = -MAINTAIN_EVERY
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, application_name="meterline-telemetry-upkeep"
    ) as conn:
        while True:
            now = asyncio.get_running_loop().time()
            if now - maintained >= MAINTAIN_EVERY:
                changed = await maintain_readings(conn, MONTHS_AHEAD)
                if changed:
                    log.info("readings partitions: %d created or dropped", changed)
                maintained = now
            await refresh_rollups(conn)
            await asyncio.sleep(REFRESH_EVERY)  # a schedule, not a synchronisation
