"""Instalment agreements (соглашения о рассрочке): a debt split into scheduled parts. While
the agreement is kept, the debt it covers gets no reminder and no penalty beyond what the
agreement says; a part not paid by its due date (plus the agreement's grace days) breaks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from meterline.allocation import largest_remainder
from meterline.errors import Invalid


class Standing(StrEnum):
    KEPT = "kept"
    BROKEN = "broken"
    COMPLETED = "completed"


@dataclass(frozen=True)
class Part:
    due: date
    amount: Decimal


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def schedule(debt: Decimal, parts: int, first_due: date, *, every_months: int = 1) -> list[Part]:
    """``debt`` in ``parts`` equal monthly parts (kopecks left over go to the first parts),
    the first due on ``first_due``."""
    if parts < 1 or debt <= 0:
        raise Invalid("an agreement splits a positive debt into at least one part")
    amounts = largest_remainder(debt, [Decimal(1)] * parts)
    return [Part(_add_months(first_due, n * every_months), a) for n, a in enumerate(amounts)]


def standing(parts: Sequence[Part], paid: Iterable[tuple[date, Decimal]], on: date,
             *, grace_days: int = 0) -> Standing:
    """Kept while, by each due date passed (plus grace), what was paid covers the parts due."""
    payments = sorted(paid)
    total = sum(p.amount for p in parts)
    if sum((a for d, a in payments if d <= on), Decimal(0)) >= total:
        return Standing.COMPLETED
    owed = Decimal(0)
    for part in parts:
        owed += part.amount
        deadline = part.due + timedelta(days=grace_days)
        if deadline >= on:
            break
        if sum((a for d, a in payments if d <= deadline), Decimal(0)) < owed:
            return Standing.BROKEN
    return Standing.KEPT
