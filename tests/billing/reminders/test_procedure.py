"""The statutory sequence (decree 354 pp. 117-119): a household is never cut before its notice
periods ran out, never for heating or cold water in an apartment building."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.reminders.procedure import (
    Policy,
    Procedure,
    Situation,
    Stage,
    Step,
    Terms,
    earliest_restriction,
    next_step,
)

DELIVERED = datetime(2025, 3, 3, 10, tzinfo=UTC)
STATUTORY = Terms()


def at(days: float) -> datetime:
    return DELIVERED + timedelta(days=days)


def test_restriction_only_20_days_after_delivery_and_suspension_10_days_after_it() -> None:
    sent_not_delivered = Procedure("electricity", Stage.NOTICE)
    assert next_step(sent_not_delivered, Situation(at(60), owes=True), STATUTORY) is None
    delivered = Procedure("electricity", Stage.NOTICE, notice_delivered_at=DELIVERED)
    assert next_step(delivered, Situation(at(19.99), owes=True), STATUTORY) is None
    assert next_step(delivered, Situation(at(20), owes=True), STATUTORY) is Step.RESTRICT
    assert earliest_restriction(delivered, STATUTORY) == at(20).date()
    restricted = Procedure("electricity", Stage.RESTRICTED, DELIVERED, restricted_at=at(21))
    assert next_step(restricted, Situation(at(30.99), owes=True), STATUTORY) is None
    assert next_step(restricted, Situation(at(31), owes=True), STATUTORY) is Step.SUSPEND


@pytest.mark.parametrize(("service", "apartment_building"), [
    ("heating", True), ("heating", False), ("cold_water", True)])
def test_heating_and_cold_water_in_apartment_buildings_are_never_restricted(
    service: str, apartment_building: bool,
) -> None:
    p = Procedure(service, Stage.NOTICE, notice_delivered_at=DELIVERED)
    situation = Situation(at(400), owes=True, apartment_building=apartment_building)
    assert next_step(p, situation, STATUTORY) is None


def test_cold_water_in_a_private_house_may_be_restricted() -> None:
    p = Procedure("cold_water", Stage.NOTICE, notice_delivered_at=DELIVERED)
    assert next_step(p, Situation(at(20), owes=True, apartment_building=False),
                     STATUTORY) is Step.RESTRICT


def test_paying_or_keeping_an_agreement_closes_it_and_a_moratorium_holds_it() -> None:
    p = Procedure("electricity", Stage.RESTRICTED, DELIVERED, restricted_at=at(21))
    assert next_step(p, Situation(at(40), owes=False), STATUTORY) is Step.CLOSE
    assert next_step(p, Situation(at(40), owes=True, agreement_kept=True),
                     STATUTORY) is Step.CLOSE
    assert next_step(p, Situation(at(40), owes=True, restrictions_barred=True),
                     STATUTORY) is None
    assert next_step(Procedure("gas", Stage.CLOSED), Situation(at(40), owes=True),
                     STATUTORY) is None


def test_a_business_contract_restricts_after_its_notice_period_and_prepaid_cutoff_has_none(
) -> None:
    business = Terms.of(Policy.NOTICE_THEN_RESTRICT)
    p = Procedure("electricity", Stage.NOTICE, notice_delivered_at=DELIVERED)
    assert next_step(p, Situation(at(9), owes=True), business) is None
    assert next_step(p, Situation(at(10), owes=True), business) is Step.RESTRICT
    restricted = Procedure("electricity", Stage.RESTRICTED, DELIVERED, restricted_at=at(10))
    assert next_step(restricted, Situation(at(400), owes=True), business) is None
    assert next_step(p, Situation(at(1), owes=True), Terms.of(Policy.PREPAY_CUTOFF)) is Step.CLOSE
