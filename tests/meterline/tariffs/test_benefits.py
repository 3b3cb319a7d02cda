"""Benefits: the worked example by hand, the norm, and a benefit starting mid-month."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from meterline.errors import Invalid
from meterline.tariffs.benefits import area_benefit, days_held, volume_benefit
from meterline.tariffs.model import Basis, BenefitRule
from meterline.units import Service
from tests.factories import example_book

HEATING = example_book("teploset").benefits[0]  # 50 % of heating within 18 m2 each
WATER = BenefitRule(provider_id="vodokanal", code="w", name="50 % of water within 6 m3 each",
                    service=Service.COLD_WATER, percent=Decimal(50), norm=Decimal(6),
                    norm_basis=Basis.M3)


def test_the_worked_example_half_of_heating_for_one_of_three_residents_within_18_m2() -> None:
    # Heating by area at 42.30 a m2: a 54 m2 flat pays 54 x 42.30 = 2,284.20. Each of its 3
    # residents' share is 54 / 3 = 18 m2, within the 18 m2 norm; for the 1 beneficiary,
    # 18 m2 are eligible: 50 % x 18 x 42.30 = 380.70.
    assert (HEATING.percent, HEATING.norm, HEATING.norm_basis) == (
        Decimal(50), Decimal(18), Basis.M2)
    got = area_benefit(HEATING, charge=Decimal("2284.20"), area=Decimal(54), residents=3,
                       beneficiaries=1, days=30, days_in_period=30)
    assert (got.eligible, got.amount) == (Decimal(18), Decimal("380.70"))


def test_the_norm_caps_a_larger_share() -> None:
    # 75 m2 for 3 residents: 25 m2 each, capped at 18; two beneficiaries: 36 m2 eligible.
    # Charge 75 x 42.30 = 3,172.50; benefit 50 % x 36 x 42.30 = 761.40
    got = area_benefit(HEATING, charge=Decimal("3172.50"), area=Decimal(75), residents=3,
                       beneficiaries=2, days=31, days_in_period=31)
    assert (got.eligible, got.amount) == (Decimal(36), Decimal("761.40"))


def test_a_benefit_starting_mid_month_counts_for_the_days_it_was_held() -> None:
    # granted from November 16: 15 of November's 30 days, half of the 380.70
    days = days_held(date(2026, 11, 1), date(2026, 12, 1), date(2026, 11, 16), None)
    assert days == 15
    got = area_benefit(HEATING, charge=Decimal("2284.20"), area=Decimal(54), residents=3,
                       beneficiaries=1, days=days, days_in_period=30)
    assert got.amount == Decimal("190.35")
    # on a metered service only what was used while it was held counts, and the norm is
    # scaled by the days: 4 residents used 20 m3 from the 16th (charged 1,162.00); the norm
    # is 6 x 15 / 30 = 3 m3 a beneficiary, below the 5 m3 share, so 3 m3 of 20 are eligible:
    # 50 % x 1,162.00 x 3 / 20 = 87.15
    got = volume_benefit(WATER, charge=Decimal("1162.00"), volume=Decimal(20), residents=4,
                         beneficiaries=1, days=days, days_in_period=30)
    assert (got.eligible, got.amount) == (Decimal(3), Decimal("87.15"))


def test_a_benefit_held_outside_the_period_grants_nothing() -> None:
    assert days_held(date(2026, 11, 1), date(2026, 12, 1), date(2026, 12, 5), None) == 0
    assert days_held(date(2026, 11, 1), date(2026, 12, 1), date(2026, 1, 1),
                     date(2026, 11, 10)) == 9
    got = area_benefit(HEATING, charge=Decimal("2284.20"), area=Decimal(54), residents=3,
                       beneficiaries=1, days=0, days_in_period=30)
    assert got.amount == 0


def test_amounts_are_exact_to_the_ledger_s_twelve_decimals() -> None:
    # 1 of 3 residents, 50 m2: a share of 16.666... m2, charge 100: 50 % x 100 / 3
    got = area_benefit(HEATING, charge=Decimal(100), area=Decimal(50), residents=3,
                       beneficiaries=1, days=1, days_in_period=1)
    assert got.amount == Decimal("16.666666666667")


def test_beneficiaries_are_among_the_residents() -> None:
    with pytest.raises(Invalid, match="2 beneficiaries among 1 residents"):
        area_benefit(HEATING, charge=Decimal(1), area=Decimal(1), residents=1, beneficiaries=2,
                     days=1, days_in_period=1)
    with pytest.raises(Invalid, match="at least one registered resident"):
        volume_benefit(WATER, charge=Decimal(1), volume=Decimal(1), residents=0,
                       beneficiaries=0, days=1, days_in_period=1)
