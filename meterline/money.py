"""Money and quantities as exact numbers.

Rules (DESIGN.md): money is `Decimal` in Python and NUMERIC in SQL, never float. Rating works
on integers: quantities in micro-units (1e-6 kWh, 1e-6 m3), prices in micro-roubles per unit,
so a charge is an exact integer in pico-roubles (1e-12) and is stored without rounding.
Rounding to kopecks (half-up) happens only where a document or a payment shows money.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

MICRO = 10**6
PICO = 10**12
_MICRO_EXP = Decimal("0.000001")
_KOPECK = Decimal("0.01")


def to_micro(value: Decimal) -> int:
    """A quantity or price as an integer count of millionths (half-even past 6 decimals)."""
    return int(value.quantize(_MICRO_EXP, rounding=ROUND_HALF_EVEN).scaleb(6))


def from_micro(value: int) -> Decimal:
    return Decimal(value).scaleb(-6)


def from_pico(value: int) -> Decimal:
    """Pico-roubles (the product of micro-units and micro-roubles) as exact roubles."""
    return Decimal(value).scaleb(-12)


def kopecks(amount: Decimal) -> Decimal:
    """Round money for a document or a payment: to kopecks, half-up."""
    return amount.quantize(_KOPECK, rounding=ROUND_HALF_UP)


def has_at_most_kopecks(amount: Decimal) -> bool:
    """True when the amount has no fraction of a kopeck."""
    exponent = amount.as_tuple().exponent
    return isinstance(exponent, int) and (exponent >= -2 or amount == kopecks(amount))
