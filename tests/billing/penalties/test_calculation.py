"""Penalties worked by hand from the rules of DOMAIN.md §1 (each expected figure is computed in
the comment above it), against the rules and rate table shipped with meterline."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.penalties.calculation import Debt, Repayment, penalty
from billing.penalties.explain import explain
from billing.penalties.rules import PayerGroup, load_rules
from meterline.errors import Invalid

RULES = load_rules()
D = Decimal


def spans(result: object) -> list[tuple[str, str, int, str, str]]:
    """(start, end, per, rate, amount) of every line of every tranche."""
    from billing.penalties.calculation import ChargePenalty

    assert isinstance(result, ChargePenalty)
    return [(f"{ln.start}", f"{ln.end}", ln.per, f"{ln.rate}", f"{ln.amount}")
            for t in result.tranches for ln in t.lines]


def test_citizen_housing_tiers_under_the_cap() -> None:
    # maintenance (ЖК 155.14), 1,000.00 for January 2024, due 2024-02-10, unpaid on 2024-06-30.
    # Key rate on 2024-06-30: 16 %, capped at 9.5 %.
    # days 1-30   2024-02-11..03-11: nothing
    # days 31-90  2024-03-12..05-10 (60 d): 1000 × 60 × 9.5 % / 300 = 19.00
    # days 91-    2024-05-11..06-30 (51 d): 1000 × 51 × 9.5 % / 130 = 37.2692 → 37.27
    debt = Debt("uk", "maintenance", date(2024, 1, 1), D("1000.00"), date(2024, 2, 10))
    result = penalty(debt, [], as_of=date(2024, 6, 30), group=PayerGroup.CITIZEN, rules=RULES)
    assert spans(result) == [
        ("2024-02-11", "2024-03-11", 0, "9.5", "0"),
        ("2024-03-12", "2024-05-10", 300, "9.5", "19.00"),
        ("2024-05-11", "2024-06-30", 130, "9.5", "37.27"),
    ]
    assert result.total == D("56.27")
    assert "capped at 9.5" in result.tranches[0].lines[1].note


def test_the_2020_moratorium_stops_accrual_but_days_still_count() -> None:
    # maintenance, 2,000.00 for January 2020, due 2020-02-10, paid in full on 2021-02-15;
    # rate on the payment day 4.25 % (since 2020-07-27), no cap before 2022.
    # days 1-30   2020-02-11..03-11: nothing
    # days 31-55  2020-03-12..04-05 (25 d): 2000 × 25 × 4.25 % / 300 = 7.0833 → 7.08
    # days 56-90  2020-04-06..05-10, days 91- 2020-05-11..12-31: moratorium (decree 424),
    #             nothing
    # days 326-   2021-01-01..02-15 (46 d), tier 1/130: 2000 × 46 × 4.25 % / 130 = 30.0769 → 30.08
    debt = Debt("uk", "maintenance", date(2020, 1, 1), D("2000.00"), date(2020, 2, 10))
    paid = [Repayment(date(2021, 2, 15), D("2000.00"))]
    result = penalty(debt, paid, as_of=date(2021, 6, 1), group=PayerGroup.CITIZEN, rules=RULES)
    assert spans(result) == [
        ("2020-02-11", "2020-03-11", 0, "4.25", "0"),
        ("2020-03-12", "2020-04-05", 300, "4.25", "7.08"),
        ("2020-04-06", "2020-05-10", 0, "4.25", "0"),
        ("2020-05-11", "2020-12-31", 0, "4.25", "0"),
        ("2021-01-01", "2021-02-15", 130, "4.25", "30.08"),
    ]
    assert result.total == D("37.16")
    assert result.tranches[0].lines[4].first_day_of_delay == 326


def test_a_debt_before_2016_uses_the_refinancing_rate_from_the_first_day() -> None:
    # maintenance, 1,500.00 for June 2015, due 2015-07-10, paid on 2015-09-08.
    # Before 2016: 1/300 from day 1 of the refinancing rate (8.25 %), not the key rate (11 %).
    # 2015-07-11..09-08 (60 d): 1500 × 60 × 8.25 % / 300 = 24.75
    debt = Debt("uk", "maintenance", date(2015, 6, 1), D("1500.00"), date(2015, 7, 10))
    paid = [Repayment(date(2015, 9, 8), D("1500.00"))]
    result = penalty(debt, paid, as_of=date(2016, 1, 1), group=PayerGroup.CITIZEN, rules=RULES)
    assert spans(result) == [("2015-07-11", "2015-09-08", 300, "8.25", "24.75")]
    assert result.tranches[0].lines[0].rate_in_force.kind == "refinancing"


def test_a_debt_across_2016_keeps_the_old_tier_for_old_days_and_the_key_rate_of_the_payment_day(
) -> None:
    # maintenance, 1,500.00 for October 2015, due 2015-11-10, paid on 2016-03-01 (key rate 11 %).
    # 2015-11-11..12-31 (51 d): old law, 1/300 from day 1: 1500 × 51 × 11 % / 300 = 28.05
    # 2016-01-01 is day 52: the new law, 1/300 until day 90:
    #   2016-01-01..02-08 (39 d): 1500 × 39 × 11 % / 300 = 21.45
    #   2016-02-09..03-01 (22 d, days 91-112): 1500 × 22 × 11 % / 130 = 27.9230 → 27.92
    debt = Debt("uk", "maintenance", date(2015, 10, 1), D("1500.00"), date(2015, 11, 10))
    paid = [Repayment(date(2016, 3, 1), D("1500.00"))]
    result = penalty(debt, paid, as_of=date(2016, 3, 1), group=PayerGroup.CITIZEN, rules=RULES)
    assert spans(result) == [
        ("2015-11-11", "2015-12-31", 300, "11.00", "28.05"),
        ("2016-01-01", "2016-02-08", 300, "11.00", "21.45"),
        ("2016-02-09", "2016-03-01", 130, "11.00", "27.92"),
    ]


@pytest.mark.parametrize(("group", "expected", "total"), [
    # 35-ФЗ, 10,000.00 for May 2021, due 2021-06-10, paid 2021-10-20 (132 days), rate 6.75 %.
    # citizen: days 1-30 nothing; 31-90 (60 d) 10000 × 60 × 6.75 % / 300 = 135.00;
    #          91-132 (42 d) 10000 × 42 × 6.75 % / 130 = 218.0769 → 218.08
    (PayerGroup.CITIZEN, [(0, "0"), (300, "135.00"), (130, "218.08")], "353.08"),
    # УК/ТСЖ/ЖСК: 1-60 1/300 = 135.00; 61-90 (30 d) 10000 × 30 × 6.75 % / 170 = 119.1176
    #             → 119.12; 91-132 1/130 = 218.08
    (PayerGroup.HOUSING_ORG, [(300, "135.00"), (170, "119.12"), (130, "218.08")], "472.20"),
    # other: 1/130 from day 1: 10000 × 132 × 6.75 % / 130 = 685.3846 → 685.38
    (PayerGroup.OTHER, [(130, "685.38")], "685.38"),
])
def test_electricity_tiers_by_payer_group(
    group: PayerGroup, expected: list[tuple[int, str]], total: str
) -> None:
    debt = Debt("sbyt", "electricity", date(2021, 5, 1), D("10000.00"), date(2021, 6, 10))
    paid = [Repayment(date(2021, 10, 20), D("10000.00"))]
    result = penalty(debt, paid, as_of=date(2021, 12, 31), group=group, rules=RULES)
    assert [(ln.per, f"{ln.amount}") for ln in result.tranches[0].lines] == expected
    assert result.total == D(total)
    assert sum(ln.days for ln in result.tranches[0].lines) == 132


def test_a_charge_paid_in_parts_accrues_each_part_with_the_rate_of_its_own_payment_day() -> None:
    # heating (190-ФЗ), citizen, 3,000.00 for October 2024, due 2024-11-10; 1,000.00 paid on
    # 2025-01-20, the rest open on 2025-03-31. Key rate 21 % on both days, capped at 9.5 %.
    # paid part, 2024-11-11..2025-01-20 (71 d): days 1-30 nothing;
    #   days 31-71 (41 d): 1000 × 41 × 9.5 % / 300 = 12.9833 → 12.98
    # open 2,000.00 until 2025-03-31: days 31-90 (60 d) 2000 × 60 × 9.5 % / 300 = 38.00;
    #   days 91-141 (51 d) 2000 × 51 × 9.5 % / 130 = 74.5384 → 74.54
    debt = Debt("tgk", "heating", date(2024, 10, 1), D("3000.00"), date(2024, 11, 10))
    paid = [Repayment(date(2025, 1, 20), D("1000.00"))]
    result = penalty(debt, paid, as_of=date(2025, 3, 31), group=PayerGroup.CITIZEN, rules=RULES)
    first, rest = result.tranches
    assert (first.amount, first.paid_on, first.penalty) == (D("1000.00"), date(2025, 1, 20),
                                                            D("12.98"))
    assert (rest.amount, rest.paid_on, rest.penalty) == (D("2000.00"), None, D("112.54"))
    assert result.total == D("125.52") and result.unpaid == D("2000.00")

    # the payment day not counted: the paid part accrues to 2025-01-19 (40 d):
    # 1000 × 40 × 9.5 % / 300 = 12.6666 → 12.67
    uncounted = penalty(debt, paid, as_of=date(2025, 3, 31), group=PayerGroup.CITIZEN,
                        rules=RULES, count_payment_day=False)
    assert uncounted.tranches[0].penalty == D("12.67")
    assert uncounted.total == D("125.21")


def test_capital_repair_accrues_from_the_day_after_the_due_date() -> None:
    # ЖК 155.14.1: 500.00 for August 2025, due 2025-09-10, open on 2025-10-10 (30 d),
    # key rate 17 % capped at 9.5 %: 500 × 30 × 9.5 % / 300 = 4.75
    debt = Debt("fund", "capital_repair", date(2025, 8, 1), D("500.00"), date(2025, 9, 10))
    result = penalty(debt, [], as_of=date(2025, 10, 10), group=PayerGroup.CITIZEN, rules=RULES)
    assert result.total == D("4.75")


def test_paid_by_the_due_date_or_not_yet_due_accrues_nothing() -> None:
    debt = Debt("uk", "maintenance", date(2025, 1, 1), D("800.00"), date(2025, 2, 10))
    on_time = penalty(debt, [Repayment(date(2025, 2, 10), D("800.00"))], as_of=date(2025, 6, 1),
                      group=PayerGroup.OTHER, rules=RULES)
    assert on_time.total == 0 and on_time.tranches[0].lines == ()
    early = penalty(debt, [], as_of=date(2025, 2, 1), group=PayerGroup.OTHER, rules=RULES)
    assert early.total == 0 and early.unpaid == D("800.00")


def test_a_calculation_past_the_last_rate_decision_warns() -> None:
    debt = Debt("uk", "maintenance", date(2025, 9, 1), D("100.00"), date(2025, 10, 10))
    recent = penalty(debt, [], as_of=date(2025, 12, 1), group=PayerGroup.CITIZEN, rules=RULES)
    assert recent.warnings == ()
    late = penalty(debt, [], as_of=date(2026, 6, 1), group=PayerGroup.CITIZEN, rules=RULES,
                   stale_after_days=120)
    (warning,) = late.warnings
    assert "2025-10-27" in warning and "217 days" in warning


def test_no_rate_before_the_table_is_refused() -> None:
    debt = Debt("uk", "maintenance", date(2011, 1, 1), D("100.00"), date(2011, 2, 10))
    with pytest.raises(Invalid, match="starts after 2011-06-01"):
        penalty(debt, [], as_of=date(2011, 6, 1), group=PayerGroup.CITIZEN, rules=RULES)


def test_the_explanation_shows_every_line_and_adds_up() -> None:
    debt = Debt("tgk", "heating", date(2024, 10, 1), D("3000.00"), date(2024, 11, 10))
    paid = [Repayment(date(2025, 1, 20), D("1000.00"))]
    result = penalty(debt, paid, as_of=date(2025, 3, 31), group=PayerGroup.CITIZEN, rules=RULES)
    text = explain("LS-1", date(2025, 3, 31), [result], count_payment_day=True)
    assert "tgk · heating · 2024-10: charged 3,000.00, due 2024-11-10" in text
    assert "part of 1,000.00 paid on 2025-01-20; key rate 21% in force on 2025-01-20" in text
    assert "2,000.00 × 51 × 9.5% / 130" in text and "74.54" in text
    assert text.splitlines()[-1] == "Total penalty: 125.52"
