"""Emergency credit taken once and repaid by a share of later top-ups; a household's debt
repaid by a top-up; all in the journal, with the relay decisions of the new balance."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from meterline.emergency_credit import (
    EmergencyCreditRefused,
    EmergencyCreditTaken,
    take_emergency_credit,
)
from meterline.ledger import check
from meterline.payments import Payment, receive_many
from meterline.relay import decide_relays
from meterline.topups import top_up
from tests.conftest import unique
from tests.factories import customer, set_balance

WEDNESDAY_11 = datetime(2026, 11, 25, 11, 0, tzinfo=ZoneInfo("Europe/Moscow"))


async def balance(conn: psycopg.AsyncConnection[Any], account: str, provider: str) -> Decimal:
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s "
                             "AND provider_id = %s", (account, provider))
    row = await cur.fetchone()
    assert row is not None
    amount: Decimal = row[0]
    return amount


async def owed(conn: psycopg.AsyncConnection[Any], account: str) -> Decimal:
    cur = await conn.execute("SELECT coalesce(-sum(amount), 0) FROM postings "
                             "WHERE book = 'recovery' AND account_id = %s", (account,))
    row = await cur.fetchone()
    assert row is not None
    amount: Decimal = row[0]
    return amount


async def test_emergency_credit_reconnects_is_taken_once_and_repaid_from_top_ups(
        conn: psycopg.AsyncConnection[Any]) -> None:
    # the seeded cut-off contract: emergency credit 200, 25 % of each top-up repays it
    c = await customer(conn, "10", contract_type="prepay_cutoff")
    await set_balance(conn, c.account_id, c.provider_id, "-3.50")
    async with conn.transaction():
        assert await decide_relays(conn, [c.account_id], now=WEDNESDAY_11) == [
            (c.meter_id, "disconnect")]

    async with conn.transaction():
        credit = await take_emergency_credit(conn, c.account_id)
    assert (credit.amount, credit.balance, credit.owed) == (
        Decimal(200), Decimal("196.5"), Decimal(200))
    assert credit.relay_commands == [(c.meter_id, "connect")]

    with pytest.raises(EmergencyCreditTaken, match="already took emergency credit"):
        async with conn.transaction():
            await take_emergency_credit(conn, c.account_id)

    # a top-up of 100 repays 25 of it; the wallet gets 75
    async with conn.transaction():
        done = await top_up(conn, c.account_id, unique("key"), Decimal(100))
    assert done.balance == Decimal("271.5")
    assert await owed(conn, c.account_id) == Decimal(175)
    # a large one repays no more than is owed
    async with conn.transaction():
        await top_up(conn, c.account_id, unique("key"), Decimal(1000))
    assert await owed(conn, c.account_id) == 0
    assert await balance(conn, c.account_id, c.provider_id) == Decimal("1096.5")
    assert await check(conn, c.account_id) == []

    # repaid: another may be taken once the balance runs out again
    with pytest.raises(EmergencyCreditRefused, match="has run out"):
        async with conn.transaction():
            await take_emergency_credit(conn, c.account_id)
    await set_balance(conn, c.account_id, c.provider_id, "0")
    async with conn.transaction():
        again = await take_emergency_credit(conn, c.account_id)
    assert again.balance == Decimal(200)
    cur = await conn.execute("SELECT key FROM entries WHERE kind = 'emergency_credit' AND "
                             "key LIKE %s ORDER BY id", (f"%:{c.account_id}:%",))
    assert [k for (k,) in await cur.fetchall()] == [
        f"emergency_credit:{c.account_id}:{c.provider_id}:1",
        f"emergency_credit:{c.account_id}:{c.provider_id}:2"]


async def test_emergency_credit_is_refused_where_the_contract_gives_none(
        conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "0")  # the tests' cut at any hour: no emergency credit
    with pytest.raises(EmergencyCreditRefused, match="gives no emergency credit"):
        await take_emergency_credit(conn, c.account_id)
    postpaid = await customer(conn, "0", billing_mode="postpaid", contract_type="household")
    with pytest.raises(EmergencyCreditRefused, match="postpaid"):
        await take_emergency_credit(conn, postpaid.account_id)
    assert await owed(conn, c.account_id) == 0


async def test_a_top_up_repays_a_households_debt(conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "0", contract_type="household")
    await set_balance(conn, c.account_id, c.provider_id, "-120.40")
    async with conn.transaction():
        done = await top_up(conn, c.account_id, unique("key"), Decimal(200))
    # the debt is in the wallet: the top-up pays it off whole, the rest is credit
    assert done.balance == Decimal("79.60")
    assert await owed(conn, c.account_id) == 0
    assert await check(conn, c.account_id) == []


async def test_a_prepaid_payment_repays_emergency_credit_like_a_top_up(
        conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "0", contract_type="prepay_cutoff")
    async with conn.transaction():
        await take_emergency_credit(conn, c.account_id)
    key = unique("payment:online")
    paid = [Payment(key, "online", c.account_id, Decimal("80.00"),
                    datetime(2026, 11, 25, 8, tzinfo=ZoneInfo("UTC")), provider_id=c.provider_id)]
    await receive_many(conn, paid)
    await receive_many(conn, paid)  # delivered again: nothing repaid twice
    assert await owed(conn, c.account_id) == Decimal(180)
    assert await balance(conn, c.account_id, c.provider_id) == Decimal(260)
    assert await check(conn, c.account_id) == []


async def test_two_requests_at_once_give_emergency_credit_once(
        pg_url: str, conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "0", contract_type="prepay_cutoff")
    async with await psycopg.AsyncConnection.connect(pg_url) as first, \
            await psycopg.AsyncConnection.connect(pg_url) as second:
        await take_emergency_credit(first, c.account_id)  # holds the balance until commit

        async def other() -> None:
            async with second.transaction():
                await take_emergency_credit(second, c.account_id)

        racing = asyncio.create_task(other())
        await first.commit()
        with pytest.raises(EmergencyCreditTaken):
            await racing
    assert await owed(conn, c.account_id) == Decimal(200)
    assert await balance(conn, c.account_id, c.provider_id) == Decimal(200)
