"""A penalty calculation as text an operator reads out to a subscriber: per charge, per part
paid, one line per run of days with the same tier and rate, and totals that add up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from billing.penalties.calculation import ZERO, ChargePenalty, Line, Tranche


def money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _rate(line: Line) -> str:
    return f"{line.rate.normalize():f}%"


def _line(line: Line) -> str:
    last_day = line.first_day_of_delay + line.days - 1
    span = f"{line.start:%Y-%m-%d} – {line.end:%Y-%m-%d}  {line.days:>4} d"
    delay = f"days {line.first_day_of_delay}–{last_day}"
    if line.per:
        formula = f"{money(line.base)} × {line.days} × {_rate(line)} / {line.per}"
    else:
        formula = "no penalty"
    text = f"    {span}  {delay:<15} {formula:<40} {money(line.amount):>12}"
    return f"{text}  ({line.note})" if line.note else text


def _tranche(t: Tranche) -> list[str]:
    if t.paid_on is not None:
        head = f"  part of {money(t.amount)} paid on {t.paid_on:%Y-%m-%d}"
    else:
        head = f"  unpaid {money(t.amount)}"
    if not t.lines:
        return [f"{head}: paid by the due date, no penalty"]
    rate = t.lines[0].rate_in_force
    head += (f"; {rate.kind} rate {rate.rate.normalize():f}% in force on {t.rate_day:%Y-%m-%d}"
             f" (since {rate.effective_from:%Y-%m-%d})")
    return [head, *map(_line, t.lines)]


def explain_charge(c: ChargePenalty) -> list[str]:
    d = c.debt
    lines = [
        f"{d.provider_id} · {d.service} · {d.period:%Y-%m}: charged {money(d.amount)}, "
        f"due {d.due:%Y-%m-%d}; {c.law.title}, payer {c.group}",
    ]
    for tranche in c.tranches:
        lines += _tranche(tranche)
    lines.append(f"  penalty {money(c.total)}")
    return lines


def explain(
    account_id: str, as_of: date, charges: Sequence[ChargePenalty], *, count_payment_day: bool
) -> str:
    counted = "counted" if count_payment_day else "not counted"
    out = [f"Penalties on account {account_id} as of {as_of:%Y-%m-%d} "
           f"(the payment day itself {counted})"]
    if not charges:
        out.append("no charge was paid late")
    for charge in charges:
        out.append("")
        out += explain_charge(charge)
    warnings = dict.fromkeys(w for c in charges for w in c.warnings)
    out.append("")
    out.append(f"Total penalty: {money(sum((c.total for c in charges), ZERO))}")
    out += [f"Warning: {w}" for w in warnings]
    return "\n".join(out)
