"""Rating books charge lines by zone, band and tariff version, and moves the monthly volumes
in the same transaction (issue 5, milestone 2 of the tariffs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from meterline.contracts import AccountReadings, Reading
from meterline.ledger import check
from meterline.tariffs.choices import choose_plan
from meterline.tariffs.model import ConsumerGroup
from meterline.units import Register, Unit, Utility
from rating.ledger import load_tariffs, rate_batch
from tests.factories import (
    Customer,
    book_customer,
    customer,
    provider,
    stored_book,
    tariff_book,
)

MOSCOW = ZoneInfo("Europe/Moscow")
OCTOBER = datetime(2026, 10, 15, tzinfo=UTC)  # choices made now apply from November 1


async def household(conn: psycopg.AsyncConnection[Any], plan: str | None = None,
                    group: ConsumerGroup | None = None) -> Customer:
    made = await book_customer(conn)
    if plan:
        await choose_plan(conn, made.account_id, plan, consumer_group=group, now=OCTOBER)
    return made


def record(made: Customer, points: list[tuple[datetime, str]],
           unit: Unit = Unit.KWH) -> AccountReadings:
    return AccountReadings(account=made.account_id, gateway="gw", seq=0, readings=[
        Reading(meter=made.meter_id, register=Register.ACTIVE_IMPORT, unit=unit,
                value=Decimal(v), ts=at, provider=made.provider_id, utility=Utility.ELECTRICITY)
        for at, v in points])


async def rate(conn: psycopg.AsyncConnection[Any], *records: AccountReadings) -> Any:
    return await rate_batch(conn, records, await load_tariffs(conn))


async def lines(conn: psycopg.AsyncConnection[Any], made: Customer) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        """SELECT interval_start AT TIME ZONE 'Europe/Moscow',
                  interval_end AT TIME ZONE 'Europe/Moscow', part, zone, band, consumer_group,
                  quantity, unit_price, amount, v.valid_from
             FROM charges c JOIN tariff_versions v ON v.id = c.tariff_version_id
            WHERE meter_id = %s ORDER BY interval_end, band""", (made.meter_id,))
    return await cur.fetchall()


async def volumes(conn: psycopg.AsyncConnection[Any], made: Customer) -> dict[Any, Decimal]:
    cur = await conn.execute("SELECT month, volume FROM tariff_volumes WHERE account_id = %s",
                             (made.account_id,))
    return dict(await cur.fetchall())


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MOSCOW)


async def test_an_interval_across_zones_gives_a_line_per_zone_in_one_entry(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await household(conn, "household-3zone", ConsumerGroup.ELECTRIC_STOVE)
    result = await rate(conn, record(made, [(local(2, 6), "100"), (local(2, 8), "104")]))
    assert (result.charges, result.dead_letters) == (2, 0)
    # 06:00-07:00 night, 07:00-08:00 peak; 2 kWh each at 0.7 x the 2026-07 prices
    d = Decimal
    assert await lines(conn, made) == [
        (local(2, 6).replace(tzinfo=None), local(2, 7).replace(tzinfo=None), "night/0",
         "night", 0, "electric_stove", d(2), d("2.17"), d("4.34"), datetime(2026, 7, 1).date()),
        (local(2, 7).replace(tzinfo=None), local(2, 8).replace(tzinfo=None), "peak/0",
         "peak", 0, "electric_stove", d(2), d("6.741"), d("13.482"),
         datetime(2026, 7, 1).date()),
    ]
    balance = await conn.execute("SELECT amount FROM balances WHERE account_id = %s",
                                 (made.account_id,))
    assert await balance.fetchone() == (d(100) - d("17.822"),)
    assert await volumes(conn, made) == {datetime(2026, 11, 1).date(): d(4)}
    assert await check(conn, made.account_id) == []


async def test_band_limits_are_crossed_from_the_month_s_volume_and_start_again_next_month(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await household(conn)  # the provider's default: one rate with bands, 6.99 / 8.39
    first = record(made, [(local(1, 0), "0"), (local(20, 0), "3800")])
    await rate(conn, first)
    # 3,800 kWh used: the next 200 kWh are 100 in band 0 and 100 in band 1; then 24 kWh over
    # the day from November 30 noon: 12 in November (band 1), 12 in December (band 0 again)
    await rate(conn, record(made, [(local(20, 12), "4000"), (local(30, 12), "4000"),
                                   (local(1, 12, month=12), "4024")]))
    got = [(part, quantity) for _, _, part, _, _, _, quantity, *_ in await lines(conn, made)]
    assert got == [("all_day/0", 3800), ("all_day/0", 100), ("all_day/1", 100),
                   ("all_day/1", 12), ("all_day/0", 12)]
    assert await volumes(conn, made) == {datetime(2026, 11, 1).date(): Decimal(4012),
                                         datetime(2026, 12, 1).date(): Decimal(12)}
    # delivered again: nothing is charged or counted twice
    again = await rate(conn, first)
    assert again.charges == 0
    assert sum((await volumes(conn, made)).values()) == 4024
    assert await check(conn, made.account_id) == []


async def test_a_plan_chosen_for_the_next_period_prices_from_its_first_day(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await household(conn, "household-2zone")  # from November 1
    await rate(conn, record(made, [(local(31, 22, month=10), "10"), (local(1, 2), "14")]))
    got = [(part, quantity, price) for _, _, part, _, _, _, quantity, price, *_
           in await lines(conn, made)]
    # October 22:00-24:00 on the default one rate; November 00:00-02:00 at two-zone night
    assert got == [("all_day/0", 2, Decimal("6.99")), ("night/0", 2, Decimal("3.10"))]


async def test_readings_in_a_unit_the_plan_does_not_price_are_held_back(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await household(conn)
    result = await rate(conn, record(made, [(local(2, 6), "1"), (local(2, 7), "2")],
                                     unit=Unit.M3))
    assert (result.charges, result.dead_letters) == (0, 2)
    cur = await conn.execute("SELECT reason FROM dead_letters WHERE payload LIKE %s LIMIT 1",
                             (f"%{made.meter_id}%",))
    row = await cur.fetchone()
    assert row is not None and row[0].startswith(
        f"no electricity tariff of provider {made.provider_id} in m3 at")


TWO_ZONE_2014 = """
[[plans]]
code = "2zone"
name = "Two zones"
service = "electricity"
basis = "kWh"
default = true
[[plans.versions]]
valid_from = 2014-01-01
zones = { day = ["07:00-23:00"], night = ["23:00-07:00"] }
prices = { day = [3.88], night = [1.13] }
"""


async def test_dst_the_long_night_of_moscow_2014_is_priced_hour_by_hour(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await stored_book(conn, tariff_book(TWO_ZONE_2014, seller))
    made = await customer(conn, "100", seller=seller)
    # 20:00 (UTC+4) on October 25 to 08:00 (UTC+3) on the 26th: 13 hours at 1 kWh an hour;
    # the night 23:00-07:00 lasted 9 of them
    start = datetime(2014, 10, 25, 16, tzinfo=UTC)
    result = await rate(conn, record(made, [(start, "0"), (start + timedelta(hours=13), "13")]))
    assert result.dead_letters == 0
    cur = await conn.execute("SELECT zone, sum(quantity), sum(amount) FROM charges "
                             "WHERE meter_id = %s GROUP BY zone ORDER BY zone", (made.meter_id,))
    assert await cur.fetchall() == [("day", Decimal(4), Decimal("15.52")),
                                    ("night", Decimal(9), Decimal("10.17"))]
