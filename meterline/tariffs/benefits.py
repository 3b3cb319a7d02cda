"""Benefits (льготы): a share of one service's charge, for the beneficiaries among the residents,
within a norm per beneficiary.

The beneficiaries' part of a service is their per-resident share of the basis (the area, or the
volume used), each capped at the norm: ``eligible = beneficiaries x min(basis / residents,
norm)``. The benefit is ``percent`` of what that eligible quantity was charged, at the
service's own average price: ``percent / 100 x charge x eligible / basis``.

Worked example (DOMAIN, issue 5): heating by area at 42.30 roubles per m², a 54 m² flat with 3
registered residents of whom 1 is a beneficiary of 50 % within 18 m² each. The charge is
54 x 42.30 = 2,284.20; each resident's share is 54 / 3 = 18 m², within the norm, so 18 m² are
eligible, and the benefit is 50 % x 2,284.20 x 18 / 54 = 380.70.

A benefit granted or ended inside a period counts for the days it was held: for a charge by
area the benefit is scaled by those days; for a metered service only the volume used while it
was held counts, and the norm is scaled by the days. Amounts are exact, rounded once half-up
to the ledger's 12 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from meterline.errors import Invalid
from meterline.tariffs.model import BenefitRule

_PLACES = 12


@dataclass(frozen=True)
class Benefit:
    eligible: Decimal  # quantity of the basis the benefit covers (m², kWh, m³ ...)
    amount: Decimal  # roubles granted (positive): the ledger line's amount


def days_held(period_start: date, period_end: date, held_from: date,
              held_to: date | None) -> int:
    """Days of the period ``[period_start, period_end)`` on which a benefit held over
    ``[held_from, held_to)`` applies."""
    start = max(period_start, held_from)
    end = min(period_end, held_to) if held_to else period_end
    return max((end - start).days, 0)


def _exact(value: Fraction) -> Decimal:
    """Half-up (away from zero) to 12 decimals, from an exact fraction."""
    scaled = abs(value) * 10**_PLACES
    whole = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)
    return Decimal(whole if value >= 0 else -whole).scaleb(-_PLACES)


def _check(residents: int, beneficiaries: int) -> None:
    if residents < 1:
        raise Invalid("a benefit needs at least one registered resident", field=("residents",))
    if not 0 <= beneficiaries <= residents:
        raise Invalid(f"{beneficiaries} beneficiaries among {residents} residents",
                      field=("beneficiaries",))


def area_benefit(rule: BenefitRule, *, charge: Decimal, area: Decimal, residents: int,
                 beneficiaries: int, days: int, days_in_period: int) -> Benefit:
    """A benefit on a service charged by area (``charge`` for the whole period), held
    ``days`` of the period's ``days_in_period``."""
    _check(residents, beneficiaries)
    if area <= 0 or charge == 0 or beneficiaries == 0 or days == 0:
        return Benefit(Decimal(0), Decimal(0))
    eligible = beneficiaries * min(Fraction(area) / residents, Fraction(rule.norm))
    amount = (Fraction(rule.percent) / 100 * Fraction(charge) * eligible / Fraction(area)
              * Fraction(days, days_in_period))
    return Benefit(_exact(eligible), _exact(amount))


def volume_benefit(rule: BenefitRule, *, charge: Decimal, volume: Decimal, residents: int,
                   beneficiaries: int, days: int, days_in_period: int) -> Benefit:
    """A benefit on a metered service: ``charge`` and ``volume`` are what was used while the
    benefit was held (``days`` of the period's ``days_in_period``)."""
    _check(residents, beneficiaries)
    if volume <= 0 or charge == 0 or beneficiaries == 0 or days == 0:
        return Benefit(Decimal(0), Decimal(0))
    norm = Fraction(rule.norm) * Fraction(days, days_in_period)
    eligible = beneficiaries * min(Fraction(volume) / residents, norm)
    amount = Fraction(rule.percent) / 100 * Fraction(charge) * eligible / Fraction(volume)
    return Benefit(_exact(eligible), _exact(amount))
