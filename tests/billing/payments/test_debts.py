"""Debt aging per account, provider and service, and the debtors list with its filters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from billing.payments.debts import aging, debtors
from billing.payments.posting import Payment, receive
from tests.conftest import unique
from tests.factories import charge_month, housing_account

D = Decimal
AS_OF = date(2025, 6, 15)


async def test_aging_buckets_by_days_past_the_due_date(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    uk, sbyt = unique("uk"), unique("sbyt")
    region = unique("R")[:16]
    a = await housing_account(conn, {"maintenance": uk, "electricity": sbyt}, region=region)
    for month in range(1, 7):
        await charge_month(conn, a, date(2025, month, 1), {"maintenance": "100.00"})
    await charge_month(conn, a, date(2025, 5, 1), {"electricity": "50.00"})
    await receive(conn, Payment(unique("payment:cash"), "cash", a.account_id, D("50.00"),
                                datetime(2025, 3, 1, 9, tzinfo=UTC), period=date(2025, 1, 1)))
    rows = {r.service: r for r in await aging(conn, AS_OF, account=a.account_id)}
    m = rows["maintenance"]
    # on 2025-06-15: January (due 02-10, 125 days late, 50.00 left) and February (97) are
    # 91+; March (66) and April (36) 31-90; May (5) 0-30; June is not due yet
    assert (m.days_91, m.days_31_90, m.days_0_30, m.current) == (
        D("150.00"), D("200.00"), D("100.00"), D("100.00"))
    assert (m.periods_overdue, m.oldest, m.overdue) == (5, date(2025, 1, 1), D("450.00"))
    assert rows["electricity"].days_0_30 == D("50.00")

    other = await housing_account(conn, {"maintenance": uk}, region=region)
    await charge_month(conn, other, date(2025, 5, 1), {"maintenance": "20.00"})
    listed = await debtors(conn, AS_OF, region=region)
    assert [(d.account_id, d.provider_id, d.overdue) for d in listed] == [
        (a.account_id, uk, D("450.00")), (a.account_id, sbyt, D("50.00")),
        (other.account_id, uk, D("20.00"))]
    assert listed[0].services == ("maintenance",) and listed[0].oldest == date(2025, 1, 1)
    assert [d.account_id for d in await debtors(conn, AS_OF, region=region, provider=sbyt)] \
        == [a.account_id]
    assert [d.overdue for d in await debtors(conn, AS_OF, region=region,
                                             least=D("100"))] == [D("450.00")]
