"""Payments posted to the journal: one entry per payment on its natural key, split between
providers, services and periods as allocation says, against clearing per provider."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from billing.payments.allocation import Item
from billing.payments.posting import Payment, receive, receive_many
from meterline.errors import Conflict, Invalid
from meterline.ledger import check
from tests.conftest import unique
from tests.factories import HousingAccount, charge_month, customer, housing_account

D = Decimal
PAID = datetime(2025, 3, 5, 7, tzinfo=UTC)  # 10:00 in Moscow
JAN, FEB = date(2025, 1, 1), date(2025, 2, 1)


async def postings(conn: psycopg.AsyncConnection[Any], key: str) -> set[tuple[Any, ...]]:
    cur = await conn.execute(
        """SELECT p.book, p.provider_id, p.service, p.period, p.amount
             FROM postings p JOIN entries e ON e.id = p.entry_id WHERE e.key = %s""", (key,))
    return {(b, p, s, d, a) for b, p, s, d, a in await cur.fetchall()}


async def balances(conn: psycopg.AsyncConnection[Any], account: str) -> dict[str, Decimal]:
    cur = await conn.execute("SELECT provider_id, amount FROM balances WHERE account_id = %s",
                             (account,))
    return {p: a for p, a in await cur.fetchall()}


async def billed(conn: psycopg.AsyncConnection[Any]) -> HousingAccount:
    account = await housing_account(conn)
    await charge_month(conn, account, JAN, {"maintenance": "500.00", "electricity": "300.00",
                                            "cold_water": "200.00"})
    await charge_month(conn, account, FEB, {"maintenance": "500.00", "electricity": "250.00",
                                            "cold_water": "250.00"})
    return account


async def test_a_payment_is_one_entry_split_over_the_earliest_period_then_the_next(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await billed(conn)
    key = unique("payment:online")
    # 1,500.00: January whole (1,000.00), then 500.00 of February's 1,000.00 in proportion
    # 500 : 250 : 250 = 250.00 + 125.00 + 125.00
    done = await receive(conn, Payment(key, "online", a.account_id, D("1500.00"), PAID))
    assert done.new
    uk, sbyt, voda = a.provider("maintenance"), a.provider("electricity"), \
        a.provider("cold_water")
    assert await postings(conn, key) == {
        ("subscriber", uk, "maintenance", JAN, D("500.00")),
        ("subscriber", sbyt, "electricity", JAN, D("300.00")),
        ("subscriber", voda, "cold_water", JAN, D("200.00")),
        ("subscriber", uk, "maintenance", FEB, D("250.00")),
        ("subscriber", sbyt, "electricity", FEB, D("125.00")),
        ("subscriber", voda, "cold_water", FEB, D("125.00")),
        ("clearing", uk, None, None, D("-750.00")),
        ("clearing", sbyt, None, None, D("-425.00")),
        ("clearing", voda, None, None, D("-325.00")),
    }
    assert await balances(conn, a.account_id) == {uk: D("-250.00"), sbyt: D("-125.00"),
                                                  voda: D("-125.00")}
    assert await check(conn, a.account_id) == []

    # the same payment again moves nothing; the same key for another amount is refused
    again = await receive(conn, Payment(key, "online", a.account_id, D("1500.00"), PAID))
    assert not again.new and again.entry_id == done.entry_id
    assert sum(s.amount for s in again.shares) == D("1500.00")
    with pytest.raises(Conflict, match="received before"):
        await receive(conn, Payment(key, "online", a.account_id, D("15.00"), PAID))
    assert await balances(conn, a.account_id) == {uk: D("-250.00"), sbyt: D("-125.00"),
                                                  voda: D("-125.00")}


async def test_a_named_period_an_itemisation_and_an_advance(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await billed(conn)
    uk, sbyt = a.provider("maintenance"), a.provider("electricity")
    named = unique("payment:cash")
    await receive(conn, Payment(named, "cash", a.account_id, D("1000.00"), PAID, period=FEB))
    assert {(p, d) for b, p, s, d, _ in await postings(conn, named) if b == "subscriber"} == {
        (uk, FEB), (sbyt, FEB), (a.provider("cold_water"), FEB)}
    itemised = unique("payment:online")
    # 400.00 for electricity only: January's 300.00, then 100.00 ahead for March
    await receive(conn, Payment(itemised, "online", a.account_id, D("400.00"), PAID,
                                items=[Item("electricity", D("400.00"))]))
    assert {(s, d, amount) for b, _, s, d, amount in await postings(conn, itemised)
            if b == "subscriber"} == {("electricity", JAN, D("300.00")),
                                      ("electricity", date(2025, 3, 1), D("100.00"))}


async def test_a_prepaid_top_up_naming_its_provider_credits_that_wallet(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    c = await customer(conn, "10.00")
    key = unique("payment:online")
    await receive(conn, Payment(key, "online", c.account_id, D("250.00"), PAID,
                                provider_id=c.provider_id))
    assert await postings(conn, key) == {
        ("subscriber", c.provider_id, None, None, D("250.00")),
        ("clearing", c.provider_id, None, None, D("-250.00"))}
    assert (await balances(conn, c.account_id))[c.provider_id] == D("260.00")
    with pytest.raises(Invalid, match="buys nothing from nobody"):
        await receive(conn, Payment(unique("payment:online"), "online", c.account_id,
                                    D("1.00"), PAID, provider_id="nobody"))


async def test_several_payments_of_one_account_in_a_batch_see_each_other(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await billed(conn)
    first, second = unique("payment:registry"), unique("payment:registry")
    later = PAID.replace(hour=8)
    await receive_many(conn, [
        Payment(second, "registry", a.account_id, D("1000.00"), later),
        Payment(first, "registry", a.account_id, D("1000.00"), PAID),
    ])
    # the earlier one pays January, the later one February
    assert {d for b, *_, d, _ in await postings(conn, first) if b == "subscriber"} == {JAN}
    assert {d for b, *_, d, _ in await postings(conn, second) if b == "subscriber"} == {FEB}
    assert set((await balances(conn, a.account_id)).values()) == {D(0)}
