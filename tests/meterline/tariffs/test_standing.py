"""Standing charges owed for a day: who takes the service, by which plan version."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from meterline.ledger import check
from meterline.periods import close_period
from meterline.tariffs.choices import choose_plan
from meterline.tariffs.standing import book_standing_charges, due
from meterline.units import Service
from tests.factories import book_customer, customer, provider, stored_book, tariff_book

METERED = """
[[plans]]
code = "metered"
name = "Metered with a daily charge"
service = "electricity"
basis = "kWh"
default = true
[[plans.versions]]
valid_from = 2026-01-01
valid_to = 2027-01-01
price = 5
standing_charge = 3.25
"""


async def test_a_business_plan_s_standing_charge_is_owed_from_its_first_day(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)  # default household-flat has no standing charge
    await choose_plan(conn, made.account_id, "business-tiers",
                      now=datetime(2026, 11, 15, tzinfo=UTC))
    mine = [c for c in await due(conn, date(2026, 11, 30)) if c.account_id == made.account_id]
    assert mine == []
    (owed,) = [c for c in await due(conn, date(2026, 12, 1)) if c.account_id == made.account_id]
    assert (owed.provider_id, owed.service, owed.amount) == (
        made.provider_id, Service.ELECTRICITY, Decimal("25"))


async def test_a_metered_account_owes_from_its_meter_s_installation_while_the_version_runs(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await stored_book(conn, tariff_book(METERED, seller))
    made = await customer(conn, "0", seller=seller,
                          installed_at=datetime(2026, 3, 10, 21, tzinfo=UTC))  # 00:00 Moscow
    owed = {day: [c.amount for c in await due(conn, day) if c.account_id == made.account_id]
            for day in (date(2026, 3, 10), date(2026, 3, 11), date(2026, 12, 31),
                        date(2027, 1, 1))}
    assert owed == {date(2026, 3, 10): [], date(2026, 3, 11): [Decimal("3.25")],
                    date(2026, 12, 31): [Decimal("3.25")], date(2027, 1, 1): []}


async def test_a_service_on_the_account_owes_its_provider_s_default_plan(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await stored_book(conn, tariff_book(METERED.replace("electricity", "maintenance")
                                        .replace('"kWh"', '"m2"'), seller))
    made = await customer(conn, "0", seller=seller,
                          installed_at=datetime(2030, 1, 1, tzinfo=UTC))  # not yet
    await conn.execute("INSERT INTO account_services (account_id, service, provider_id, "
                       "valid_from) VALUES (%s, 'maintenance', %s, '2026-06-01')",
                       (made.account_id, seller.id))
    (owed,) = [c for c in await due(conn, date(2026, 6, 1)) if c.account_id == made.account_id]
    assert (owed.service, owed.amount) == (Service.MAINTENANCE, Decimal("3.25"))


async def test_a_day_is_booked_once_as_one_entry_in_its_period(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn, balance="100")
    await choose_plan(conn, made.account_id, "business-tiers",
                      now=datetime(2026, 11, 15, tzinfo=UTC))
    day = date(2026, 12, 5)
    first = await book_standing_charges(conn, day)
    assert first.charges >= 1 and first.entry_id is not None
    cur = await conn.execute(
        "SELECT amount, period, entry_id FROM standing_charges WHERE account_id = %s",
        (made.account_id,))
    assert await cur.fetchall() == [(Decimal(25), date(2026, 12, 1), first.entry_id)]
    cur = await conn.execute(
        "SELECT e.kind, p.book, p.amount, p.service, p.period FROM postings p "
        "JOIN entries e ON e.id = p.entry_id WHERE p.entry_id = %s AND p.account_id = %s",
        (first.entry_id, made.account_id))
    assert await cur.fetchall() == [("standing_charge", "subscriber", Decimal(-25),
                                     "electricity", date(2026, 12, 1))]
    again = await book_standing_charges(conn, day)
    assert (again.charges, again.entry_id) == (0, None)
    balance = await conn.execute("SELECT amount FROM balances WHERE account_id = %s",
                                 (made.account_id,))
    assert await balance.fetchone() == (Decimal(75),)
    assert await check(conn, made.account_id) == []


async def test_a_day_of_a_closed_period_goes_to_the_next_open_one(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await stored_book(conn, tariff_book(METERED, seller))
    made = await customer(conn, "0", seller=seller,
                          installed_at=datetime(2026, 3, 1, tzinfo=UTC))
    await close_period(conn, seller.id, date(2026, 4, 1))
    await book_standing_charges(conn, date(2026, 4, 30))
    cur = await conn.execute("SELECT period FROM standing_charges WHERE account_id = %s",
                             (made.account_id,))
    assert await cur.fetchall() == [(date(2026, 5, 1),)]


async def test_the_negative_limit_of_the_plan_in_force_is_there_for_sql(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)  # household plans allow -300
    await choose_plan(conn, made.account_id, "business-tiers",  # allows 0
                      now=datetime(2026, 11, 15, tzinfo=UTC))
    limits = [await conn.execute(
        "SELECT tariff_negative_limit(%s, %s, 'electricity', %s)",
        (made.account_id, made.provider_id, day)) for day in (date(2026, 11, 30),
                                                            date(2026, 12, 1))]
    assert [(await c.fetchone()) for c in limits] == [(Decimal(-300),), (Decimal(0),)]
