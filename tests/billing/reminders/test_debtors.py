"""Debtors by DOMAIN §7 (decree 354 p. 117 (а)): more than two months of the service's charge
computed by the norm, whatever the meters show; the average of the charged months where no
norm gives one. Worked by hand from the town's electricity norm and price."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from billing.reminders.debtors import DebtorRule, find_debtors
from meterline.payments import Payment, receive
from meterline.units import Service
from tests.conftest import unique
from tests.factories import HousingAccount, charge_month, housing, housing_account

MONTHS = [date(2026, m, 1) for m in range(1, 5)]  # January..April, all overdue on 20 May
TODAY = datetime(2026, 5, 20, 9, tzinfo=UTC)


async def test_debt_is_measured_against_two_months_by_the_norm_not_by_the_meter(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    # the town's electricity: 110 kWh per registered resident a month at 6.83 roubles
    house = await housing(conn, flats=[("50", 2), ("30", 1)],
                          services=[Service.ELECTRICITY], metered=())
    seller = house.providers[Service.ELECTRICITY]
    thrifty, heavy = (HousingAccount(a, {"electricity": seller}) for a in house.accounts)
    for month in MONTHS:
        await charge_month(conn, thrifty, month, {"electricity": "400.00"})
        await charge_month(conn, heavy, month, {"electricity": "1000.00"})
    # heavy paid January, February and 400.00 of March: owes 600.00 + 1,000.00
    await receive(conn, Payment(unique("payment:cash"), "cash", heavy.account_id,
                                Decimal("2400.00"), datetime(2026, 5, 5, 9, tzinfo=UTC)))

    found = {d.account_id: d for d in await find_debtors(conn, TODAY,
                                                         DebtorRule(provider=seller))}
    # thrifty, 2 residents: a month by the norm is 2 × 110 × 6.83 = 1,502.60; it owes
    # 1,600.00, less than 3,005.20: not a debtor, though it owes four months of its meter
    assert thrifty.account_id not in found
    # heavy, 1 resident: a month by the norm is 751.30; 1,600.00 > 1,502.60: a debtor, though
    # it owes less than two of its own months (2,000.00)
    d = found[heavy.account_id]
    assert (d.overdue, d.monthly, d.basis) == (Decimal("1600.00"), Decimal("751.30"), "norm")


async def test_without_a_norm_the_average_of_the_charged_months_counts(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    uk = unique("uk")
    # maintenance has no consumption norm; this account is outside the housing register
    acc = await housing_account(conn, {"maintenance": uk})
    for month, amount in zip(MONTHS, ("900.00", "1100.00", "1000.00", "1000.00"), strict=True):
        await charge_month(conn, acc, month, {"maintenance": amount})
    (d,) = await find_debtors(conn, TODAY, DebtorRule(provider=uk))
    assert (d.overdue, d.monthly, d.basis) == (Decimal("4000.00"), Decimal("1000.00"),
                                               "average")
    assert await find_debtors(conn, TODAY, DebtorRule(months=Decimal(4), provider=uk)) == []
