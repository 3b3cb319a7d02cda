"""Pricing a batch of readings: pure functions over arrays, no Faust, Kafka or database.

``RoutedReadings`` is the batch as columns (one element per reading in each). ``price_batch``
takes it with the registers' last accepted readings and its accounts' tariffs
(``BatchTariffs``: tracks and monthly volumes, see ``rating.tariffs``), and returns the charge
lines to book, the readings to dead-letter with their reasons, and the new register state.
Booking them is ``rating.ledger``'s job; this module decides every number. The tariff pricing
itself (zones, months, versions, bands) is the kernel's ``meterline.tariffs.pricing``.

Quantities are integers in micro-units, prices micro-roubles per unit, amounts exact integers
in pico-roubles, timestamps integers in microseconds: nothing is rounded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from meterline.contracts import AccountReadings, Reading, ReadingFlag
from meterline.money import from_micro, to_micro
from meterline.tariffs.pricing import NO_RATE, BandState, Charges, TariffSet, Track, Usage
from meterline.units import SERVICE_OF_UTILITY, Register, Unit, Utility
from rating.core import (
    FLAG_JUMP,
    FLAG_RESET,
    FLAG_ROLLOVER,
    NO_STATE,
    Resets,
    consumption_intervals,
    from_micros,
    micros,
)

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]


_BITS = {ReadingFlag.ROLLOVER: FLAG_ROLLOVER, ReadingFlag.RESET: FLAG_RESET,
         ReadingFlag.IMPLAUSIBLE_JUMP: FLAG_JUMP}


def flag_bits(flags: Sequence[ReadingFlag]) -> int:
    """The register-policy flags of a reading as rating's bits (the others do not change what
    is charged)."""
    bits = 0
    for flag in flags:
        bits |= _BITS.get(flag, 0)
    return bits


def flags_of(bits: int) -> tuple[ReadingFlag, ...]:
    return tuple(flag for flag, bit in _BITS.items() if bits & bit)


@dataclass(frozen=True)
class RoutedReadings:
    """A batch of readings routed to their accounts (what the readings topic carries), as
    columns: one element per reading in each."""

    account: Sequence[str]
    meter: Sequence[str]
    register: Sequence[str]
    unit: Sequence[str]
    provider: Sequence[str]
    utility: Sequence[str]
    ts: I64  # microseconds since the epoch
    value: I64  # cumulative register value, micro-units
    flags: I64 | None = None  # per reading: FLAG_ROLLOVER | FLAG_RESET | FLAG_JUMP bits

    @classmethod
    def of(cls, records: Sequence[AccountReadings]) -> RoutedReadings:
        rows = [(rec.account, r) for rec in records for r in rec.readings]
        return cls(
            account=[a for a, _ in rows], meter=[r.meter for _, r in rows],
            register=[r.register.value for _, r in rows], unit=[r.unit.value for _, r in rows],
            provider=[r.provider for _, r in rows], utility=[r.utility.value for _, r in rows],
            ts=np.array([micros(r.ts) for _, r in rows], dtype=np.int64),
            value=np.array([to_micro(r.value) for _, r in rows], dtype=np.int64),
            flags=np.array([flag_bits(r.flags) for _, r in rows], dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: Sequence[RoutedReadings]) -> RoutedReadings:
        """The readings of ``parts`` as one batch, in order."""
        if len(parts) == 1:
            return parts[0]

        def joined(name: str) -> list[str]:
            return [x for part in parts for x in getattr(part, name)]

        return cls(
            account=joined("account"), meter=joined("meter"), register=joined("register"),
            unit=joined("unit"), provider=joined("provider"), utility=joined("utility"),
            ts=np.concatenate([p.ts for p in parts]) if parts else np.empty(0, np.int64),
            value=np.concatenate([p.value for p in parts]) if parts else np.empty(0, np.int64),
            flags=(np.concatenate([p.flag_bits() for p in parts])
                   if any(p.flags is not None for p in parts) else None),
        )

    def flag_bits(self) -> I64:
        """The flags of every reading (zeros when the batch carries none)."""
        return np.zeros(len(self), dtype=np.int64) if self.flags is None else self.flags

    def __len__(self) -> int:
        return len(self.meter)

    def reading(self, i: int) -> Reading:
        """Reading ``i`` as the contract spells it (for dead letters)."""
        bits = int(self.flags[i]) if self.flags is not None else 0
        return Reading(meter=self.meter[i], register=Register(self.register[i]),
                       unit=Unit(self.unit[i]), value=from_micro(int(self.value[i])),
                       ts=from_micros(int(self.ts[i])), provider=self.provider[i],
                       utility=Utility(self.utility[i]), flags=flags_of(bits))

    def series(self) -> tuple[I64, list[tuple[str, str]]]:
        """A series id per reading (one per meter and register) and the (meter, register)
        of each id."""
        ids: dict[tuple[str, str], int] = {}
        series = np.fromiter(
            (ids.setdefault(key, len(ids)) for key in zip(self.meter, self.register, strict=True)),
            dtype=np.int64, count=len(self))
        return series, list(ids)


@dataclass(frozen=True)
class BatchTariffs:
    """The tariffs of one batch's accounts (``rating.tariffs.batch_tariffs`` reads them)."""

    set: TariffSet  # every plan, compiled
    version_ids: I64  # per rate of ``set``: the stored tariff version
    tracks: Sequence[Track]
    track: I64  # per reading: its account's track for the reading's service, -1 for none
    key: I64  # per reading: its (account, provider, service), whose monthly volume bands count
    volumes: BandState  # volume priced before, per key and month


@dataclass(frozen=True)
class ChargeLines:
    """What a batch charges: a line per part of an interval that a time-of-use zone, a month,
    a tariff version or a volume band limit cuts off. A line covers ``[start, end)``, its
    share of the interval closed by ``reading``; its key is (meter, register, end, part,
    revision), the part naming its zone and band ("night/0"). Re-rating reverses a line at the
    odd revision after its own (negative quantity and amount) and reposts at the next even
    revision of each key (``NEXT_REPOST``); ``reading`` then only names the meter, register and
    account, and
    ``end_value`` and ``reading_end`` the reading interval the line is a part of."""

    reading: I64  # the reading that closes the interval (index into the batch)
    start: I64  # microseconds
    end: I64
    part: Sequence[str]
    quantity: I64  # micro-units
    version_id: I64  # the tariff version that priced it
    zone: Sequence[str]
    band: I64
    group: Sequence[str]  # the consumer group whose price it is
    unit_price: I64  # micro-roubles per unit
    amount: Sequence[int]  # pico-roubles, exact
    revision: I64 | None = None  # None: all 0; NEXT_REPOST: the next even one of its key
    end_value: I64 | None = None  # micro-units; None: the value of ``reading``
    reading_end: I64 | None = None  # the end of its reading interval; None: ``reading``'s ts
    # the month it lies in, in its account's time zone (``meterline.tariffs.pricing.month_id``,
    # as pricing cut it); None or NO_MONTH: not known here (a reversal), the booking derives it
    month: I64 | None = None

    def __len__(self) -> int:
        return len(self.reading)

    def months(self) -> I64:
        return np.full(len(self), NO_MONTH, dtype=np.int64) if self.month is None else self.month

    def revisions(self) -> I64:
        return np.zeros(len(self), dtype=np.int64) if self.revision is None else self.revision

    def end_values(self, batch: RoutedReadings) -> I64:
        return batch.value[self.reading] if self.end_value is None else self.end_value

    def reading_ends(self, batch: RoutedReadings) -> I64:
        return batch.ts[self.reading] if self.reading_end is None else self.reading_end

    @classmethod
    def concat(cls, parts: Sequence[ChargeLines], batch: RoutedReadings) -> ChargeLines:
        parts = [p for p in parts if len(p)]
        if len(parts) <= 1:
            return parts[0] if parts else _no_lines()

        def cat(name: str) -> I64:
            return np.concatenate([getattr(p, name) for p in parts])

        def joined(name: str) -> list[Any]:
            return [x for p in parts for x in getattr(p, name)]

        return cls(reading=cat("reading"), start=cat("start"), end=cat("end"),
                   part=joined("part"), quantity=cat("quantity"), version_id=cat("version_id"),
                   zone=joined("zone"), band=cat("band"), group=joined("group"),
                   unit_price=cat("unit_price"), amount=joined("amount"),
                   revision=np.concatenate([p.revisions() for p in parts]),
                   end_value=np.concatenate([p.end_values(batch) for p in parts]),
                   reading_end=np.concatenate([p.reading_ends(batch) for p in parts]),
                   month=np.concatenate([p.months() for p in parts]))


NEXT_REPOST = -1  # a reposted line's revision: the next even one of its key, when booked
NO_MONTH = -1  # a line's month not known (``ChargeLines.month``)


def _no_lines() -> ChargeLines:
    e = np.empty(0, dtype=np.int64)
    return ChargeLines(reading=e, start=e, end=e, part=[], quantity=e, version_id=e, zone=[],
                       band=e, group=[], unit_price=e, amount=[])


@dataclass(frozen=True)
class Priced:
    lines: ChargeLines
    dead: list[tuple[str, int]]  # (reason, reading index) of readings refused
    state_series: I64  # series whose last accepted reading moves on ...
    state_ts: I64  # ... to this time
    state_value: I64  # ... and this value
    state_pending_ts: I64 | None = None  # ... with this reset candidate (NO_STATE: none)
    state_pending_value: I64 | None = None
    resets: Resets | None = None  # confirmed resets; ``reading``/``confirmed_by`` index the batch
    late: I64 | None = None  # readings before their register's state (batch indices)
    rolled_over: I64 | None = None  # charged readings whose counter wrapped (batch indices)
    state_pending_flags: I64 | None = None  # ... and the candidate's kind (FLAG_RESET, FLAG_JUMP)
    jumps: Resets | None = None  # implausible jumps re-baselined without charging the leap
    # (reason, reading) refused that came in an earlier batch (a jump held as a candidate)
    dead_held: list[tuple[str, Reading]] = field(default_factory=list)


def services(utilities: Sequence[str]) -> list[str]:
    """The service each reading's utility is billed as (SERVICE_OF_UTILITY)."""
    of = {u.value: SERVICE_OF_UTILITY[u].value for u in Utility}
    return [of[u] for u in utilities]


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def price_batch(
    batch: RoutedReadings, series: I64, owned: BOOL, state_ts: I64, state_value: I64,
    tariffs: BatchTariffs, *, wrap: I64 | None = None, pending_ts: I64 | None = None,
    pending_value: I64 | None = None, pending_flags: I64 | None = None,
) -> Priced:
    """Price the owned readings of ``batch``. ``state_ts``/``state_value`` hold, per series
    id, the last accepted reading (``NO_STATE`` when there is none); ``wrap`` the counter's
    span, ``pending_ts``/``pending_value``/``pending_flags`` a candidate (``rating.core``'s
    register policy).

    A reading with no tariff in force (no plan for its account's service, none in force at
    its time, or one priced in another unit) is refused and held back (the next priced reading
    covers its consumption), and so is one whose interval crosses a time with no tariff; a
    drop below the register's level is a rollover, a reset or a glitch by ``rating.core``'s
    register policy (only a glitch is refused); a reading flagged implausible_jump waits for
    the next one, which refuses it or re-baselines at it without charging the leap; every other
    reading after the first of its series closes an interval, priced by its account's track."""
    n = len(batch)
    dead: list[tuple[str, int]] = []
    prices = tariffs.set
    rate = np.full(n, NO_RATE, dtype=np.int64)
    planned = np.flatnonzero(tariffs.track >= 0)
    rate[planned] = prices.rates_at(tariffs.tracks, tariffs.track[planned], batch.ts[planned])
    priced = owned & (rate != NO_RATE)
    priced[priced] &= prices.rate_basis[rate[priced]] == np.asarray(batch.unit,
                                                                   dtype=object)[priced]
    for i in np.flatnonzero(owned & ~priced).tolist():
        r = batch.reading(i)
        dead.append((f"no {r.utility} tariff of provider {r.provider} in {r.unit} at {r.ts}", i))

    while True:
        at = np.flatnonzero(priced)
        out = consumption_intervals(series[at], batch.ts[at], batch.value[at], state_ts,
                                    state_value, flags=batch.flag_bits()[at], wrap=wrap,
                                    pending_ts=pending_ts, pending_value=pending_value,
                                    pending_flags=pending_flags)
        charged = at[out.charged]
        charges = prices.price(Usage(
            tracks=tariffs.tracks, track=tariffs.track[charged], band_key=tariffs.key[charged],
            start=out.start_ts, end=batch.ts[charged], quantity=out.quantity,
            used=tariffs.volumes))
        if not len(charges.unpriced):
            break
        for i in charged[charges.unpriced].tolist():  # rare: a gap between tariff versions
            r = batch.reading(i)
            dead.append((f"no {r.utility} tariff of provider {r.provider} in force over the "
                         f"whole interval ending at {r.ts}", i))
            priced[i] = False
    for i, previous in zip(at[out.backwards].tolist(), out.previous_value.tolist(), strict=True):
        dead.append((
            f"register went backwards: {_plain(from_micro(int(batch.value[i])))} "
            f"{batch.unit[i]} < {from_micro(previous)} {batch.unit[i]} accepted before, and the "
            "next reading came back to it: a glitch, not used", i))
    assert out.jumps_refused is not None and out.jump_level is not None
    for i, previous in zip(at[out.jumps_refused].tolist(), out.jump_level.tolist(), strict=True):
        dead.append((_garbage(int(batch.value[i]), previous, batch.unit[i]), i))
    # a jump held from an earlier batch: its reading is the one that refused it, at the jump
    held = out.jumps_refused_held
    assert held is not None
    dead_held = [
        (_garbage(value, level, batch.unit[i]),
         batch.reading(i).model_copy(update={"ts": from_micros(ts), "value": from_micro(value),
                                             "flags": (ReadingFlag.IMPLAUSIBLE_JUMP,)}))
        for i, ts, value, level in zip(at[held.confirmed_by].tolist(), held.at.tolist(),
                                       held.value.tolist(), held.level.tolist(), strict=True)]

    lines = _lines(tariffs, charged, charges)
    found = out.resets
    assert found is not None and out.late is not None and out.rolled_over is not None
    resets = Resets(series=found.series,
                    reading=np.where(found.reading >= 0, at[np.maximum(found.reading, 0)], -1)
                    if len(found) else found.reading,
                    confirmed_by=at[found.confirmed_by], at=found.at, level=found.level,
                    value=found.value)
    leapt = out.jumps
    assert leapt is not None
    jumps = Resets(series=leapt.series,
                   reading=np.where(leapt.reading >= 0, at[np.maximum(leapt.reading, 0)], -1)
                   if len(leapt) else leapt.reading,
                   confirmed_by=at[leapt.confirmed_by], at=leapt.at, level=leapt.level,
                   value=leapt.value)
    no_pending = np.full(len(out.state_series), NO_STATE, dtype=np.int64)
    return Priced(lines, dead, out.state_series, out.state_ts, out.state_value,
                  state_pending_ts=(out.state_pending_ts if out.state_pending_ts is not None
                                    else no_pending),
                  state_pending_value=(out.state_pending_value
                                       if out.state_pending_value is not None
                                       else np.zeros(len(out.state_series), dtype=np.int64)),
                  resets=resets, late=at[out.late], rolled_over=at[out.rolled_over],
                  state_pending_flags=(out.state_pending_flags
                                       if out.state_pending_flags is not None
                                       else np.full(len(out.state_series), FLAG_RESET,
                                                    dtype=np.int64)),
                  jumps=jumps, dead_held=dead_held)


def _garbage(value: int, level: int, unit: str) -> str:
    return (f"implausible jump: {_plain(from_micro(value))} {unit} from "
            f"{_plain(from_micro(level))} {unit} accepted before, and the next reading fell "
            "back below it: a glitch, not used")


def _lines(tariffs: BatchTariffs, reading: I64, charges: Charges, revision: I64 | None = None,
           end_value: I64 | None = None, reading_end: I64 | None = None) -> ChargeLines:
    """Charge lines of priced intervals; ``reading`` (and ``revision``, ``end_value``,
    ``reading_end``) per interval priced."""
    prices = tariffs.set
    zone = prices.zone_names(charges.rate, charges.zone).tolist()
    band = charges.band
    at = charges.interval
    return ChargeLines(
        reading=reading[at], start=charges.start, end=charges.end,
        part=[f"{z}/{b}" for z, b in zip(zone, band.tolist(), strict=True)],
        quantity=charges.quantity, version_id=tariffs.version_ids[charges.rate], zone=zone,
        band=band, group=prices.rate_group[charges.rate].tolist(),
        unit_price=charges.unit_price, amount=charges.amount.tolist(),
        revision=None if revision is None else revision[at],
        end_value=None if end_value is None else end_value[at],
        reading_end=None if reading_end is None else reading_end[at],
        month=charges.month,
    )


@dataclass(frozen=True)
class Reopened:
    """Intervals priced before that late readings fall strictly inside, one element each:
    ``(start, end]``, the register's value at ``end``, what their live lines (those not
    reversed) charged in all."""

    start: I64
    end: I64
    end_value: I64
    quantity: I64

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class LatePieces:
    lines: ChargeLines  # the reposted lines of the re-rated intervals
    rerated: I64  # the reopened intervals re-rated (their live lines are to be reversed)
    dead: list[tuple[str, int]]  # (reason, reading index) of late readings not used


def late_pieces(batch: RoutedReadings, late: I64, interval: I64, reopened: Reopened,
                tariffs: BatchTariffs) -> LatePieces:
    """Re-rate the ``reopened`` intervals that the ``late`` readings (batch indices; the
    reopened interval each falls inside in ``interval``) cut: each interval becomes the pieces
    between its start, its late readings and its end, priced again by the account's track
    (each line at the next even revision of its key). An interval whose late readings do
    not lie between the values at its ends (a rollover inside it, a corrected value) is left
    as it was, and its late readings are refused."""
    dead: list[tuple[str, int]] = []
    closing: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    quantity: list[int] = []
    end_values: list[int] = []
    group: list[int] = []
    order = np.lexsort((batch.ts[late], interval))
    late, interval = late[order], interval[order]
    cuts = np.flatnonzero(np.diff(interval)) + 1
    for points in np.split(np.arange(len(late)), cuts) if len(late) else ():
        j = int(interval[points[0]])
        idx = late[points].tolist()
        ts = batch.ts[late[points]].tolist()
        values = batch.value[late[points]].tolist()
        v_end = int(reopened.end_value[j])
        v_start = v_end - int(reopened.quantity[j])
        chain = [v_start, *values, v_end]
        if any(b < a for a, b in pairwise(chain)):
            for i in idx:
                dead.append((f"late reading {_plain(from_micro(int(batch.value[i])))} "
                             f"{batch.unit[i]} does not lie between "
                             f"{_plain(from_micro(v_start))} and {_plain(from_micro(v_end))} "
                             "read around it: not re-rated", i))
            continue
        bounds = [int(reopened.start[j]), *ts, int(reopened.end[j])]
        for k in range(len(idx) + 1):
            closing.append(idx[min(k, len(idx) - 1)])
            starts.append(bounds[k])
            ends.append(bounds[k + 1])
            quantity.append(chain[k + 1] - chain[k])
            end_values.append(chain[k + 1])
            group.append(j)
    arr = np.asarray
    reading, q = arr(closing, dtype=np.int64), arr(quantity, dtype=np.int64)
    groups = arr(group, dtype=np.int64)
    keep = q > 0
    charges = tariffs.set.price(Usage(
        tracks=tariffs.tracks, track=tariffs.track[reading[keep]],
        band_key=tariffs.key[reading[keep]], start=arr(starts, dtype=np.int64)[keep],
        end=arr(ends, dtype=np.int64)[keep], quantity=q[keep], used=tariffs.volumes))
    failed = np.unique(groups[keep][charges.unpriced])
    lines = _lines(tariffs, reading[keep], charges,
                   np.full(int(keep.sum()), NEXT_REPOST, dtype=np.int64),
                   arr(end_values, dtype=np.int64)[keep], arr(ends, dtype=np.int64)[keep])
    if len(failed):  # no tariff over a piece: the interval stays as it was
        fine = ~np.isin(groups[keep][charges.interval], failed)
        lines = _take(lines, np.flatnonzero(fine))
        for i in late[np.isin(interval, failed)].tolist():
            dead.append((f"no tariff in force to re-rate the interval around late reading "
                         f"at {from_micros(int(batch.ts[i]))}", i))
    rerated = np.setdiff1d(np.unique(groups), failed)
    return LatePieces(lines, rerated, dead)


def _take(lines: ChargeLines, at: I64) -> ChargeLines:
    pick = at.tolist()
    return ChargeLines(
        reading=lines.reading[at], start=lines.start[at], end=lines.end[at],
        part=[lines.part[k] for k in pick], quantity=lines.quantity[at],
        version_id=lines.version_id[at], zone=[lines.zone[k] for k in pick], band=lines.band[at],
        group=[lines.group[k] for k in pick], unit_price=lines.unit_price[at],
        amount=[lines.amount[k] for k in pick], revision=lines.revisions()[at],
        end_value=None if lines.end_value is None else lines.end_value[at],
        reading_end=None if lines.reading_end is None else lines.reading_end[at],
        month=None if lines.month is None else lines.month[at])
