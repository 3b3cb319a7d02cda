"""Standing charges owed for a day: who takes the service, by which plan version."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from meterline.tariffs.choices import choose_plan
from meterline.tariffs.standing import due
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
