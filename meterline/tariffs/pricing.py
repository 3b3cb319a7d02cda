"""Pricing consumption intervals: arrays in, charge lines out (pure, vectorised over a batch).

Consumption between two readings is known only as a total. When its interval crosses a zone,
month (bands start again each month) or tariff-version boundary, the total is split by time,
as if used at a steady rate: of an interval ``[s, e)`` with quantity ``Q``, the part before a
moment ``t`` is ``Q * (t - s) // T`` (integer micro-units, ``T = e - s``), so the parts always
add up to ``Q`` exactly and cutting an interval at more points changes nothing. Each part then
falls into monthly volume bands by the account's volume used so far that month, in time order;
one part may straddle a band limit and become two lines.

An account's **track** is its tariff timeline for one service: its time zone, the plans it
chose with the day each applies from, its consumer group, and its registered residents (for a
social norm). Boundaries are computed per track and month in the track's time zone (see
``zones``) and cached, so accounts sharing a track share the work.

Units: time in microseconds since the epoch (UTC), quantities in micro-units, prices in
micro-roubles per unit, amounts in pico-roubles (quantity x price, exact). No float is used
for any of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from meterline.instants import from_micros
from meterline.money import to_micro
from meterline.tariffs.model import Basis, ConsumerGroup, TariffPlan
from meterline.tariffs.zones import day_template, local_instant, time_zone

I64 = npt.NDArray[np.int64]
NO_RATE = -1
_MAX = np.iinfo(np.int64).max
_MONTH_BITS = 20  # band state keys: band_key << 20 | month


def _empty() -> I64:
    return np.empty(0, dtype=np.int64)


def month_id(day: date) -> int:
    """Months since year 0: 2026-03 -> 2026 * 12 + 2."""
    return day.year * 12 + day.month - 1


def month_start(month: int) -> date:
    return date(month // 12, month % 12 + 1, 1)


@dataclass(frozen=True)
class PlanStep:
    """From ``since`` (a local day; None: from the start) the account is on ``plan``."""

    since: date | None
    plan: int
    group: ConsumerGroup = ConsumerGroup.URBAN


@dataclass(frozen=True)
class Track:
    """The tariff timeline of one account's service. Hashable: accounts with equal tracks share
    the computed boundaries."""

    time_zone: str
    steps: tuple[PlanStep, ...]
    residents: int | None = None

    def step_on(self, day: date) -> PlanStep | None:
        found = None
        for step in self.steps:
            if step.since is None or step.since <= day:
                found = step
        return found


@dataclass(frozen=True)
class Rate:
    """One compiled price table: a plan version for a consumer group (and a social norm)."""

    plan: int
    version: int  # index into the plan's versions
    basis: Basis  # the plan's: what one unit of its prices is
    group: ConsumerGroup
    residents: int | None
    zones: tuple[str, ...]
    limits: tuple[int, ...]  # band upper limits, micro-units per month
    prices: tuple[tuple[int, ...], ...]  # micro-roubles per unit, [zone][band]


@dataclass(frozen=True)
class BandState:
    """Volume already priced per (band key, month): what the next line's bands start from."""

    key: I64 = field(default_factory=_empty)
    month: I64 = field(default_factory=_empty)
    volume: I64 = field(default_factory=_empty)


@dataclass(frozen=True)
class Usage:
    """Consumption intervals to price, one element per interval.

    ``band_key`` says whose monthly volume the interval's bands count against (an account's
    service: every meter of it adds to one volume); ``used`` is what was priced before."""

    tracks: Sequence[Track]
    track: I64
    band_key: I64
    start: I64
    end: I64
    quantity: I64
    used: BandState = field(default_factory=BandState)


@dataclass(frozen=True)
class Charges:
    """Charge lines. The lines of one interval are together, in time then band order, and
    ``part`` numbers them from 0, so (meter, register, interval end, part) keys a line."""

    interval: I64
    part: I64
    start: I64
    end: I64
    quantity: I64
    rate: I64  # index into TariffSet.rates
    zone: I64  # index into the rate's zones
    band: I64
    unit_price: I64  # micro-roubles per unit
    amount: npt.NDArray[Any]  # pico-roubles: int64, or Python ints where int64 would overflow
    month: I64
    unpriced: I64  # intervals with a part no tariff covers: not priced at all
    used: BandState  # volume per (band key, month) after these lines


@dataclass(frozen=True)
class _Schedule:
    """Boundaries of one track over some months: segment k covers [bp[k-1], bp[k]) (segment 0
    starts at minus infinity and has no rate) and has rate[k], zone[k], month[k]."""

    bp: I64
    rate: I64
    zone: I64
    month: I64


class TariffSet:
    """Plans compiled for pricing. ``plans`` maps a key chosen by the caller (the database id)
    to the plan; tracks name plans by that key."""

    def __init__(self, plans: Mapping[int, TariffPlan]) -> None:
        self.plans = dict(plans)
        self.rates: list[Rate] = []
        self._row: dict[tuple[int, int, ConsumerGroup, int | None], int] = {}
        for key, plan in self.plans.items():
            for v, version in enumerate(plan.versions):
                norms: Sequence[int | None] = (
                    range(1, len(version.social_norm) + 1) if version.social_norm else [None])
                for group in ConsumerGroup:
                    for residents in norms:
                        self._row[(key, v, group, residents)] = len(self.rates)
                        self.rates.append(Rate(
                            plan=key, version=v, basis=plan.basis, group=group,
                            residents=residents,
                            zones=tuple(z.name for z in version.zones),
                            limits=tuple(to_micro(x) for x in version.band_limits(residents)),
                            prices=tuple(
                                tuple(to_micro(version.price(z, b, group))
                                      for b in range(version.band_count))
                                for z in range(len(version.zones))),
                        ))
        # per rate, for callers labelling lines without a loop: basis, group, zone names
        self.rate_basis = np.array([r.basis.value for r in self.rates], dtype=object)
        self.rate_group = np.array([r.group.value for r in self.rates], dtype=object)
        zones_each = np.array([len(r.zones) for r in self.rates], dtype=np.int64)
        self._zone_offset = np.concatenate([[0], np.cumsum(zones_each)[:-1]]).astype(np.int64)
        self._zone_names = np.array([z for r in self.rates for z in r.zones], dtype=object)
        widest = max((len(r.limits) for r in self.rates), default=0)
        nbands = np.array([len(r.limits) + 1 for r in self.rates], dtype=np.int64)
        self._nbands = nbands
        sizes = np.array([len(r.zones) for r in self.rates], dtype=np.int64) * nbands
        self._offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._prices = np.array(
            [p for r in self.rates for row in r.prices for p in row], dtype=np.int64)
        # band bounds per rate: 0, limits..., padded with int64 max
        self._bounds = np.full((len(self.rates), widest + 2), _MAX, dtype=np.int64)
        self._bounds[:, 0] = 0
        for i, r in enumerate(self.rates):
            self._bounds[i, 1:len(r.limits) + 1] = r.limits
        self._months: dict[tuple[Track, int], tuple[list[int], list[int], list[int]]] = {}
        self._schedules: dict[tuple[Track, int, int], _Schedule] = {}

    # --- boundaries ---------------------------------------------------------------------
    def _rate_on(self, track: Track, day: date) -> tuple[int, tuple[tuple[int, int], ...]]:
        step = track.step_on(day)
        plan = self.plans.get(step.plan) if step else None
        v = plan.version_on(day) if plan else None
        if step is None or plan is None or v is None:
            return NO_RATE, ((0, 0),)
        version = plan.versions[v]
        residents = None
        if version.social_norm:
            residents = min(max(track.residents or 1, 1), len(version.social_norm))
        return self._row[(step.plan, v, step.group, residents)], day_template(version.zones)

    def _month(self, track: Track, month: int) -> tuple[list[int], list[int], list[int]]:
        """Boundaries of one local month: (instants, rates, zones); the first is the month's
        start, then every change of rate or zone."""
        cached = self._months.get((track, month))
        if cached is not None:
            return cached
        tz = time_zone(track.time_zone)
        day, end = month_start(month), month_start(month + 1)
        instants: list[int] = []
        rates: list[int] = []
        zones: list[int] = []
        while day < end:
            rate, template = self._rate_on(track, day)
            for minute, zone in template:
                if instants and rates[-1] == rate and zones[-1] == zone:
                    continue
                instants.append(local_instant(day, minute, tz))
                rates.append(rate)
                zones.append(zone)
            day += timedelta(days=1)
        if len(self._months) > 50_000:
            self._months.clear()
        self._months[(track, month)] = (instants, rates, zones)
        return instants, rates, zones

    def schedule(self, track: Track, lo: int, hi: int) -> _Schedule:
        """Boundaries of ``track`` covering the instants ``lo`` .. ``hi`` (microseconds)."""
        tz = time_zone(track.time_zone)
        first = month_id(from_micros(lo).astimezone(tz).date())
        last = month_id(from_micros(hi).astimezone(tz).date())
        cached = self._schedules.get((track, first, last))
        if cached is not None:
            return cached
        bp: list[int] = []
        rate: list[int] = [NO_RATE]
        zone: list[int] = [0]
        month: list[int] = [first]
        for m in range(first, last + 1):
            instants, rates, zones = self._month(track, m)
            bp += instants
            rate += rates
            zone += zones
            month += [m] * len(instants)
        made = _Schedule(*(np.array(x, dtype=np.int64) for x in (bp, rate, zone, month)))
        if len(self._schedules) > 50_000:
            self._schedules.clear()
        self._schedules[(track, first, last)] = made
        return made

    # --- pricing --------------------------------------------------------------------------
    def price(self, usage: Usage) -> Charges:
        if len(usage.start) == 0:
            return _no_charges(usage.used)
        # 0. intervals in the order their volume counts: by band key, then start
        order = _order(usage.band_key, usage.start)
        track, key, start, end, total = (x[order] for x in (
            usage.track, usage.band_key, usage.start, usage.end, usage.quantity))

        # 1. cut every interval at its track's boundaries (parts stay in that order)
        at, p_start, p_end, rate, zone, month = self._cut(usage.tracks, track, start, end)

        # 2. each part's share of its interval's quantity, by time
        s, e, q = start[at], end[at], total[at]
        quantity = _share(q, p_end - s, e - s) - _share(q, p_start - s, e - s)

        # 3. an interval with consumption where no tariff is in force is not priced at all
        blind = np.unique(at[(rate == NO_RATE) & (quantity > 0)])
        keep = quantity > 0
        if len(blind):
            keep &= ~np.isin(at, blind)
        at, p_start, p_end, rate, zone, month, quantity = (
            x[keep] for x in (at, p_start, p_end, rate, zone, month, quantity))

        # 4. monthly volume bands, counted in that order per (band key, month)
        slot = (key[at] << _MONTH_BITS) | month
        before, used = _volumes(slot, quantity, usage.used)
        after = before + quantity
        bounds = self._bounds[rate]
        first_band = (before[:, None] >= bounds[:, 1:]).sum(axis=1)
        last_band = ((after - 1)[:, None] >= bounds[:, 1:]).sum(axis=1)
        lines = last_band - first_band + 1
        split = np.repeat(np.arange(len(lines)), lines)
        band = first_band[split] + _ranks(lines)
        lower = np.maximum(before[split], bounds[split, band])
        upper = np.minimum(after[split], bounds[split, band + 1])
        at, p_start, p_end, rate, zone, month = (
            x[split] for x in (at, p_start, p_end, rate, zone, month))
        quantity = upper - lower

        # 5. price each line
        unit_price = self._prices[self._offset[rate] + zone * self._nbands[rate] + band]
        return Charges(
            interval=order[at], part=_ranks_of_sorted(at), start=p_start, end=p_end,
            quantity=quantity, rate=rate, zone=zone, band=band, unit_price=unit_price,
            amount=_product(quantity, unit_price), month=month, unpriced=np.sort(order[blind]),
            used=used,
        )

    def zone_names(self, rate: I64, zone: I64) -> npt.NDArray[np.object_]:
        """The name of each (rate, zone index) pair: "night", "peak", "all_day"."""
        names: npt.NDArray[np.object_] = self._zone_names[self._offset_of_zone(rate) + zone]
        return names

    def _offset_of_zone(self, rate: I64) -> I64:
        offsets: I64 = self._zone_offset[rate]
        return offsets

    def rates_at(self, tracks: Sequence[Track], track: I64, at: I64) -> I64:
        """The rate of an interval ending at each instant ``at`` on its track (the one in force
        just before it); ``NO_RATE`` where none is."""
        rates = np.full(len(at), NO_RATE, dtype=np.int64)
        if len(at):
            where, _, _, rate, _, _ = self._cut(tracks, track, at - 1, at)
            rates[where] = rate
        return rates

    def _cut(self, tracks: Sequence[Track], track: I64, start: I64,
             end: I64) -> tuple[I64, ...]:
        """Every interval cut at its track's boundaries: (interval, start, end, rate, zone,
        month) per part, in interval order. The tracks' boundaries are laid end to end on one
        axis (track rank x span + time), so one search cuts the whole batch whatever the
        number of tracks."""
        present = np.unique(track)
        lo, hi = int(start.min()), int(end.max())
        schedules = [self.schedule(tracks[int(t)], lo, hi) for t in present]
        base = min(lo, *(int(x.bp[0]) for x in schedules if len(x.bp)))
        span = max(hi, *(int(x.bp[-1]) for x in schedules if len(x.bp))) - base + 1
        if span * len(present) >= 2**62:  # too wide for one axis: one track at a time
            parts = [_cut_along(x.bp, x.rate, x.zone, x.month, np.flatnonzero(track == t),
                                start, end, np.zeros(len(start), dtype=np.int64))
                     for t, x in zip(present, schedules, strict=True)]
            joined = [np.concatenate([p[k] for p in parts]) for k in range(6)]
            by_interval = np.argsort(joined[0], kind="stable")
            return tuple(x[by_interval] for x in joined)
        shift = np.zeros(int(present.max()) + 1, dtype=np.int64)
        shift[present] = np.arange(len(present), dtype=np.int64) * span - base
        bp = np.concatenate([x.bp + shift[t] for t, x in zip(present, schedules, strict=True)])
        rate, zone, month = (
            np.concatenate([[NO_RATE if k == "rate" else 0],
                            *(getattr(x, k)[1:] for x in schedules)]).astype(np.int64)
            for k in ("rate", "zone", "month"))
        return _cut_along(bp, rate, zone, month, np.arange(len(start), dtype=np.int64),
                          start, end, shift[track])


def _order(key: I64, start: I64) -> I64:
    """Positions sorting intervals by (key, start); no sort when they are sorted already (as
    rating hands them over: by series, then time)."""
    later = (key[1:] > key[:-1]) | ((key[1:] == key[:-1]) & (start[1:] >= start[:-1]))
    if bool(later.all()):
        return np.arange(len(key), dtype=np.int64)
    return np.lexsort((start, key)).astype(np.int64)


def _cut_along(bp: I64, rate: I64, zone: I64, month: I64, members: I64, start: I64,
               end: I64, shift: I64) -> tuple[I64, ...]:
    """Cut intervals ``members`` (shifted onto the axis of ``bp``) at the boundaries ``bp``;
    segment k, before bp[k], has rate[k], zone[k], month[k]."""
    offset = shift[members]
    s, e = start[members] + offset, end[members] + offset
    first = np.searchsorted(bp, s, side="right")
    count = np.searchsorted(bp, e, side="left") - first + 1
    at = np.repeat(np.arange(len(members)), count)
    seg = first[at] + _ranks(count)
    edges = np.concatenate([[np.iinfo(np.int64).min], bp, [_MAX]])
    p_start = np.maximum(s[at], edges[seg]) - offset[at]
    p_end = np.minimum(e[at], edges[seg + 1]) - offset[at]
    return members[at], p_start, p_end, rate[seg], zone[seg], month[seg]


def _ranks(counts: I64) -> I64:
    """0, 1, ..., c-1 for each count c, concatenated."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _ranks_of_sorted(keys: I64) -> I64:
    """Position of each element within its run of equal (sorted) keys."""
    if len(keys) == 0:
        return _empty()
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    run_start = np.maximum.accumulate(np.where(new, np.arange(len(keys)), 0))
    return np.arange(len(keys), dtype=np.int64) - run_start


def _share(total: I64, part: I64, whole: I64) -> I64:
    """``total * part // whole`` exactly, in Python integers where int64 would overflow."""
    if len(total) == 0:
        return _empty()
    if int(total.max()) * int(whole.max()) < _MAX:
        return total * part // whole
    return np.array([t * p // w for t, p, w in
                     zip(total.tolist(), part.tolist(), whole.tolist(), strict=True)],
                    dtype=np.int64)


def _product(quantity: I64, price: I64) -> npt.NDArray[Any]:
    """Amounts in pico-roubles: int64 when they fit, else Python integers (exact either way)."""
    if len(quantity) == 0 or int(quantity.max()) * int(price.max()) < _MAX:
        return quantity * price
    return np.array([q * p for q, p in zip(quantity.tolist(), price.tolist(), strict=True)],
                    dtype=object)


def _volumes(slot: I64, quantity: I64, used: BandState) -> tuple[I64, BandState]:
    """The volume of each line's slot before it (lines count in their given order), and the
    volume of every slot after all of them, with the slots of ``used`` they did not touch."""
    order = np.argsort(slot, kind="stable")  # nearly sorted already: cheap
    slots, amounts = slot[order], quantity[order]
    new = np.ones(len(slots), dtype=bool)
    new[1:] = slots[1:] != slots[:-1]
    run = np.maximum.accumulate(np.where(new, np.arange(len(slots)), 0))
    prior = np.cumsum(amounts) - amounts
    known = (used.key << _MONTH_BITS) | used.month
    sorted_before = _lookup(slots, known, used.volume) + prior - prior[run]
    before = np.empty_like(sorted_before)
    before[order] = sorted_before
    last = np.ones(len(slots), dtype=bool)
    last[:-1] = new[1:]
    touched = slots[last]
    untouched = ~np.isin(known, touched)
    after = np.concatenate([(sorted_before + amounts)[last], used.volume[untouched]])
    every = np.concatenate([touched, known[untouched]])
    return before, BandState(key=every >> _MONTH_BITS, month=every & ((1 << _MONTH_BITS) - 1),
                             volume=after)


def _lookup(slot: I64, known: I64, volume: I64) -> I64:
    """The volume of each of ``slot`` among the ``known`` slots, 0 where unknown."""
    if len(known) == 0 or len(slot) == 0:
        return np.zeros(len(slot), dtype=np.int64)
    order = np.argsort(known)
    known, volume = known[order], volume[order]
    at = np.minimum(np.searchsorted(known, slot), len(known) - 1)
    found: I64 = np.where(known[at] == slot, volume[at], 0)
    return found


def _no_charges(used: BandState) -> Charges:
    e = _empty()
    return Charges(interval=e, part=e, start=e, end=e, quantity=e, rate=e, zone=e, band=e,
                   unit_price=e, amount=e, month=e, unpriced=e, used=used)
