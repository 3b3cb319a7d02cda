"""Splitting one payment between the providers, services and periods of an account
(DOMAIN.md §2), pure.

- The payer's own itemisation (amounts per service) wins; each item is then spread over that
  service's periods as below.
- Otherwise the payment pays the period it names, or else the earliest period whose debt is
  not time-barred (3 years after its due date, Civil Code art. 319.1), then the next one, and
  so on; within a period it is split in proportion to what each line owes (decree 354 p. 118).
- Then penalties (owed per provider and service, without a period), in proportion.
- What is left once every debt is paid is an advance on the payment's own period (or the period
  it names), split in proportion to the account's latest charges.
- Kopecks: every split is by the largest-remainder method, so the parts add up to the
  payment exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from meterline.errors import Invalid
from meterline.money import has_at_most_kopecks, kopecks

LIMITATION_YEARS = 3
_WEIGHT_SCALE = Decimal(10) ** 12  # weights are compared exactly, to the pico-rouble
ZERO = Decimal(0)


@dataclass(frozen=True)
class Due:
    """What the account still owes on one line (provider, service) of one period."""

    provider_id: str
    service: str
    period: date | None  # first day of the billing month; None: penalties
    amount: Decimal  # outstanding, > 0
    due_date: date


@dataclass(frozen=True)
class ServiceLine:
    """A service a provider sells on the account, weighted by its latest charge (for
    advances: money paid beyond every debt is spread like the bill)."""

    provider_id: str
    service: str
    latest_charge: Decimal = ZERO


@dataclass(frozen=True)
class Item:
    """The payer's own amount for a service (and, when several sell it, a provider)."""

    service: str
    amount: Decimal
    provider_id: str | None = None


@dataclass(frozen=True)
class Share:
    provider_id: str
    service: str
    period: date
    amount: Decimal
    advance: bool = False  # paid beyond every debt of the line
    penalty: bool = False  # pays penalties on the line (``period`` is then the payment's)


def largest_remainder(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """``amount`` (whole kopecks) split in proportion to ``weights``; the parts add up to it
    exactly. Each part is floored to kopecks, then the kopecks left go one each to the largest
    remainders (ties: the larger weight, then the earlier part)."""
    if not has_at_most_kopecks(amount):
        raise Invalid(f"{amount} has a fraction of a kopeck")
    scaled = [int(w * _WEIGHT_SCALE) for w in weights]
    if any(w < 0 for w in scaled) or sum(scaled) <= 0:
        raise Invalid("a split needs weights that are not negative and not all zero")
    total_weight = sum(scaled)
    cents = int(amount * 100)
    floors = [cents * w // total_weight for w in scaled]
    order = sorted(range(len(scaled)),
                   key=lambda i: (-(cents * scaled[i] % total_weight), -scaled[i], i))
    for i in order[: cents - sum(floors)]:
        floors[i] += 1
    return [Decimal(f).scaleb(-2) for f in floors]


def time_barred(due: Due, on: date) -> bool:
    try:
        limit = due.due_date.replace(year=due.due_date.year + LIMITATION_YEARS)
    except ValueError:  # 29 February
        limit = due.due_date.replace(year=due.due_date.year + LIMITATION_YEARS, day=28)
    return on > limit


def allocate(
    amount: Decimal,
    dues: Iterable[Due],
    lines: Sequence[ServiceLine],
    *,
    paid_on: date,
    period: date | None = None,
    items: Sequence[Item] | None = None,
    penalties: Sequence[Due] = (),
) -> list[Share]:
    """The shares of a payment of ``amount`` roubles; they add up to it exactly."""
    if amount <= 0 or not has_at_most_kopecks(amount):
        raise Invalid(f"a payment is a positive amount in whole kopecks, not {amount}",
                      field=["amount"])
    dues = [d for d in dues if d.amount > 0 and d.period is not None]
    penalties = [d for d in penalties if d.amount > 0]
    if not items:
        return _spread(amount, dues, penalties, lines, paid_on=paid_on, period=period)
    if sum((i.amount for i in items), ZERO) != amount:
        raise Invalid(f"the itemised amounts add up to {sum(i.amount for i in items)}, "
                      f"not to the payment of {amount}", field=["items"])
    shares: list[Share] = []
    for n, item in enumerate(items):
        chosen = [ln for ln in lines if ln.service == item.service
                  and item.provider_id in (None, ln.provider_id)]
        if not chosen:
            raise Invalid(f"the account has no service {item.service}"
                          + (f" from {item.provider_id}" if item.provider_id else ""),
                          field=["items", n, "service"])
        if item.amount <= 0:
            continue
        keys = {(ln.provider_id, ln.service) for ln in chosen}
        own = [d for d in dues if (d.provider_id, d.service) in keys]
        fines = [d for d in penalties if (d.provider_id, d.service) in keys]
        shares += _spread(item.amount, own, fines, chosen, paid_on=paid_on, period=period)
    return _merged(shares)


def _spread(
    amount: Decimal, dues: Sequence[Due], penalties: Sequence[Due],
    lines: Sequence[ServiceLine], *, paid_on: date, period: date | None,
) -> list[Share]:
    """Named period first, then the earliest periods not time-barred, then penalties, then
    an advance."""
    open_periods = sorted({d.period for d in dues
                           if d.period is not None and not time_barred(d, paid_on)})
    order = ([period] if period is not None else []) + [p for p in open_periods if p != period]
    shares: list[Share] = []
    left = amount
    for p in order:
        owed = [d for d in dues if d.period == p]
        total = sum((d.amount for d in owed), ZERO)
        if left <= 0:
            break
        if total < Decimal("0.01"):
            continue
        paying = min(left, _kopecks_up_to(total))
        parts = largest_remainder(paying, [d.amount for d in owed])
        shares += [Share(d.provider_id, d.service, p, part)
                   for d, part in zip(owed, parts, strict=True) if part > 0]
        left -= paying
    fined = sum((d.amount for d in penalties), ZERO)
    if left > 0 and fined >= Decimal("0.01"):
        paying = min(left, _kopecks_up_to(fined))
        parts = largest_remainder(paying, [d.amount for d in penalties])
        shares += [Share(d.provider_id, d.service, paid_on.replace(day=1), part, penalty=True)
                   for d, part in zip(penalties, parts, strict=True) if part > 0]
        left -= paying
    if left > 0:
        shares += _advance(left, lines, period or paid_on.replace(day=1))
    return shares


def _kopecks_up_to(amount: Decimal) -> Decimal:
    """The most whole kopecks that do not exceed ``amount`` (a debt may carry sub-kopecks)."""
    return Decimal(int(amount * 100)).scaleb(-2)


def _advance(amount: Decimal, lines: Sequence[ServiceLine], period: date) -> list[Share]:
    if not lines:
        raise Invalid("the account has no service to pay for")
    weights = [ln.latest_charge for ln in lines]
    if sum(weights, ZERO) <= 0:
        weights = [Decimal(1)] * len(lines)  # nothing charged yet: equal parts
    parts = largest_remainder(amount, weights)
    return [Share(ln.provider_id, ln.service, period, part, advance=True)
            for ln, part in zip(lines, parts, strict=True) if part > 0]


def _merged(shares: Sequence[Share]) -> list[Share]:
    """One share per (provider, service, period, advance, penalty)."""
    totals: dict[tuple[str, str, date, bool, bool], Decimal] = {}
    for s in shares:
        key = (s.provider_id, s.service, s.period, s.advance, s.penalty)
        totals[key] = totals.get(key, ZERO) + s.amount
    return [Share(p, s, d, amount, adv, pen)
            for (p, s, d, adv, pen), amount in totals.items()]


def by_provider(shares: Iterable[Share]) -> dict[str, Decimal]:
    """What a payment brought each provider (its settlement counts these)."""
    totals: dict[str, Decimal] = {}
    for s in shares:
        totals[s.provider_id] = totals.get(s.provider_id, ZERO) + s.amount
    return totals


def commission(collected: Decimal, percent: Decimal) -> Decimal:
    """The agent's commission on what it collected for a provider: kopecks, half-up."""
    return kopecks(collected * percent / 100)
