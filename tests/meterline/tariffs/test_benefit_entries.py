"""Benefits booked as their own ledger lines for a period, from the grants held in it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from meterline.contracts import AccountReadings, Reading
from meterline.ledger import Book, Entry, EntryKind, Posting, check, post
from meterline.tariffs.benefit_entries import BookedBenefit, book_benefits
from meterline.units import Register, Service, Unit, Utility
from rating.ledger import load_tariffs, rate_batch
from tests.conftest import unique
from tests.factories import (
    Customer,
    customer,
    example_book,
    grant_benefit,
    provider,
    stored_book,
    tariff_book,
)

NOVEMBER = date(2026, 11, 1)
MOSCOW = ZoneInfo("Europe/Moscow")


async def heated(conn: psycopg.AsyncConnection[Any], held_from: date) -> Customer:
    """A 54 m2 flat of 3 residents heated by the example heat supplier, 1 beneficiary of its
    veteran_heating benefit (50 % within 18 m2 each) from ``held_from``."""
    seller = provider()
    await stored_book(conn, example_book("teploset", seller))
    made = await customer(conn, "0", seller=seller)
    await grant_benefit(conn, made.account_id, "veteran_heating", "heating", held_from,
                        area="54", residents=3)
    return made


async def charge_heating(conn: psycopg.AsyncConnection[Any], made: Customer,
                         amount: str) -> None:
    """Heating charged for November, as the bill run posts it."""
    await post(conn, [Entry(EntryKind.CHARGE, unique("heating"), (
        Posting(Book.SUBSCRIBER, made.provider_id, -Decimal(amount), account_id=made.account_id,
                service=Service.HEATING, period=NOVEMBER),
        Posting(Book.REVENUE, made.provider_id, Decimal(amount), service=Service.HEATING,
                period=NOVEMBER)))])


def of(booked: list[BookedBenefit], made: Customer) -> list[tuple[Decimal, str]]:
    return [(b.amount, b.action) for b in booked if b.account_id == made.account_id]


async def benefit_postings(conn: psycopg.AsyncConnection[Any],
                           made: Customer) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        """SELECT e.key, e.kind, p.book, p.amount, p.period FROM postings p
             JOIN entries e ON e.id = p.entry_id
            WHERE e.key LIKE %s ORDER BY e.id, p.book""",
        (f"%benefit:{made.account_id}:%",))
    return await cur.fetchall()


async def test_the_worked_example_is_booked_once_and_corrected_by_reversal(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await heated(conn, date(2026, 1, 1))
    await charge_heating(conn, made, "2284.20")  # 54 m2 x 42.30
    assert of(await book_benefits(conn, NOVEMBER), made) == [(Decimal("380.70"), "posted")]
    key = f"benefit:{made.account_id}:{made.provider_id}:heating:2026-11-01:veteran_heating"
    assert await benefit_postings(conn, made) == [
        (key, "benefit", "discounts", Decimal("-380.70"), NOVEMBER),
        (key, "benefit", "subscriber", Decimal("380.70"), NOVEMBER)]
    assert of(await book_benefits(conn, NOVEMBER), made) == [(Decimal("380.70"), "unchanged")]

    await charge_heating(conn, made, "54.00")  # a recalculation: 2,338.20 in all
    assert of(await book_benefits(conn, NOVEMBER), made) == [(Decimal("389.70"), "corrected")]
    postings = await benefit_postings(conn, made)
    assert [(k, kind, book, amount) for k, kind, book, amount, _ in postings[2:]] == [
        (f"reversal:{key}", "reversal", "discounts", Decimal("380.70")),
        (f"reversal:{key}", "reversal", "subscriber", Decimal("-380.70")),
        (f"{key}:r1", "benefit", "discounts", Decimal("-389.70")),
        (f"{key}:r1", "benefit", "subscriber", Decimal("389.70"))]
    assert await check(conn, made.account_id) == []


async def test_two_beneficiaries_of_a_larger_flat_are_capped_at_the_norm_each(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await stored_book(conn, example_book("teploset", seller))
    made = await customer(conn, "0", seller=seller)
    await grant_benefit(conn, made.account_id, "veteran_heating", "heating", date(2026, 1, 1),
                        area="75", residents=3, beneficiaries=2)
    # 75 m2 for 3 residents: 25 m2 each, 18 within the norm; 2 beneficiaries: 36 m2 of 75.
    # Charged 75 x 42.30 = 3,172.50; benefit 50 % x 3,172.50 x 36 / 75 = 761.40
    await charge_heating(conn, made, "3172.50")
    assert of(await book_benefits(conn, NOVEMBER), made) == [(Decimal("761.40"), "posted")]


async def test_a_benefit_starting_mid_month_counts_for_the_days_held(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await heated(conn, date(2026, 11, 16))  # 15 of November's 30 days
    await charge_heating(conn, made, "2284.20")
    assert of(await book_benefits(conn, NOVEMBER), made) == [(Decimal("190.35"), "posted")]


ELECTRIC = """
[[plans]]
code = "flat"
name = "One rate"
service = "electricity"
basis = "kWh"
default = true
[[plans.versions]]
valid_from = 2026-01-01
price = 5

[[benefits]]
code = "half_within_60"
name = "50 % of electricity within 60 kWh each"
service = "electricity"
percent = 50
norm = 60
norm_basis = "kWh"
"""


async def test_a_metered_benefit_starting_mid_month_counts_what_was_used_while_held(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await stored_book(conn, tariff_book(ELECTRIC, seller))
    made = await customer(conn, "0", seller=seller)
    await grant_benefit(conn, made.account_id, "half_within_60", "electricity",
                        date(2026, 11, 16), residents=2)
    at = [datetime(2026, 11, 1, tzinfo=MOSCOW), datetime(2026, 11, 16, tzinfo=MOSCOW),
          datetime(2026, 12, 1, tzinfo=MOSCOW)]
    await rate_batch(conn, [AccountReadings(account=made.account_id, gateway="gw", seq=0,
                                            readings=[
        Reading(meter=made.meter_id, register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                value=Decimal(v), ts=t, provider=seller.id, utility=Utility.ELECTRICITY)
        for t, v in zip(at, ("0", "150", "300"), strict=True)])], await load_tariffs(conn))
    # 150 kWh (750.00) used from the 16th; the norm for 15 of 30 days is 30 kWh a beneficiary,
    # below the 75 kWh share of each of the 2 residents: 30 of 150 kWh are eligible, so
    # 50 % x 750.00 x 30 / 150 = 75.00. The first half of the month counts for nothing.
    assert of(await book_benefits(conn, NOVEMBER), made) == [(Decimal("75.00"), "posted")]
    assert at[1] - at[0] == timedelta(days=15)
