"""The disconnection policy (meterline/relay.py) on the real database: a cut waits for the
friendly hours and is made when they open; a household at zero is warned and noticed, never
cut at once; warnings are told once per crossing; public holidays and regional overrides
move a cut. Times are given to the kernel, so nothing waits for the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from meterline.friendly_hours import Calendar, FriendlyHours
from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.relay import decide_relays, fire_due
from meterline.tariffs.choices import choose_plan
from tests.conftest import unique
from tests.factories import (
    Customer,
    customer,
    delivered_notice,
    disconnection_policy,
    example_book,
    provider,
    set_balance,
    stored_book,
)

MSK = ZoneInfo("Europe/Moscow")


def msk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MSK)


async def relay_state(conn: psycopg.AsyncConnection[Any], meter: str) -> str:
    cur = await conn.execute("SELECT relay_state FROM meters WHERE id = %s", (meter,))
    row = await cur.fetchone()
    assert row is not None
    state: str = row[0]
    return state


async def commands(conn: psycopg.AsyncConnection[Any], meter: str) -> list[str]:
    cur = await conn.execute(
        "SELECT action FROM relay_commands WHERE meter_id = %s ORDER BY seq", (meter,))
    return [a for (a,) in await cur.fetchall()]


async def events(conn: psycopg.AsyncConnection[Any], account: str) -> list[tuple[str, Any]]:
    cur = await conn.execute(
        "SELECT kind, payload FROM events WHERE account_id = %s ORDER BY id", (account,))
    return [(k, p) for k, p in await cur.fetchall()]


async def due(conn: psycopg.AsyncConnection[Any], c: Customer) -> datetime | None:
    cur = await conn.execute(
        "SELECT not_before FROM disconnections_due WHERE account_id = %s AND provider_id = %s",
        (c.account_id, c.provider_id))
    row = await cur.fetchone()
    return None if row is None else row[0]


async def fired(conn: psycopg.AsyncConnection[Any], c: Customer,
                now: datetime) -> list[tuple[str, str]]:
    """What the clock's pass at ``now`` commanded for this customer's meters (the pass
    decides for every account of the shared database whose cut is due)."""
    return [x for x in await fire_due(conn, now=now) if x[0] in c.meter_ids]


async def decide(conn: psycopg.AsyncConnection[Any], c: Customer,
                 now: datetime) -> list[tuple[str, str]]:
    async with conn.transaction():
        return await decide_relays(conn, [c.account_id], now=now)


async def test_a_balance_running_out_at_2330_on_a_friday_is_cut_when_the_window_opens(
        conn: psycopg.AsyncConnection[Any]) -> None:
    # the seeded cut-off contract: working days 09:00-16:00 in the account's time zone
    c = await customer(conn, "20", contract_type="prepay_cutoff")
    await set_balance(conn, c.account_id, c.provider_id, "-0.40")
    friday = msk(2026, 11, 27, 23, 30)

    assert await decide(conn, c, friday) == []
    assert await relay_state(conn, c.meter_id) == "connected"
    monday = msk(2026, 11, 30, 9, 0)
    assert await due(conn, c) == monday
    (ahead,) = [p for k, p in await events(conn, c.account_id) if k == "disconnection_ahead"]
    assert ahead["disconnect_on"] == "2026-11-30" and ahead["balance"] == "-0.40"

    # time passes: Saturday noon and Monday 08:59 are not in the window
    for when in (msk(2026, 11, 28, 12, 0), msk(2026, 11, 30, 8, 59)):
        assert await fired(conn, c, when) == []
    assert await commands(conn, c.meter_id) == []

    assert await fired(conn, c, monday) == [(c.meter_id, "disconnect")]
    assert await relay_state(conn, c.meter_id) == "disconnected"
    assert await commands(conn, c.meter_id) == ["disconnect"]
    assert await due(conn, c) is None
    assert [k for k, _ in await events(conn, c.account_id)].count("disconnected") == 1
    assert await fired(conn, c, monday + timedelta(minutes=5)) == []

    # money back: reconnected at once, whatever the hour
    await set_balance(conn, c.account_id, c.provider_id, "50")
    assert await decide(conn, c, msk(2026, 12, 5, 2, 0)) == [(c.meter_id, "connect")]
    assert await commands(conn, c.meter_id) == ["disconnect", "connect"]


async def test_a_waiting_cut_is_dropped_when_the_balance_is_topped_up(
        conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "20", contract_type="prepay_cutoff")
    await set_balance(conn, c.account_id, c.provider_id, "-1")
    assert await decide(conn, c, msk(2026, 11, 27, 23, 30)) == []
    assert await due(conn, c) is not None
    await set_balance(conn, c.account_id, c.provider_id, "100")
    assert await decide(conn, c, msk(2026, 11, 28, 10, 0)) == []
    assert await due(conn, c) is None
    assert await fired(conn, c, msk(2026, 11, 30, 9, 0)) == []
    assert await commands(conn, c.meter_id) == []


async def test_within_the_window_a_cut_off_contract_is_cut_at_once(
        conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "20", contract_type="prepay_cutoff")
    await set_balance(conn, c.account_id, c.provider_id, "0")
    assert await decide(conn, c, msk(2026, 11, 25, 11, 0)) == [(c.meter_id, "disconnect")]
    assert await due(conn, c) is None
    kinds = [k for k, _ in await events(conn, c.account_id)]
    assert "disconnection_ahead" not in kinds and kinds.count("disconnected") == 1


async def test_a_household_at_zero_is_warned_and_noticed_never_cut_at_once(
        conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "150", contract_type="household")
    await set_balance(conn, c.account_id, c.provider_id, "0")
    tuesday = msk(2026, 11, 24, 11, 0)  # a working day, inside the friendly hours

    assert await decide(conn, c, tuesday) == []
    assert await relay_state(conn, c.meter_id) == "connected"
    told = await events(conn, c.account_id)
    assert [k for k, _ in told] == ["low_balance", "disconnection_ahead"]
    notice = told[1][1]
    # restriction no earlier than 20 days after the notice (decree 354 p. 119)
    assert notice["rule"] == "statutory" and notice["disconnect_on"] == "2026-12-14"

    # the next days: still no cut, nothing told twice
    for days in (1, 10, 19):
        assert await decide(conn, c, tuesday + timedelta(days=days)) == []
        assert await fired(conn, c, tuesday + timedelta(days=days)) == []
    assert await relay_state(conn, c.meter_id) == "connected"
    assert len(await events(conn, c.account_id)) == 2

    # 20 days on, still unpaid, but the notice has not reached the subscriber: no cut
    assert await fired(conn, c, msk(2026, 12, 14, 11, 0)) == []
    # delivered the next morning: restricted 20 days after the delivery, in friendly hours
    await delivered_notice(conn, c.account_id, msk(2026, 11, 25, 10, 0))
    assert await fired(conn, c, msk(2026, 12, 15, 9, 59)) == []
    assert await fired(conn, c, msk(2026, 12, 15, 10, 0)) == [(c.meter_id, "disconnect")]


async def test_a_household_heat_meter_is_never_restricted(
        conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "150", contract_type="household")
    await conn.execute("UPDATE meters SET utility = 'heat' WHERE id = %s", (c.meter_id,))
    await set_balance(conn, c.account_id, c.provider_id, "-500")
    start = msk(2026, 11, 24, 11, 0)
    for days in (0, 21, 60):
        assert await decide(conn, c, start + timedelta(days=days)) == []
        assert await fired(conn, c, start + timedelta(days=days)) == []
    assert await due(conn, c) is None
    told = await events(conn, c.account_id)
    assert [k for k, _ in told] == ["low_balance", "low_balance"]
    assert told[1][1]["restriction"] is False


async def spend(conn: psycopg.AsyncConnection[Any], c: Customer, per_day: str,
                days: int, until: datetime) -> None:
    """Daily standing charges of ``per_day`` booked on each of the ``days`` days before."""
    amount = Decimal(per_day)
    await post(conn, [
        Entry(EntryKind.STANDING_CHARGE, unique("standing"), (
            Posting(Book.SUBSCRIBER, c.provider_id, -amount, account_id=c.account_id),
            Posting(Book.REVENUE, c.provider_id, amount)),
            booked_at=until - timedelta(days=n + 1))
        for n in range(days)])


async def test_thresholds_and_the_credit_days_forecast_are_told_once_per_crossing(
        conn: psycopg.AsyncConnection[Any]) -> None:
    code = await disconnection_policy(conn, rule="prepay_cutoff", low_balance=[100, 30],
                                      credit_days=3, forecast_days=7)
    c = await customer(conn, "1000", contract_type=code)
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    await spend(conn, c, "20", 7, now)  # 20 a day for a week: the forecast's average

    async def told() -> list[tuple[str, Any]]:
        return await events(conn, c.account_id)

    await set_balance(conn, c.account_id, c.provider_id, "90")  # 4.5 days left
    await decide(conn, c, now)
    await decide(conn, c, now + timedelta(minutes=1))
    ((kind, low),) = await told()
    assert kind == "low_balance" and low["threshold"] == "100.00"
    assert low["days_left"] == "4.5"

    await set_balance(conn, c.account_id, c.provider_id, "50")  # 2.5 days left
    await decide(conn, c, now)
    await decide(conn, c, now)
    assert [(k, p["days_left"]) for k, p in (await told())[1:]] == [("credit_days", "2.5")]

    await set_balance(conn, c.account_id, c.provider_id, "20")  # below 30
    await decide(conn, c, now)
    assert [(k, p.get("threshold")) for k, p in (await told())[2:]] == [("low_balance", "30.00")]

    # topped up above every threshold, then down again: each crossing told once more
    await set_balance(conn, c.account_id, c.provider_id, "500")
    await decide(conn, c, now)
    assert len(await told()) == 3
    await set_balance(conn, c.account_id, c.provider_id, "95")
    await decide(conn, c, now)
    await decide(conn, c, now)
    assert [k for k, _ in (await told())[3:]] == ["low_balance"]
    cur = await conn.execute("SELECT count(DISTINCT key) FROM events WHERE account_id = %s",
                             (c.account_id,))
    assert (await cur.fetchone()) == (4,)


async def test_a_public_holiday_and_a_regional_day_off_move_a_cut(
        conn: psycopg.AsyncConnection[Any]) -> None:
    c = await customer(conn, "20", contract_type="prepay_cutoff")
    region = unique("R")
    await conn.execute(
        "UPDATE addresses SET region = %s WHERE id = "
        "(SELECT address_id FROM accounts WHERE id = %s)", (region, c.account_id))
    await set_balance(conn, c.account_id, c.provider_id, "-1")
    # Tuesday 3 November 2026 in the evening; the 4th is Unity Day (the holidays library)
    await decide(conn, c, msk(2026, 11, 3, 20, 0))
    assert await due(conn, c) == msk(2026, 11, 5, 9, 0)

    # the region makes the 5th a day off too (data): the cut moves to Friday
    await conn.execute("INSERT INTO holiday_overrides (region, day, day_off, reason) "
                       "VALUES (%s, '2026-11-05', true, 'regional holiday')", (region,))
    assert await fired(conn, c, msk(2026, 11, 5, 9, 0)) == []
    assert await due(conn, c) == msk(2026, 11, 6, 9, 0)
    assert await fired(conn, c, msk(2026, 11, 6, 9, 30)) == [(c.meter_id, "disconnect")]


def test_friendly_hours_follow_the_local_calendar() -> None:
    hours = FriendlyHours((time(9), time(16)), working_days_only=True)
    ru = Calendar("RU")
    # Friday 16:00 in Moscow is closed; the next opening is Monday 09:00
    assert hours.next_open(msk(2026, 11, 27, 16, 0), "Europe/Moscow", ru) == msk(2026, 11, 30, 9)
    assert hours.is_open(msk(2026, 11, 30, 15, 59), "Europe/Moscow", ru)
    # a working Saturday by override; New Year holidays from the library
    saturday = Calendar("RU", {date(2026, 11, 28): False})
    assert hours.is_open(msk(2026, 11, 28, 10), "Europe/Moscow", saturday)
    assert hours.next_open(msk(2026, 12, 31, 10), "Europe/Moscow", ru) == msk(2027, 1, 11, 9)
    # no window, no working-day rule: any moment
    anytime = FriendlyHours()
    assert anytime.is_open(msk(2026, 1, 1, 3), "Europe/Moscow", ru)
    # the window is the account's own: 09:00 in Berlin is 11:00 in Moscow
    berlin = hours.next_open(msk(2026, 11, 30, 10), "Europe/Berlin", Calendar("DE"))
    assert berlin == datetime(2026, 11, 30, 9, tzinfo=ZoneInfo("Europe/Berlin"))


async def test_an_account_on_the_default_contract_is_a_household(
        conn: psycopg.AsyncConnection[Any]) -> None:
    cur = await conn.execute(
        "INSERT INTO addresses (region, full_text) VALUES ('77', 'x') RETURNING id")
    row = await cur.fetchone()
    assert row is not None
    account = unique("A")
    await conn.execute("INSERT INTO accounts (id, address_id, holder_name, billing_mode) "
                       "VALUES (%s, %s, 'x', 'prepaid')", (account, row[0]))
    cur = await conn.execute(
        "SELECT c.policy, p.rule FROM accounts a JOIN contract_types c ON c.code = a.contract_type"
        " JOIN disconnection_policies p ON p.code = c.policy WHERE a.id = %s", (account,))
    assert await cur.fetchone() == ("household", "statutory")


async def test_the_limit_is_the_negative_limit_of_the_plan_in_force(
        conn: psycopg.AsyncConnection[Any]) -> None:
    seller = provider()
    await stored_book(conn, example_book("energosbyt", seller))  # household plans allow -300
    c = await customer(conn, "50", seller=seller, contract_type="prepay_cutoff")
    await choose_plan(conn, c.account_id, "business-tiers",  # allows 0, from 1 December
                      now=datetime(2026, 11, 15, tzinfo=UTC))
    await set_balance(conn, c.account_id, c.provider_id, "-299.99")
    assert await decide(conn, c, msk(2026, 11, 25, 11, 0)) == []
    assert await due(conn, c) is None
    (low,) = [p for k, p in await events(conn, c.account_id) if k == "low_balance"
              and p["threshold"] == "30.00"]
    assert low["limit"] == "-300.00"

    await set_balance(conn, c.account_id, c.provider_id, "-300")
    assert await decide(conn, c, msk(2026, 11, 25, 11, 0)) == [(c.meter_id, "disconnect")]
    await set_balance(conn, c.account_id, c.provider_id, "-100")
    assert await decide(conn, c, msk(2026, 11, 26, 11, 0)) == [(c.meter_id, "connect")]
    # the plan chosen for December allows no debt
    assert await decide(conn, c, msk(2026, 12, 2, 11, 0)) == [(c.meter_id, "disconnect")]
