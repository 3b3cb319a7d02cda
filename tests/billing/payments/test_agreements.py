"""A repayment agreement on the books: while kept, no penalty from the day it was signed;
reviewed against the payments, broken when a part is late, and the penalty comes back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from billing.payments.agreements import review, sign
from billing.payments.instalments import Standing
from billing.payments.posting import Payment, receive
from billing.penalties.journal import explain_account
from billing.penalties.rules import load_rules
from tests.conftest import unique
from tests.factories import charge_month, housing_account

D = Decimal
RULES = load_rules()
JAN = date(2025, 1, 1)


async def penalty_on(conn: psycopg.AsyncConnection[Any], account: str, day: date) -> Decimal:
    return sum((c.total for c in await explain_account(conn, RULES, account, day)), D(0))


async def test_a_kept_agreement_stops_the_penalty_and_a_broken_one_restores_it(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    uk = unique("uk")
    a = await housing_account(conn, {"maintenance": uk})
    await charge_month(conn, a, JAN, {"maintenance": "1000.00"})  # due 2025-02-10
    signed = await sign(conn, a.account_id, uk, D("1000.00"), 2, date(2025, 4, 15),
                        signed_on=date(2025, 4, 1))
    assert [p.amount for p in signed.parts] == [D("500.00"), D("500.00")]
    # kept: days 31-49 (2025-03-13..03-31, 19 d) only: 1000 × 19 × 9.5 % / 300 = 6.0166 → 6.02
    assert await penalty_on(conn, a.account_id, date(2025, 4, 30)) == D("6.02")
    await receive(conn, Payment(unique("payment:cash"), "cash", a.account_id, D("500.00"),
                                datetime(2025, 4, 10, 9, tzinfo=UTC), period=JAN))
    assert (await review(conn, date(2025, 4, 20)))[Standing.KEPT] >= 1
    # the second part was due on 2025-05-15 and not paid: broken
    await review(conn, date(2025, 5, 20))
    cur = await conn.execute("SELECT status FROM instalment_agreements WHERE id = %s",
                             (signed.id,))
    assert await cur.fetchone() == ("broken",)
    # the penalty is as if there had been no agreement:
    #   500.00 paid 2025-04-10: days 31-59 (29 d) 500 × 29 × 9.5 % / 300 = 4.5916 → 4.59
    #   500.00 open to 2025-05-20: days 31-90 (60 d) 500 × 60 × 9.5 % / 300 = 9.50;
    #                             days 91-99 (9 d) 500 × 9 × 9.5 % / 130 = 3.2884 → 3.29
    assert await penalty_on(conn, a.account_id, date(2025, 5, 20)) == D("17.38")
