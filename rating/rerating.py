"""Late readings: an interval priced before that a late reading falls inside is re-rated by
reversal and repost, never by editing a line.

``rerate_late`` finds, for the batch's late readings (``rating.core`` reports them), the
reading interval each falls inside (``charges.reading_end``: the lines of one interval share
it) and its live lines (those no later revision of their key reversed), with the register's
value at its end (``charges.end_value``); ``rating.pricing.late_pieces`` prices the pieces the
late readings cut it into; ``reversals`` mirrors the live lines at the odd revision after
theirs. Booked with the batch's other lines, in its entry: the reversal credits what was
charged, the pieces charge it again. A period already closed receives neither: the periods of
the lines are computed as for any line, so both go to the first open period, where they book
the correction. A late reading delivered again finds no interval around it (it ends one now),
so nothing is re-rated twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from meterline.money import to_micro
from rating.core import micros
from rating.pricing import BatchTariffs, ChargeLines, Reopened, RoutedReadings, late_pieces

I64 = npt.NDArray[np.int64]

# Per late reading, the reading interval it falls strictly inside (the one with the earliest
# end after it whose live lines start before it), and all its live lines. A line is live when
# no line of its key has a later revision (a reversal is the odd revision after the line's).
_LIVE = """
WITH late AS (
    SELECT l.i, l.meter_id, l.register, l.account_id, timestamptz_of_micros(l.ts_us) AS ts
      FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::bigint[])
           AS l(i, meter_id, register, account_id, ts_us)
), live AS (
    SELECT c.* FROM charges c
     WHERE (c.meter_id, c.register) IN (SELECT meter_id, register FROM late)
       AND c.revision %% 2 = 0 AND c.reading_end IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM charges x
                        WHERE x.meter_id = c.meter_id AND x.register = c.register
                          AND x.interval_end = c.interval_end AND x.part = c.part
                          AND x.revision > c.revision)
), around AS (
    SELECT DISTINCT ON (l.i) l.i, l.meter_id, l.register, c.reading_end
      FROM late l
      JOIN live c ON c.meter_id = l.meter_id AND c.register = l.register
                 AND c.reading_end > l.ts AND c.interval_start < l.ts
                 AND c.account_id = l.account_id
     ORDER BY l.i, c.reading_end
)
SELECT a.i, c.interval_start, c.interval_end, c.reading_end, c.revision, c.end_value, c.part,
       c.quantity, c.tariff_version_id, c.zone, c.band, c.consumer_group, c.unit_price,
       c.amount
  FROM around a
  JOIN live c ON c.meter_id = a.meter_id AND c.register = a.register
             AND c.reading_end = a.reading_end
 ORDER BY a.i, c.interval_end, c.part
"""


@dataclass(frozen=True)
class LiveLine:
    interval: int  # index into the reopened intervals
    reading: int  # a late reading inside it (batch index)
    start: int
    end: int
    part: str
    quantity: int
    version_id: int
    zone: str
    band: int
    group: str
    unit_price: int
    amount: int  # pico-roubles
    revision: int
    end_value: int
    reading_end: int


async def rerate_late(conn: psycopg.AsyncConnection[Any], batch: RoutedReadings, late: I64,
                      tariffs: BatchTariffs, dead: list[tuple[str, int]]) -> ChargeLines:
    """The lines that re-rate the intervals the ``late`` readings fall inside (reversals and
    reposted pieces); late readings that fall inside no live interval re-rate nothing (they
    are stored, and an interval that starts or ends at them was rated already)."""
    if not len(late):
        return ChargeLines.concat([], batch)
    at = late.tolist()
    cur = await conn.execute(_LIVE, (
        list(range(len(at))), [batch.meter[i] for i in at], [batch.register[i] for i in at],
        [batch.account[i] for i in at], batch.ts[late].tolist()))
    rows = await cur.fetchall()
    if not rows:
        return ChargeLines.concat([], batch)
    intervals: dict[tuple[str, str, int], int] = {}
    inside: dict[int, int] = {}  # late position -> interval
    lines: list[LiveLine] = []
    seen: set[tuple[int, int, str]] = set()
    for k, start, end, reading_end, revision, end_value, part, quantity, version, zone, band, \
            group, unit_price, amount in rows:
        i = at[k]
        j = intervals.setdefault((batch.meter[i], batch.register[i], micros(reading_end)),
                                 len(intervals))
        inside[k] = j
        if (j, micros(end), part) not in seen:
            seen.add((j, micros(end), part))
            lines.append(LiveLine(j, i, micros(start), micros(end), part, to_micro(quantity),
                                  version, zone, band, group, to_micro(unit_price),
                                  int(amount.scaleb(12)), revision, to_micro(end_value),
                                  micros(reading_end)))
    count = len(intervals)
    reopened = Reopened(start=np.full(count, np.iinfo(np.int64).max, np.int64),
                        end=np.zeros(count, np.int64), end_value=np.zeros(count, np.int64),
                        quantity=np.zeros(count, np.int64))
    for line in lines:
        j = line.interval
        reopened.start[j] = min(reopened.start[j], line.start)
        reopened.end[j] = line.reading_end
        reopened.end_value[j] = line.end_value
        reopened.quantity[j] += line.quantity
    positions = sorted(inside)
    pieces = late_pieces(batch, np.array([at[k] for k in positions], dtype=np.int64),
                         np.array([inside[k] for k in positions], dtype=np.int64), reopened,
                         tariffs)
    dead += pieces.dead
    rerated = set(pieces.rerated.tolist())
    return ChargeLines.concat([reversals([x for x in lines if x.interval in rerated]),
                               pieces.lines], batch)


def reversals(lines: list[LiveLine]) -> ChargeLines:
    """The mirror of live lines, at the revision after theirs."""
    def ints(values: list[int]) -> I64:
        return np.array(values, dtype=np.int64)

    return ChargeLines(
        reading=ints([x.reading for x in lines]), start=ints([x.start for x in lines]),
        end=ints([x.end for x in lines]), part=[x.part for x in lines],
        quantity=ints([-x.quantity for x in lines]),
        version_id=ints([x.version_id for x in lines]), zone=[x.zone for x in lines],
        band=ints([x.band for x in lines]), group=[x.group for x in lines],
        unit_price=ints([x.unit_price for x in lines]), amount=[-x.amount for x in lines],
        revision=ints([x.revision + 1 for x in lines]),
        end_value=ints([x.end_value for x in lines]),
        reading_end=ints([x.reading_end for x in lines]))
