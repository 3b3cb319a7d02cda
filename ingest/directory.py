"""The meters the platform knows: serial -> account, provider, utility, gateway, registers.

Loaded from PostgreSQL and reloaded when an unknown serial shows up (a meter registered after
the bridge started) or a meter comes from another gateway than the one it is known behind
(moved since), at most once per ``refresh_after`` seconds. A meter a gateway reported as
another's replacement is ``learn``ed at once, and kept across reloads until the database knows
it (rating registers it when it takes the replacement).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

_METERS = """
SELECT m.id, m.account_id, m.provider_id, m.utility, m.gateway_id,
       coalesce(jsonb_object_agg(r.code, r.unit) FILTER (WHERE r.code IS NOT NULL), '{}')
  FROM meters m LEFT JOIN registers r ON r.meter_id = m.id
 GROUP BY m.id
"""


@dataclass(frozen=True, slots=True)
class KnownMeter:
    id: str
    account: str
    provider: str
    utility: str
    gateway: str | None  # None: read by people
    registers: dict[str, str]  # register code -> unit


class MeterDirectory:
    def __init__(self, refresh_after: float = 5.0) -> None:
        self.refresh_after = refresh_after
        self._meters: dict[str, KnownMeter] = {}
        self._learned: dict[str, KnownMeter] = {}
        self._loaded_at = float("-inf")

    async def load(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute(_METERS)
        self._meters = {row[0]: KnownMeter(*row) for row in await cur.fetchall()}
        self._learned = {k: m for k, m in self._learned.items() if k not in self._meters}
        self._meters.update(self._learned)
        self._loaded_at = time.monotonic()

    def learn(self, meters: Iterable[KnownMeter]) -> None:
        """Meters known from a gateway's report before the database has them."""
        for meter in meters:
            self._learned[meter.id] = meter
            self._meters[meter.id] = meter

    async def resolve(
        self, conn: psycopg.AsyncConnection[Any], reports: set[tuple[str, str]]
    ) -> dict[str, KnownMeter]:
        """The known meters among the reported (serial, gateway) pairs, reloading once if
        some serial is unknown or known behind another gateway."""
        known = self._meters
        found: dict[str, KnownMeter] = {}
        stale = False
        for serial, gateway in reports:
            meter = known.get(serial)
            if meter is None:
                stale = True
                continue
            stale = stale or meter.gateway != gateway
            found[serial] = meter
        if stale and time.monotonic() - self._loaded_at > self.refresh_after:
            await self.load(conn)
            return {s: self._meters[s] for s, _ in reports if s in self._meters}
        return found
