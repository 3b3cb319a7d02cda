"""The bill lines that one price does not cover, priced part by part with the tariff books'
own pricing (``meterline.tariffs.pricing``, the pure core rating prices gateway meters with).

A line's plan may have time-of-use zones, monthly volume bands or a social norm, or a
version (or the account's choice of plan) may take effect within the month. The line's
quantity is then consumption over the month, from midnight of its first day to midnight of
the next month's in the account's time zone, as if used at a steady rate: split by time at
every zone and version boundary, then into the month's bands from nothing (a service the
bill run prices has no metered volume that month), each part at its zone, band and consumer
group's price. Each part is rounded to kopecks, and the line's charge is the sum of its
parts, so a document's sub-lines add up. A recalculation's volume is priced the same way on
its own (a credit as the price of its volume, negative).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import psycopg

from meterline.errors import Invalid
from meterline.instants import micros
from meterline.money import from_micro, from_pico, to_micro
from meterline.tariffs.pricing import Track, Usage
from meterline.tariffs.tracks import Tariffs, load_tariffs, load_tracks
from meterline.tariffs.zones import time_zone

_KOPECK = Decimal("0.01")

_TO_PRICE = """
SELECT n.account_id, n.provider_id, n.service, n.common, n.volume, n.recalculated
  FROM new_lines n WHERE n.charged IS NULL AND NOT n.rated
 ORDER BY n.account_id, n.service, n.common
"""

_PRICED = """
UPDATE new_lines n
   SET charged = p.charged, recalculation = p.recalculation, tariff = p.tariff,
       parts = p.parts
  FROM unnest(%s::text[], %s::text[], %s::boolean[], %s::numeric[], %s::numeric[],
              %s::numeric[], %s::jsonb[])
       AS p(account_id, service, common, charged, recalculation, tariff, parts)
 WHERE (n.account_id, n.service, n.common) = (p.account_id, p.service, p.common)
   AND NOT n.rated
"""


@dataclass(frozen=True)
class Part:
    zone: str
    band: int
    volume: Decimal
    tariff: Decimal
    charged: Decimal  # kopecks

    def as_json(self) -> dict[str, Any]:
        return {"zone": self.zone, "band": self.band, "volume": _plain(self.volume),
                "tariff": _plain(self.tariff), "charged": str(self.charged)}


def _plain(value: Decimal) -> str:
    """``100.000000`` -> ``100``, ``34.200000`` -> ``34.2``."""
    return f"{value.normalize():f}"


def _midnight(day: date, zone: str) -> int:
    return micros(datetime.combine(day, time(), tzinfo=time_zone(zone)))


def price_parts(tariffs: Tariffs, tracks: Sequence[Track], quantities: Sequence[Decimal],
                period: date, next_period: date) -> list[list[Part]]:
    """The parts of each quantity consumed over the period on its track, in time then band
    order, equal parts (zone, band, price) merged; ``Invalid`` when a part of the month has
    no price in force."""
    distinct = list(dict.fromkeys(tracks))
    index = {track: i for i, track in enumerate(distinct)}
    usage = Usage(
        tracks=distinct,
        track=np.array([index[t] for t in tracks], dtype=np.int64),
        band_key=np.arange(len(tracks), dtype=np.int64),
        start=np.array([_midnight(period, t.time_zone) for t in tracks], dtype=np.int64),
        end=np.array([_midnight(next_period, t.time_zone) for t in tracks], dtype=np.int64),
        quantity=np.array([to_micro(q) for q in quantities], dtype=np.int64),
    )
    charges = tariffs.set.price(usage)
    if len(charges.unpriced):
        raise Invalid(f"no price in force for all of {period:%Y-%m}: "
                      f"{len(charges.unpriced)} line(s) cannot be priced", code="no-price",
                      field=["period"])
    names = tariffs.set.zone_names(charges.rate, charges.zone).tolist()
    # per line: (zone order, band, price) -> [zone name, quantity, amount], first seen first
    merged: list[dict[tuple[int, int, int], list[Any]]] = [{} for _ in tracks]
    for line, zone, name, band, price, quantity, amount in zip(
            charges.interval.tolist(), charges.zone.tolist(), names, charges.band.tolist(),
            charges.unit_price.tolist(), charges.quantity.tolist(), list(charges.amount),
            strict=True):
        slot = merged[line].setdefault((zone, band, price), [name, 0, 0])
        slot[1] += quantity
        slot[2] += int(amount)
    return [[Part(name, band, from_micro(q), from_micro(price),
                  from_pico(a).quantize(_KOPECK, rounding=ROUND_HALF_UP))
             for (_, band, price), (name, q, a) in sorted(
                 parts.items(), key=lambda item: item[0][:2])]
            for parts in merged]


async def price_remaining_lines(conn: psycopg.AsyncConnection[Any], period: date,
                                next_period: date) -> int:
    """Price the chunk's lines (``new_lines``) one price does not cover; how many."""
    cur = await conn.execute(_TO_PRICE)
    rows = await cur.fetchall()
    if not rows:
        return 0
    found = await load_tracks(conn, [(a, p, s) for a, p, s, *_ in rows])
    missing = [f"{a} {s}" for (a, _, s, *_), t in zip(rows, found, strict=True) if t is None]
    if missing:
        raise Invalid(f"no plan for {', '.join(missing[:5])}", code="no-price", field=["period"])
    tracks = [t for t in found if t is not None]
    tariffs = await load_tariffs(conn)
    volumes = price_parts(tariffs, tracks, [r[4] for r in rows], period, next_period)
    recalculated = price_parts(tariffs, tracks, [abs(r[5]) for r in rows], period, next_period)
    charged, recalculation, tariff, parts = [], [], [], []
    for row, own, again in zip(rows, volumes, recalculated, strict=True):
        charged.append(sum((p.charged for p in own), Decimal("0.00")))
        sign = -1 if row[5] < 0 else 1
        recalculation.append(sign * sum((p.charged for p in again), Decimal("0.00")))
        prices = {p.tariff for p in own}
        tariff.append(prices.pop() if len(prices) == 1 else None)
        parts.append(json.dumps([p.as_json() for p in own]))
    await conn.execute(_PRICED, ([r[0] for r in rows], [r[2] for r in rows],
                                 [r[3] for r in rows], charged, recalculation, tariff, parts))
    return len(rows)
