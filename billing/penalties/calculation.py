"""Penalties on one unpaid monthly charge, day by day of delay, pure (DOMAIN.md §1).

The charge for a month is due on its due date; each day of delay after it accrues
``unpaid × rate / 100 / per`` where ``per`` comes from the tier of the law and payer group for
that day of delay (1/300, 1/170, 1/130, or nothing), and the rate is the one in force on the
day the money was paid (for a debt still open: the day of calculation), applied to the whole
delay. A moratorium stops accrual on its days, a cap lowers the rate on its days.

A charge paid in parts is split into tranches: each paid part accrues up to its payment day
with the rate of that day, what is still unpaid accrues up to the day of calculation with
that day's rate. Each tranche's days are cut into lines where the payer group's tier in
force, the law's schedule or a moratorium of the law begins or ends (nowhere else: each cut
rounds); every line is rounded to kopecks (half-up) and the penalty is the sum of its lines,
so the explanation adds up to the figure charged. The set-based accrual (`accrual.py`) cuts
and rounds the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from billing.penalties.rules import (
    Law,
    MoratoriumKind,
    PayerGroup,
    PenaltyRules,
    RateChange,
)
from meterline.money import kopecks

ONE_DAY = timedelta(days=1)
ZERO = Decimal(0)


@dataclass(frozen=True)
class Debt:
    """One monthly charge of one service with one provider."""

    provider_id: str
    service: str
    period: date  # first day of the billing month
    amount: Decimal
    due: date  # the last day to pay without delay


@dataclass(frozen=True)
class Repayment:
    """Money that paid this charge, on the day it was paid."""

    day: date
    amount: Decimal


@dataclass(frozen=True)
class Line:
    """Days of delay with one tier, one rate and one base."""

    start: date
    end: date  # inclusive
    first_day_of_delay: int
    base: Decimal  # the unpaid amount these days accrue on
    per: int  # 1/per of the rate per day; 0: none
    rate: Decimal  # percent per year actually applied (after any cap)
    rate_in_force: RateChange  # the rate of the payment (or calculation) day
    amount: Decimal  # kopecks
    note: str = ""

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class Tranche:
    """A part of the charge that was paid on ``paid_on`` (None: still unpaid)."""

    amount: Decimal
    paid_on: date | None
    rate_day: date
    lines: tuple[Line, ...]

    @property
    def penalty(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


@dataclass(frozen=True)
class ChargePenalty:
    debt: Debt
    law: Law
    group: PayerGroup
    as_of: date
    tranches: tuple[Tranche, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def total(self) -> Decimal:
        return sum((t.penalty for t in self.tranches), ZERO)

    @property
    def unpaid(self) -> Decimal:
        return sum((t.amount for t in self.tranches if t.paid_on is None), ZERO)


def stale_rate_warning(rules: PenaltyRules, day: date, stale_after_days: int) -> str | None:
    last = rules.rates.last_entry
    if (day - last).days > stale_after_days:
        return (
            f"the rate table ends at its decision of {last:%Y-%m-%d}, {(day - last).days} days "
            f"before {day:%Y-%m-%d}: add the Bank of Russia's later decisions to it"
        )
    return None


def penalty(
    debt: Debt,
    repayments: Iterable[Repayment],
    *,
    as_of: date,
    group: PayerGroup,
    rules: PenaltyRules,
    count_payment_day: bool = True,
    stale_after_days: int = 120,
    stop: date | None = None,
) -> ChargePenalty:
    """The penalty on ``debt`` as of the end of ``as_of``, given what repaid it and when;
    nothing accrues from ``stop`` on (a repayment agreement being kept)."""
    law = rules.law_for(debt.service)
    tranches: list[Tranche] = []
    warnings: list[str] = []
    unpaid = debt.amount
    for repayment in sorted(repayments, key=lambda r: r.day):
        if repayment.day > as_of or unpaid <= 0:
            break
        part = min(repayment.amount, unpaid)
        unpaid -= part
        last = repayment.day if count_payment_day else repayment.day - ONE_DAY
        if stop is not None:
            last = min(last, stop - ONE_DAY)
        tranches.append(_tranche(debt, law, group, rules, part, repayment.day, last, warnings,
                                 stale_after_days, rate_day=repayment.day))
    if unpaid > 0:
        last = as_of if stop is None else min(as_of, stop - ONE_DAY)
        tranches.append(_tranche(debt, law, group, rules, unpaid, None, last, warnings,
                                 stale_after_days, rate_day=as_of))
    return ChargePenalty(debt, law, group, as_of, tuple(tranches), tuple(dict.fromkeys(warnings)))


def _tranche(
    debt: Debt, law: Law, group: PayerGroup, rules: PenaltyRules, amount: Decimal,
    paid_on: date | None, last_day: date, warnings: list[str], stale_after_days: int,
    *, rate_day: date,
) -> Tranche:
    first_day = debt.due + ONE_DAY
    if last_day < first_day:
        return Tranche(amount, paid_on, rate_day, ())
    rate = rules.rates.rate_on(rate_day)
    if (warning := stale_rate_warning(rules, rate_day, stale_after_days)) is not None:
        warnings.append(warning)
    lines = [
        _line(debt, law, group, rules, amount, rate, start, end)
        for start, end in _spans(debt, law, group, rules, first_day, last_day)
    ]
    return Tranche(amount, paid_on, rate_day, tuple(lines))


def tier_cuts(law: Law, group: PayerGroup) -> list[tuple[date, date | None, int]]:
    """The days of delay where the group's tier changes, with the validity of the schedule
    (from, to) that has them: such a day is a cut only while that schedule is in force."""
    cuts = []
    for n, schedule in enumerate(law.schedules):
        until = law.schedules[n + 1].valid_from if n + 1 < len(law.schedules) else None
        cuts += [(schedule.valid_from, until, t.first_day) for t in schedule.tiers[group]
                 if t.first_day > 1]
    return cuts


def date_cuts(law: Law, rules: PenaltyRules) -> list[date]:
    """The dates where the law's schedule changes or one of its moratoria begins or ends."""
    cuts = {s.valid_from for s in law.schedules}
    cuts |= {d for m in rules.moratoria if m.kind is not MoratoriumKind.NO_RESTRICTION
             and (m.laws is None or law.id in m.laws) for d in (m.start, m.end + ONE_DAY)}
    return sorted(cuts)


def _spans(
    debt: Debt, law: Law, group: PayerGroup, rules: PenaltyRules, first: date, last: date
) -> list[tuple[date, date]]:
    """[first, last] cut where the tier in force, the law's schedule or a moratorium changes."""
    cuts = set(date_cuts(law, rules))
    for valid_from, until, day in tier_cuts(law, group):
        cut = debt.due + timedelta(days=day)
        if valid_from <= cut and (until is None or cut < until):
            cuts.add(cut)
    starts = [first, *sorted(c for c in cuts if first < c <= last)]
    ends = [s - ONE_DAY for s in starts[1:]] + [last]
    return list(zip(starts, ends, strict=True))


def _line(
    debt: Debt, law: Law, group: PayerGroup, rules: PenaltyRules, base: Decimal,
    rate_in_force: RateChange, start: date, end: date,
) -> Line:
    day_of_delay = (start - debt.due).days
    per = law.schedule_on(start).tier(group, day_of_delay).per
    rate = rate_in_force.rate
    notes: list[str] = []
    for m in rules.moratoria:
        if not m.covers(start, law.id):
            continue
        if m.kind is MoratoriumKind.NO_ACCRUAL:
            per = 0
            notes.append(f"moratorium: {m.source}")
        elif m.cap is not None and m.cap < rate:
            rate = m.cap
            if per:
                notes.append(f"rate capped at {m.cap.normalize():f}%: {m.source}")
    days = (end - start).days + 1
    amount = kopecks(base * days * rate / 100 / per) if per else ZERO
    return Line(start, end, day_of_delay, base, per, rate, rate_in_force, amount, "; ".join(notes))

