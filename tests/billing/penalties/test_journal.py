"""Penalties on the journal's debts: accrued as ledger lines once per day, the difference each
day, paid by a payment after the periods; explained by `meterline penalties explain`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from billing.penalties.journal import accrue
from billing.penalties.rules import load_rules
from meterline.cli import app
from meterline.ledger import check
from meterline.payments import Payment, receive
from meterline.settings import get_settings
from tests.conftest import unique
from tests.factories import HousingAccount, charge_month, housing_account

RULES = load_rules()
D = Decimal
JAN = date(2025, 1, 1)


@pytest.fixture(autouse=True)
def database(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("METERLINE_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def late_payer(conn: psycopg.AsyncConnection[Any]) -> HousingAccount:
    """Maintenance 1,000.00 for January 2025 (due 2025-02-10); 400.00 paid on 2025-03-20."""
    a = await housing_account(conn, {"maintenance": unique("uk")})
    await charge_month(conn, a, JAN, {"maintenance": "1000.00"})
    await receive(conn, Payment(unique("payment:cash"), "cash", a.account_id, D("400.00"),
                                datetime(2025, 3, 20, 9, tzinfo=UTC), period=JAN))
    return a


async def penalty_postings(conn: psycopg.AsyncConnection[Any], account: str) -> list[Any]:
    cur = await conn.execute(
        """SELECT e.key, p.service, p.period, p.amount FROM postings p
             JOIN entries e ON e.id = p.entry_id
            WHERE p.account_id = %s AND e.kind = 'penalty' ORDER BY e.id""", (account,))
    return await cur.fetchall()


async def test_accrued_once_a_day_as_the_difference_and_paid_after_the_periods(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await late_payer(conn)
    # as of 2025-05-15 (key rate 21 %, capped at 9.5 %):
    #   400.00 paid on 2025-03-20: days 31-38 (8 d) 400 × 8 × 9.5 % / 300 = 1.0133 → 1.01
    #   600.00 open: days 31-90 (60 d) 600 × 60 × 9.5 % / 300 = 11.40;
    #                days 91-94 (4 d) 600 × 4 × 9.5 % / 130 = 1.7538 → 1.75     total 14.16
    may15 = await accrue(conn, RULES, date(2025, 5, 15), account=a.account_id)
    assert (may15.charges, may15.amount) == (1, D("14.16"))
    again = await accrue(conn, RULES, date(2025, 5, 15), account=a.account_id)
    assert (again.charges, again.amount) == (0, D(0))
    # a day later days 91-95 (5 d): 600 × 5 × 9.5 % / 130 = 2.1923 → 2.19: 0.44 more
    may16 = await accrue(conn, RULES, date(2025, 5, 16), account=a.account_id)
    assert may16.amount == D("0.44")
    assert [(s, p, amount) for _, s, p, amount in await penalty_postings(conn, a.account_id)] \
        == [("maintenance", None, D("-14.16")), ("maintenance", None, D("-0.44"))]
    # the register keeps the month's last accrual of the charge
    assert await register(conn, a.account_id) == [
        (date(2025, 5, 1), date(2025, 5, 16), D("600.00"), D("14.60"))]

    # paying 614.60: January's 600.00, then the penalties 14.60; nothing owed after
    key = unique("payment:online")
    await receive(conn, Payment(key, "online", a.account_id, D("614.60"),
                                datetime(2025, 5, 16, 9, tzinfo=UTC)))
    cur = await conn.execute(
        """SELECT p.period, p.amount FROM postings p JOIN entries e ON e.id = p.entry_id
            WHERE e.key = %s AND p.book = 'subscriber' ORDER BY p.amount""", (key,))
    assert await cur.fetchall() == [(None, D("14.60")), (JAN, D("600.00"))]
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s",
                             (a.account_id,))
    assert await cur.fetchone() == (D(0),)
    assert await check(conn, a.account_id) == []
    # paid off: a later accrual changes nothing (the paid part's penalty is fixed)
    june = await accrue(conn, RULES, date(2025, 6, 30), account=a.account_id)
    assert june.amount == D(0)


async def register(conn: psycopg.AsyncConnection[Any], account: str) -> list[Any]:
    cur = await conn.execute(
        "SELECT month, as_of, principal, total FROM penalty_accruals WHERE account_id = %s "
        "ORDER BY month", (account,))
    return await cur.fetchall()


async def test_the_register_keeps_a_row_per_charge_and_month_moved_by_each_accrual(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await late_payer(conn)
    for day in (date(2025, 5, 15), date(2025, 5, 16), date(2025, 6, 2)):
        await accrue(conn, RULES, day, account=a.account_id)
    # as of 2025-06-02 (delay day 112): 1.01 on the part paid, 11.40 for days 31-90 and
    # days 91-112 (22 d) 600 × 22 × 9.5 % / 130 = 9.6462 → 9.65: 22.06
    assert await register(conn, a.account_id) == [
        (date(2025, 5, 1), date(2025, 5, 16), D("600.00"), D("14.60")),
        (date(2025, 6, 1), date(2025, 6, 2), D("600.00"), D("22.06"))]
    # an earlier day accrued again moves nothing: the charge's latest total stands
    earlier = await accrue(conn, RULES, date(2025, 5, 20), account=a.account_id)
    assert (earlier.charges, earlier.amount) == (0, D(0))
    assert [amount for *_, amount in await penalty_postings(conn, a.account_id)] \
        == [D("-14.16"), D("-0.44"), D("-7.46")]
    assert await check(conn, a.account_id) == []


async def test_the_explanation_of_an_account_adds_up_to_its_accrual(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await late_payer(conn)
    result = await asyncio.to_thread(CliRunner().invoke, app, [
        "penalties", "explain", a.account_id, "--as-of", "2025-05-15"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Penalties on account {a.account_id} as of 2025-05-15" in out
    assert "maintenance · 2025-01: charged 1,000.00, due 2025-02-10; ЖК РФ ст. 155 ч. 14" in out
    assert "part of 400.00 paid on 2025-03-20" in out and "400.00 × 8 × 9.5% / 300" in out
    assert "600.00 × 4 × 9.5% / 130" in out
    assert "Total penalty: 14.16" in out
    missing = await asyncio.to_thread(CliRunner().invoke, app, ["penalties", "explain", "NOPE"])
    assert missing.exit_code == 2 and "no account NOPE" in missing.stderr
