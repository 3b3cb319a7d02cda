"""The same pricing as ``pricing``, written plainly: one reading and one interval at a time,
with dates, dictionaries and Decimal.

It is not fast, and not meant to be: it is what a straightforward implementation looks like.
The tests use it as the oracle the vectorised pricing must agree with, line for line, and the
benchmark measures the vectorised core against it in the same run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from meterline.instants import from_micros
from meterline.money import to_micro
from meterline.tariffs.model import ConsumerGroup, TariffPlan
from meterline.tariffs.pricing import Track, month_id
from meterline.tariffs.zones import day_template, local_instant, time_zone

Segment = tuple[int, int, ConsumerGroup, str, int]  # plan, version, group, zone, month


@dataclass(frozen=True)
class Line:
    interval: int
    start: int
    end: int
    quantity: int  # micro-units
    plan: int
    version: int
    group: ConsumerGroup
    zone: str
    band: int
    month: int
    unit_price: Decimal  # roubles per unit
    amount: Decimal  # roubles, exact


@dataclass(frozen=True)
class Priced:
    lines: list[Line]
    unpriced: list[int]


class ReferencePricer:
    def __init__(self, plans: Mapping[int, TariffPlan]) -> None:
        self.plans = plans

    def day(self, track: Track, day: date) -> list[tuple[int, Segment | None]]:
        """The (instant, what is in force from it) of one local day, from its midnight."""
        tz = time_zone(track.time_zone)
        step = track.step_on(day)
        plan = self.plans.get(step.plan) if step else None
        v = plan.version_on(day) if plan else None
        if step is None or plan is None or v is None:
            return [(local_instant(day, 0, tz), None)]
        version = plan.versions[v]
        return [(local_instant(day, minute, tz),
                 (step.plan, v, step.group, version.zones[zone].name, month_id(day)))
                for minute, zone in day_template(version.zones)]

    def _boundaries(self, track: Track, start: int, end: int) -> list[
            tuple[int, Segment | None]]:
        """Every (instant, what is in force from it) of the local days the interval touches."""
        tz = time_zone(track.time_zone)
        day = from_micros(start).astimezone(tz).date()
        last = from_micros(end).astimezone(tz).date()
        found: list[tuple[int, Segment | None]] = []
        while day <= last:
            found += self.day(track, day)
            day += timedelta(days=1)
        return found

    def price_interval(self, number: int, track: Track, band_key: int, start: int, end: int,
                       quantity: int, used: dict[tuple[int, int], int]) -> list[Line] | None:
        """Lines of one interval, moving ``used`` on; None when a part has no tariff."""
        boundaries = self._boundaries(track, start, end)
        pieces = []
        for k, (at, what) in enumerate(boundaries):
            until = boundaries[k + 1][0] if k + 1 < len(boundaries) else end
            lo, hi = max(at, start), min(until, end)
            if hi <= lo:
                continue
            share = (quantity * (hi - start) // (end - start)
                     - quantity * (lo - start) // (end - start))
            if share == 0:
                continue
            if what is None:
                return None
            pieces.append((lo, hi, share, what))
        lines = []
        for lo, hi, share, (plan_key, v, group, zone, month) in pieces:
            version = self.plans[plan_key].versions[v]
            limits = [to_micro(x) for x in version.band_limits(track.residents)]
            volume = used.get((band_key, month), 0)
            left = share
            band = sum(1 for limit in limits if volume >= limit)
            while left > 0:
                room = limits[band] - volume if band < len(limits) else left
                take = min(left, room)
                if take > 0:
                    price = version.price(version.zones.index(
                        next(z for z in version.zones if z.name == zone)), band, group)
                    lines.append(Line(number, lo, hi, take, plan_key, v, group, zone, band,
                                      month, price, Decimal(take).scaleb(-6) * price))
                    volume += take
                    left -= take
                band += 1
            used[(band_key, month)] = volume
        return lines


def rate_readings(
    pricer: ReferencePricer,
    readings: Iterable[tuple[int, int, int]],
    track_of: Mapping[int, tuple[Track, int]],
    used: dict[tuple[int, int], int] | None = None,
    last: dict[int, tuple[int, int]] | None = None,
) -> Priced:
    """Straightforward per-reading rating: ``readings`` are (series, ts, value) in arrival
    order; each series' first reading is its baseline (unless ``last`` holds the (ts, value)
    it was last priced at), a later one closes an interval priced on the spot. ``track_of``
    gives each series its track and band key; ``used`` and ``last`` move on."""
    last = {} if last is None else last
    used = {} if used is None else used
    lines: list[Line] = []
    unpriced: list[int] = []
    for number, (series, ts, value) in enumerate(readings):
        before = last.get(series)
        if before is not None and ts <= before[0]:
            continue
        if before is not None and value < before[1]:
            continue
        last[series] = (ts, value)
        if before is None or value == before[1]:
            continue
        track, band_key = track_of[series]
        priced = pricer.price_interval(number, track, band_key, before[0], ts,
                                       value - before[1], used)
        if priced is None:
            unpriced.append(number)
        else:
            lines += priced
    return Priced(lines, unpriced)
