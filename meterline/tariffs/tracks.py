"""What pricing needs to know of accounts, from the database: each (account, provider,
service)'s tariff track (time zone, plans over time, consumer group, registered residents)
and the volume already priced in its months (its bands' starting point).

Shared by rating (metered consumption, per batch) and the bill run (meters read by people):
both price through ``meterline.tariffs.pricing`` with what these functions return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from meterline.money import to_micro
from meterline.tariffs.model import ConsumerGroup
from meterline.tariffs.pricing import BandState, PlanStep, TariffSet, Track, month_id, month_start
from meterline.tariffs.store import StoredPlan, read_plans

Key = tuple[str, str, str]  # account, provider, service


@dataclass(frozen=True)
class Tariffs:
    """Every stored plan compiled for pricing (plans keyed by their id), and the stored id of
    each rate's version."""

    plans: dict[int, StoredPlan]
    set: TariffSet
    version_ids: npt.NDArray[np.int64]  # per rate of ``set``
    banded: frozenset[int]  # plans with a version of bands or a social norm

    @classmethod
    def of(cls, plans: Sequence[StoredPlan]) -> Tariffs:
        by_id = {s.id: s for s in plans}
        compiled = TariffSet({s.id: s.plan for s in plans})
        ids = np.array([by_id[r.plan].version_ids[r.version] for r in compiled.rates],
                       dtype=np.int64)
        banded = frozenset(s.id for s in plans
                           if any(v.band_count > 1 for v in s.plan.versions))
        return cls(plans=by_id, set=compiled, version_ids=ids, banded=banded)

    def needs_volume(self, track: Track | None) -> bool:
        """Whether pricing on ``track`` starts from the month's volume: one of its plans has
        bands (a flat or zoned price does not depend on what the month used before)."""
        return track is not None and any(step.plan in self.banded for step in track.steps)


async def load_tariffs(conn: psycopg.AsyncConnection[Any]) -> Tariffs:
    return Tariffs.of(await read_plans(conn))


_TRACKS = """
WITH k AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY
           AS k(account_id, provider_id, service, n)
), chosen AS (
    SELECT c.account_id, c.provider_id, c.service,
           array_agg(c.valid_from ORDER BY c.valid_from) AS days,
           array_agg(c.plan_id ORDER BY c.valid_from) AS plans,
           array_agg(c.consumer_group ORDER BY c.valid_from) AS groups
      FROM account_plans c
     WHERE c.account_id IN (SELECT account_id FROM k)
     GROUP BY 1, 2, 3
)
SELECT k.n, ad.time_zone, a.residents, d.id, c.days, c.plans, c.groups
  FROM k
  JOIN accounts a ON a.id = k.account_id
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN tariff_plans d
         ON d.provider_id = k.provider_id AND d.service = k.service AND d.is_default
  LEFT JOIN chosen c
         ON (c.account_id, c.provider_id, c.service) = (k.account_id, k.provider_id, k.service)
"""


async def load_tracks(conn: psycopg.AsyncConnection[Any],
                      keys: Sequence[Key]) -> list[Track | None]:
    """The track of each (account, provider, service): the provider's default plan until the
    account's first choice, then each choice from its first day. None where the account is
    unknown or neither a default nor a choice gives it a plan. Keys with the same timeline
    share one Track object (most accounts of a town have the same: built once)."""
    cur = await conn.execute(_TRACKS, ([k[0] for k in keys], [k[1] for k in keys],
                                       [k[2] for k in keys]))
    tracks: list[Track | None] = [None] * len(keys)
    built: dict[tuple[Any, ...], Track | None] = {}
    for n, zone, residents, default, days, plans, groups in await cur.fetchall():
        shape = (zone, residents, default, days and tuple(days), plans and tuple(plans),
                 groups and tuple(groups))
        if shape not in built:
            built[shape] = _track(zone, residents, default, days, plans, groups)
        tracks[n - 1] = built[shape]
    return tracks


def _track(zone: str, residents: int | None, default: int | None, days: list[date] | None,
           plans: list[int] | None, groups: list[str] | None) -> Track | None:
    steps: list[PlanStep] = []
    if default is not None:
        steps.append(PlanStep(None, default))
    steps += [PlanStep(day, plan, ConsumerGroup(group))
              for day, plan, group in zip(days or (), plans or (), groups or (), strict=True)]
    return Track(zone, tuple(steps), residents or None) if steps else None


_VOLUMES = """
SELECT k.n - 1, v.month, v.volume
  FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY
       AS k(account_id, provider_id, service, n)
  JOIN tariff_volumes v ON (v.account_id, v.provider_id, v.service)
                         = (k.account_id, k.provider_id, k.service)
 WHERE v.month >= %s
"""


async def load_volumes(conn: psycopg.AsyncConnection[Any], keys: Sequence[Key],
                       since: date, band_keys: Sequence[int] | None = None) -> BandState:
    """Volume already priced per key and month, from the month holding ``since``; each key's
    band key is its index in ``keys``, or its element of ``band_keys``."""
    if not keys:
        return BandState()
    cur = await conn.execute(_VOLUMES, ([k[0] for k in keys], [k[1] for k in keys],
                                        [k[2] for k in keys], month_start(month_id(since))))
    rows = await cur.fetchall()
    return BandState(
        key=np.array([r[0] if band_keys is None else band_keys[r[0]] for r in rows],
                     dtype=np.int64),
        month=np.array([month_id(r[1]) for r in rows], dtype=np.int64),
        volume=np.array([to_micro(r[2]) for r in rows], dtype=np.int64),
    )


_ADD_VOLUMES = """
INSERT INTO tariff_volumes AS t (account_id, provider_id, service, month, volume)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::date[], %s::numeric[])
ON CONFLICT (account_id, provider_id, service, month)
   DO UPDATE SET volume = t.volume + excluded.volume
"""


async def add_volumes(conn: psycopg.AsyncConnection[Any],
                      rows: Sequence[tuple[str, str, str, date, Decimal]]) -> None:
    """Count priced volume: (account, provider, service, month, quantity) added to what the
    month holds. Adding (not setting) keeps two writers of one account correct."""
    if rows:
        await conn.execute(_ADD_VOLUMES, tuple(list(col) for col in zip(*rows, strict=True)))
