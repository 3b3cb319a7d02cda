"""Instalment agreements: kopeck-exact parts, kept or broken by the payments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from billing.payments.instalments import Part, Standing, schedule, standing

D = Decimal


def test_a_debt_splits_into_monthly_parts_that_add_up() -> None:
    # 1,000.00 in 3: 333.33 × 3 = 999.99, the kopeck left goes to the first part
    parts = schedule(D("1000.00"), 3, date(2025, 1, 31))
    assert parts == [Part(date(2025, 1, 31), D("333.34")), Part(date(2025, 2, 28), D("333.33")),
                     Part(date(2025, 3, 31), D("333.33"))]


def test_kept_while_each_part_is_paid_by_its_due_date() -> None:
    parts = schedule(D("900.00"), 3, date(2025, 2, 10))
    paid = [(date(2025, 2, 9), D("300.00")), (date(2025, 3, 12), D("300.00"))]
    assert standing(parts, paid, date(2025, 3, 10)) is Standing.KEPT  # the 2nd is due today
    assert standing(parts, paid, date(2025, 3, 11)) is Standing.BROKEN  # paid a day late
    assert standing(parts, paid, date(2025, 3, 11), grace_days=5) is Standing.KEPT
    done = [*paid, (date(2025, 4, 1), D("300.00"))]
    assert standing(parts, done, date(2025, 4, 1)) is Standing.COMPLETED
    ahead = [(date(2025, 2, 1), D("600.00"))]
    assert standing(parts, ahead, date(2025, 3, 20)) is Standing.KEPT
