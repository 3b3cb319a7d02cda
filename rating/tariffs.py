"""Tariffs as data, and pricing over arrays.

A tariff is a price per unit of one provider's utility, valid over ``[valid_from, valid_to)``.
Prices are integers in micro-roubles per unit and quantities integers in micro-units, so a
charge is their exact product in pico-roubles; nothing is rounded here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from meterline.money import to_micro
from rating.core import micros

I64 = npt.NDArray[np.int64]
_INT64_MAX = np.iinfo(np.int64).max
NO_TARIFF = -1


@dataclass(frozen=True)
class Tariff:
    id: int
    provider: str
    utility: str
    unit: str
    price: Decimal  # per unit
    valid_from: datetime
    valid_to: datetime | None = None


@dataclass(frozen=True)
class _Table:
    """One provider's utility: its tariffs as arrays ordered by validity start."""

    starts: I64  # valid_from, microseconds
    ends: I64  # valid_to, microseconds (open end: int64 max)
    ids: I64
    prices: I64  # micro-roubles per unit
    units: list[str]

    @classmethod
    def of(cls, tariffs: list[Tariff]) -> _Table:
        return cls(
            starts=np.array([micros(t.valid_from) for t in tariffs], dtype=np.int64),
            ends=np.array([micros(t.valid_to) if t.valid_to else _INT64_MAX for t in tariffs],
                          dtype=np.int64),
            ids=np.array([t.id for t in tariffs], dtype=np.int64),
            prices=np.array([to_micro(t.price) for t in tariffs], dtype=np.int64),
            units=[t.unit for t in tariffs],
        )


class TariffBook:
    """The tariffs in force, looked up for many (provider, utility, time) at once."""

    def __init__(self, tariffs: Iterable[Tariff]) -> None:
        self.tariffs = sorted(tariffs, key=lambda t: (t.provider, t.utility, t.valid_from))
        by_key: dict[tuple[str, str], list[Tariff]] = {}
        for tariff in self.tariffs:
            by_key.setdefault((tariff.provider, tariff.utility), []).append(tariff)
        self._tables = {key: _Table.of(group) for key, group in by_key.items()}

    def lookup(
        self, provider: str, utility: str, unit: str, ts: I64
    ) -> tuple[I64, I64]:
        """(tariff id, price in micro-roubles) in force at each of ``ts`` (microseconds)
        for one provider's utility; ``NO_TARIFF`` where none is, or its unit differs."""
        ids = np.full(len(ts), NO_TARIFF, dtype=np.int64)
        prices = np.zeros(len(ts), dtype=np.int64)
        table = self._tables.get((provider, utility))
        if table is None:
            return ids, prices
        # ts is the end of an interval: it belongs to the tariff with valid_from < ts <= end
        pick = np.searchsorted(table.starts, ts, side="left") - 1
        found = pick >= 0
        safe = np.where(found, pick, 0)
        found &= ts <= table.ends[safe]
        found &= np.array([u == unit for u in table.units])[safe]
        ids[found] = table.ids[safe[found]]
        prices[found] = table.prices[safe[found]]
        return ids, prices


def price(quantity_micro: I64, price_micro: I64) -> list[int]:
    """Exact charges in pico-roubles: quantity (micro-units) x price (micro-roubles/unit)."""
    if len(quantity_micro) == 0:
        return []
    largest = int(quantity_micro.max()) * int(price_micro.max())
    if largest < _INT64_MAX:
        return [int(x) for x in (quantity_micro * price_micro)]
    return [int(q) * int(p) for q, p in zip(quantity_micro, price_micro, strict=True)]
