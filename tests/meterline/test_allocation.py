"""Allocating a payment, worked by hand from DOMAIN.md §2."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest

from meterline.allocation import (
    Due,
    Item,
    ServiceLine,
    Share,
    allocate,
    by_provider,
    commission,
    largest_remainder,
)
from meterline.errors import Invalid

D = Decimal
JAN, FEB, MAR = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)
LINES = [ServiceLine("uk", "maintenance", D("500.00")), ServiceLine("sbyt", "electricity",
                                                                     D("300.00"))]


def dues(*periods: date) -> list[Due]:
    out = []
    for p in periods:
        due = p.replace(month=p.month + 1, day=10) if p.month < 12 else p.replace(
            year=p.year + 1, month=1, day=10)
        out += [Due("uk", "maintenance", p, D("500.00"), due),
                Due("sbyt", "electricity", p, D("300.00"), due)]
    return out


def table(shares: list[Share]) -> set[tuple[str, str, str, str, bool]]:
    return {(s.provider_id, s.service, f"{s.period:%Y-%m}", f"{s.amount}", s.advance)
            for s in shares}


def test_proportional_split_is_kopeck_exact_by_largest_remainder() -> None:
    # 1,000.00 over 1,234.56 + 2,345.67 + 345.68 = 3,925.91 owed for January, in kopecks:
    #   100000 x 1234.56 / 3925.91 = 31446.467  → 314.46, remainder .467
    #   100000 x 2345.67 / 3925.91 = 59748.440  → 597.48, remainder .440
    #   100000 x  345.68 / 3925.91 =  8805.092  →  88.05, remainder .092
    # floors add up to 999.99; the kopeck left goes to the largest remainder (maintenance).
    # (Half-up rounding of each share would give 314.46 + 597.48 + 88.05 = 999.99.)
    owed = [Due("uk", "maintenance", JAN, D("1234.56"), date(2025, 2, 10)),
            Due("tgk", "heating", JAN, D("2345.67"), date(2025, 2, 10)),
            Due("vodokanal", "cold_water", JAN, D("345.68"), date(2025, 2, 10))]
    shares = allocate(D("1000.00"), owed, [], paid_on=date(2025, 2, 5))
    assert [s.amount for s in shares] == [D("314.47"), D("597.48"), D("88.05")]
    assert by_provider(shares) == {"uk": D("314.47"), "tgk": D("597.48"),
                                   "vodokanal": D("88.05")}


def test_ties_of_largest_remainder_go_to_the_earlier_part() -> None:
    # 0.02 in three equal parts: 0.666 kopecks each, floors 0, two kopecks to the first two.
    assert largest_remainder(D("0.02"), [D(1), D(1), D(1)]) == [D("0.01"), D("0.01"), D("0")]
    # a larger weight wins a tie of remainders: 0.03 over 1:2 → 1 and 2 kopecks, exact.
    assert largest_remainder(D("0.03"), [D(1), D(2)]) == [D("0.01"), D("0.02")]


def test_the_earliest_period_is_paid_first_then_the_next() -> None:
    # owed 800.00 for January and 800.00 for February; 1,000.00 pays January whole, then
    # 200.00 of February in proportion 500 : 300 = 125.00 + 75.00.
    shares = allocate(D("1000.00"), dues(JAN, FEB), LINES, paid_on=date(2025, 3, 14))
    assert table(shares) == {
        ("uk", "maintenance", "2025-01", "500.00", False),
        ("sbyt", "electricity", "2025-01", "300.00", False),
        ("uk", "maintenance", "2025-02", "125.00", False),
        ("sbyt", "electricity", "2025-02", "75.00", False),
    }


def test_a_payment_naming_a_period_pays_that_period() -> None:
    shares = allocate(D("800.00"), dues(JAN, FEB), LINES, paid_on=date(2025, 3, 14), period=FEB)
    assert {(s.period, s.amount) for s in shares} == {(FEB, D("500.00")), (FEB, D("300.00"))}


def test_a_time_barred_period_is_skipped_unless_named() -> None:
    # January 2021 was due on 2021-02-10: time-barred after 2024-02-10.
    old = dues(date(2021, 1, 1))
    recent = dues(date(2024, 12, 1))
    shares = allocate(D("80.00"), old + recent, LINES, paid_on=date(2025, 3, 1))
    assert {s.period for s in shares} == {date(2024, 12, 1)}
    named = allocate(D("80.00"), old + recent, LINES, paid_on=date(2025, 3, 1),
                     period=date(2021, 1, 1))
    assert {s.period for s in named} == {date(2021, 1, 1)}


def test_money_beyond_every_debt_is_an_advance_spread_like_the_latest_bill() -> None:
    # owed 800.00 for January; 1,500.00 paid on 2025-03-14 leaves 700.00 as an advance on
    # March, split like the latest charges 500 : 300 = 437.50 + 262.50.
    shares = allocate(D("1500.00"), dues(JAN), LINES, paid_on=date(2025, 3, 14))
    assert table(shares) == {
        ("uk", "maintenance", "2025-01", "500.00", False),
        ("sbyt", "electricity", "2025-01", "300.00", False),
        ("uk", "maintenance", "2025-03", "437.50", True),
        ("sbyt", "electricity", "2025-03", "262.50", True),
    }


def test_the_payers_itemisation_wins() -> None:
    # 1,000.00 all for electricity: January 300.00, February 300.00, 400.00 ahead; the
    # maintenance debt stays as it was.
    shares = allocate(D("1000.00"), dues(JAN, FEB), LINES, paid_on=date(2025, 3, 14),
                      items=[Item("electricity", D("1000.00"))])
    assert table(shares) == {
        ("sbyt", "electricity", "2025-01", "300.00", False),
        ("sbyt", "electricity", "2025-02", "300.00", False),
        ("sbyt", "electricity", "2025-03", "400.00", True),
    }


def test_an_itemisation_that_does_not_add_up_or_names_no_service_of_the_account_is_refused(
) -> None:
    with pytest.raises(Invalid, match=r"add up to 900\.00, not to the payment of 1000\.00"):
        allocate(D("1000.00"), dues(JAN), LINES, paid_on=date(2025, 3, 14),
                 items=[Item("electricity", D("900.00"))])
    with pytest.raises(Invalid, match="no service gas"):
        allocate(D("10.00"), dues(JAN), LINES, paid_on=date(2025, 3, 14),
                 items=[Item("gas", D("10.00"))])


def test_a_payment_to_an_account_without_services_or_in_sub_kopecks_is_refused() -> None:
    with pytest.raises(Invalid, match="no service to pay for"):
        allocate(D("10.00"), [], [], paid_on=date(2025, 3, 14))
    with pytest.raises(Invalid, match="whole kopecks"):
        allocate(D("10.005"), dues(JAN), LINES, paid_on=date(2025, 3, 14))


def test_any_payment_over_any_debts_adds_up_exactly() -> None:
    rng = random.Random(8)
    for _ in range(300):
        owed = [Due(f"p{rng.randint(1, 3)}", rng.choice(["gas", "heating", "waste"]),
                    date(2024, rng.randint(1, 12), 1),
                    D(rng.randint(1, 10**7)) / 10**6,  # sub-kopeck debts from rating
                    date(2025, 1, 10)) for _ in range(rng.randint(0, 8))]
        lines = [ServiceLine(d.provider_id, d.service, d.amount) for d in owed] or LINES
        amount = D(rng.randint(1, 10**6)) / 100
        shares = allocate(amount, owed, lines, paid_on=date(2025, 2, 1))
        assert sum(s.amount for s in shares) == amount
        assert all(s.amount > 0 and s.amount == s.amount.quantize(D("0.01")) for s in shares)


def test_commission_per_provider_agreement_is_rounded_half_up() -> None:
    assert commission(D("1000.00"), D("1.5")) == D("15.00")
    # 333.33 x 0.8 % = 2.66664 → 2.67; 1.25 x 2 % = 0.025 → 0.03 (half-up)
    assert commission(D("333.33"), D("0.8")) == D("2.67")
    assert commission(D("1.25"), D("2")) == D("0.03")
