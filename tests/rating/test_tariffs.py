"""Tariff lookup by validity period, and exact pricing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from meterline.money import from_pico, to_micro
from rating.tariffs import NO_TARIFF, Tariff, TariffBook, price

JAN = datetime(2026, 1, 1, tzinfo=UTC)
JUL = datetime(2026, 7, 1, tzinfo=UTC)


def us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def book() -> TariffBook:
    return TariffBook([
        Tariff(2, "sbyt", "electricity", "kWh", Decimal("6.170000"), JUL),
        Tariff(1, "sbyt", "electricity", "kWh", Decimal("5.470000"), JAN, JUL),
        Tariff(3, "vodokanal", "cold_water", "m3", Decimal("48.12"), JAN),
    ])


def test_the_tariff_in_force_at_the_interval_end_is_chosen() -> None:
    ts = np.array([us(JAN) + 1, us(JUL), us(JUL) + 1, us(JAN) - 1], dtype=np.int64)
    ids, prices = book().lookup("sbyt", "electricity", "kWh", ts)
    assert ids.tolist() == [1, 1, 2, NO_TARIFF]
    assert prices.tolist() == [5_470_000, 5_470_000, 6_170_000, 0]


def test_unknown_provider_or_other_unit_has_no_tariff() -> None:
    ts = np.array([us(JUL) + 1], dtype=np.int64)
    assert book().lookup("nobody", "electricity", "kWh", ts)[0].tolist() == [NO_TARIFF]
    assert book().lookup("vodokanal", "cold_water", "kWh", ts)[0].tolist() == [NO_TARIFF]


def test_price_is_exact_to_the_pico_rouble() -> None:
    quantity = np.array([to_micro(Decimal("1.234567")), 1], dtype=np.int64)
    prices = np.array([to_micro(Decimal("5.47")), to_micro(Decimal("5.47"))], dtype=np.int64)
    charges = [from_pico(p) for p in price(quantity, prices)]
    assert charges == [Decimal("1.234567") * Decimal("5.47"), Decimal("0.00000547")]


def test_price_falls_back_to_python_integers_past_int64() -> None:
    quantity = np.array([10**13], dtype=np.int64)
    prices = np.array([10**8], dtype=np.int64)
    assert price(quantity, prices) == [10**21]
