"""An account's plan among its provider's plans, changeable from the next billing period."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest

from meterline.errors import Invalid, NotFound
from meterline.tariffs.choices import account_plans, assign_plan, choose_plan
from meterline.tariffs.model import ConsumerGroup
from meterline.units import Service
from tests.factories import book_customer, customer, provider, stored_book, tariff_book

NOV_15 = datetime(2026, 11, 15, 12, tzinfo=UTC)


async def test_an_account_that_chose_nothing_is_on_its_provider_s_default_plan(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    current, pending = await account_plans(conn, made.account_id, NOV_15)
    assert [(p.service, p.plan_code, p.chosen, p.since) for p in current] == [
        (Service.ELECTRICITY, "household-flat", False, None)]
    assert pending == []


async def test_a_choice_applies_from_the_next_period_and_may_be_changed_until_then(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    done = await choose_plan(conn, made.account_id, "household-3zone", now=NOV_15)
    assert (done.choice.plan_code, done.choice.since, done.choice.consumer_group) == (
        "household-3zone", date(2026, 12, 1), ConsumerGroup.URBAN)
    assert done.previous is not None and done.previous.plan_code == "household-flat"
    current, pending = await account_plans(conn, made.account_id, NOV_15)
    assert [p.plan_code for p in current] == ["household-flat"]
    assert [(p.plan_code, p.since, p.chosen) for p in pending] == [
        ("household-3zone", date(2026, 12, 1), True)]

    await choose_plan(conn, made.account_id, "household-2zone", now=NOV_15,
                      consumer_group=ConsumerGroup.ELECTRIC_STOVE)
    _, pending = await account_plans(conn, made.account_id, NOV_15)
    assert [(p.plan_code, p.consumer_group) for p in pending] == [
        ("household-2zone", ConsumerGroup.ELECTRIC_STOVE)]

    # in December the choice is in force; a new one waits for January, keeping the group
    december = datetime(2026, 12, 3, tzinfo=UTC)
    current, _ = await account_plans(conn, made.account_id, december)
    assert [(p.plan_code, p.since) for p in current] == [("household-2zone", date(2026, 12, 1))]
    later = await choose_plan(conn, made.account_id, "household-3zone", now=december)
    assert (later.choice.since, later.choice.consumer_group) == (
        date(2027, 1, 1), ConsumerGroup.ELECTRIC_STOVE)
    # choosing the plan in force again cancels the pending change
    await choose_plan(conn, made.account_id, "household-2zone", now=december)
    assert (await account_plans(conn, made.account_id, december))[1] == []


async def test_the_next_period_starts_in_the_account_s_own_time_zone(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    await conn.execute("UPDATE addresses SET time_zone = 'Asia/Vladivostok' WHERE id = "
                       "(SELECT address_id FROM accounts WHERE id = %s)", (made.account_id,))
    # 15:00 UTC on November 30 is already December 1 (01:00) in Vladivostok
    done = await choose_plan(conn, made.account_id, "household-3zone",
                             now=datetime(2026, 11, 30, 15, tzinfo=UTC))
    assert done.choice.since == date(2027, 1, 1)


async def test_what_cannot_be_chosen_is_refused_with_the_field_named(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    with pytest.raises(NotFound):
        await choose_plan(conn, "NO-SUCH-ACCOUNT", "household-3zone", now=NOV_15)
    with pytest.raises(Invalid, match="no plan night-owl") as refused:
        await choose_plan(conn, made.account_id, "night-owl", now=NOV_15)
    assert refused.value.field == ["body", "plan"]
    stranger = provider()
    with pytest.raises(Invalid, match=f"does not buy from provider {stranger.id}") as refused:
        await choose_plan(conn, made.account_id, "household-3zone", provider_id=stranger.id,
                          now=NOV_15)
    assert refused.value.field == ["body", "provider_id"]


async def test_a_plan_withdrawn_before_the_next_period_cannot_be_chosen(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await stored_book(conn, tariff_book("""
[[plans]]
code = "old"
name = "Withdrawn at the end of November"
service = "electricity"
basis = "kWh"
[[plans.versions]]
valid_from = 2026-01-01
valid_to = 2026-12-01
price = 5
""", seller))
    made = await customer(conn, "0", seller=seller)
    with pytest.raises(Invalid, match="plan old has no tariff in force from 2026-12-01"):
        await choose_plan(conn, made.account_id, "old", now=NOV_15)


async def test_an_operator_assigns_a_plan_from_a_given_day(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    await assign_plan(conn, made.account_id, made.provider_id, "household-3zone",
                      date(2026, 11, 10), ConsumerGroup.RURAL)
    await assign_plan(conn, made.account_id, made.provider_id, "household-3zone",
                      date(2026, 11, 10), ConsumerGroup.RURAL)  # again: nothing new
    current, _ = await account_plans(conn, made.account_id, NOV_15)
    assert [(p.plan_code, p.since, p.consumer_group) for p in current] == [
        ("household-3zone", date(2026, 11, 10), ConsumerGroup.RURAL)]
    with pytest.raises(Invalid, match="has no plan night-owl"):
        await assign_plan(conn, made.account_id, made.provider_id, "night-owl",
                          date(2026, 11, 10))
