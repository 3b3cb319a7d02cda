"""Pricing a batch of readings: pure functions over arrays, no Faust, Kafka or database.

``RoutedReadings`` is the batch as columns (one element per reading in each). ``price_batch``
takes it with the registers' last accepted readings and the tariff book, and returns the charge
lines to book, the readings to dead-letter with their reasons, and the new register state.
Booking them is ``rating.ledger``'s job; this module decides every number.

Quantities are integers in micro-units, prices micro-roubles per unit, amounts exact integers
in pico-roubles, timestamps integers in microseconds: nothing is rounded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from meterline.contracts import AccountReadings, Reading
from meterline.money import from_micro, to_micro
from meterline.units import SERVICE_OF_UTILITY, Register, Unit, Utility
from rating.core import consumption_intervals, from_micros, micros
from rating.tariffs import NO_TARIFF, TariffBook, price

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]


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

    @classmethod
    def of(cls, records: Sequence[AccountReadings]) -> RoutedReadings:
        rows = [(rec.account, r) for rec in records for r in rec.readings]
        return cls(
            account=[a for a, _ in rows], meter=[r.meter for _, r in rows],
            register=[r.register.value for _, r in rows], unit=[r.unit.value for _, r in rows],
            provider=[r.provider for _, r in rows], utility=[r.utility.value for _, r in rows],
            ts=np.array([micros(r.ts) for _, r in rows], dtype=np.int64),
            value=np.array([to_micro(r.value) for _, r in rows], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.meter)

    def reading(self, i: int) -> Reading:
        """Reading ``i`` as the contract spells it (for dead letters)."""
        return Reading(meter=self.meter[i], register=Register(self.register[i]),
                       unit=Unit(self.unit[i]), value=from_micro(int(self.value[i])),
                       ts=from_micros(int(self.ts[i])), provider=self.provider[i],
                       utility=Utility(self.utility[i]))

    def series(self) -> tuple[I64, list[tuple[str, str]]]:
        """A series id per reading (one per meter and register) and the (meter, register)
        of each id."""
        ids: dict[tuple[str, str], int] = {}
        series = np.fromiter(
            (ids.setdefault(key, len(ids)) for key in zip(self.meter, self.register, strict=True)),
            dtype=np.int64, count=len(self))
        return series, list(ids)


@dataclass(frozen=True)
class ChargeLines:
    """What a batch charges: one line per interval and tariff part. The key of a line is
    (meter, register, interval end, part): the meter and register of ``reading``, its time."""

    reading: I64  # the reading that closes the interval (index into the batch)
    start: I64  # interval start, microseconds (the interval ends at the reading's time)
    part: Sequence[str]  # tariff part ("" for a flat tariff)
    quantity: I64  # micro-units
    tariff_id: I64
    unit_price: I64  # micro-roubles per unit
    amount: Sequence[int]  # pico-roubles, exact

    def __len__(self) -> int:
        return len(self.reading)


@dataclass(frozen=True)
class Priced:
    lines: ChargeLines
    dead: list[tuple[str, int]]  # (reason, reading index) of readings refused
    state_series: I64  # series whose last accepted reading moves on ...
    state_ts: I64  # ... to this time
    state_value: I64  # ... and this value


def services(utilities: Sequence[str]) -> list[str]:
    """The service each reading's utility is billed as (SERVICE_OF_UTILITY)."""
    of = {u.value: SERVICE_OF_UTILITY[u].value for u in Utility}
    return [of[u] for u in utilities]


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def price_batch(
    batch: RoutedReadings, series: I64, owned: BOOL, state_ts: I64, state_value: I64,
    book: TariffBook,
) -> Priced:
    """Price the owned readings of ``batch``. ``state_ts``/``state_value`` hold, per series
    id, the last accepted reading (``NO_STATE`` when there is none).

    A reading with no tariff in force is refused and held back (the next priced reading
    covers its consumption); one below the register's highest accepted value went backwards
    and is refused; every other reading after the first of its series closes an interval."""
    n = len(batch)
    dead: list[tuple[str, int]] = []
    tariff_id = np.full(n, NO_TARIFF, dtype=np.int64)
    unit_price = np.zeros(n, dtype=np.int64)
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, key in enumerate(zip(batch.provider, batch.utility, batch.unit, strict=True)):
        groups.setdefault(key, []).append(i)
    for (provider, utility, unit), members in groups.items():
        at = np.array(members, dtype=np.int64)
        tariff_id[at], unit_price[at] = book.lookup(provider, utility, unit, batch.ts[at])

    priced = owned & (tariff_id != NO_TARIFF)
    for i in np.flatnonzero(owned & ~priced).tolist():
        r = batch.reading(i)
        dead.append((f"no {r.utility} tariff of provider {r.provider} in {r.unit} at {r.ts}", i))

    at = np.flatnonzero(priced)
    out = consumption_intervals(series[at], batch.ts[at], batch.value[at], state_ts, state_value)
    for i, previous in zip(at[out.backwards].tolist(), out.previous_value.tolist(), strict=True):
        dead.append((
            f"register went backwards: {_plain(from_micro(int(batch.value[i])))} "
            f"{batch.unit[i]} < {from_micro(previous)} {batch.unit[i]} accepted before", i))

    charged = at[out.charged]
    lines = ChargeLines(
        reading=charged, start=out.start_ts, part=[""] * len(charged), quantity=out.quantity,
        tariff_id=tariff_id[charged], unit_price=unit_price[charged],
        amount=price(out.quantity, unit_price[charged]),
    )
    return Priced(lines, dead, out.state_series, out.state_ts, out.state_value)

