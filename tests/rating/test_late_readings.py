"""Late readings: an interval priced before that a late reading falls inside is re-rated by
reversal and repost (a new revision; the old lines stay), in its period while it is open, as a
correction in the first open period once it is closed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from meterline.contracts import AccountReadings, Reading
from meterline.ledger import check
from meterline.periods import close_period
from meterline.units import Register, Unit, Utility
from rating.ledger import BatchResult, load_tariffs, rate_batch
from tests import factories

# 22:00 in Moscow: the day zone ends an hour later
T0 = datetime(2026, 10, 5, 19, 0, tzinfo=UTC)
TWO_ZONES = """
[[plans]]
code = "two-zone"
name = "Day and night"
service = "electricity"
basis = "kWh"
default = true

  [[plans.versions]]
  valid_from = 2026-01-01
  zones = { day = ["07:00-23:00"], night = ["23:00-07:00"] }
  prices = { day = [8.00], night = [2.00] }
"""


async def two_zone_customer(conn: psycopg.AsyncConnection[Any]) -> factories.Customer:
    seller = factories.provider()
    await factories.stored_book(conn, factories.tariff_book(TWO_ZONES, seller))
    return await factories.customer(conn, "1000", seller=seller,
                                    installation_reading=Decimal(1000), installed_at=T0)


def record(made: factories.Customer, points: list[tuple[int, str]]) -> AccountReadings:
    return AccountReadings(account=made.account_id, gateway="gw", seq=0, readings=[
        Reading(meter=made.meter_id, register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                value=Decimal(v), ts=T0 + timedelta(minutes=m), provider=made.provider_id,
                utility=Utility.ELECTRICITY) for m, v in points])


async def rate(conn: psycopg.AsyncConnection[Any], made: factories.Customer,
               points: list[tuple[int, str]]) -> BatchResult:
    return await rate_batch(conn, [record(made, points)], await load_tariffs(conn))


async def balance(conn: psycopg.AsyncConnection[Any], account: str) -> Decimal:
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s", (account,))
    row = await cur.fetchone()
    assert row is not None
    amount: Decimal = row[0]
    return amount


async def net_intervals(conn: psycopg.AsyncConnection[Any], meter: str) -> list[Any]:
    """What is charged per interval, net of reversals, where anything is."""
    cur = await conn.execute("""
        SELECT interval_start, interval_end, sum(quantity), sum(amount) FROM charges
         WHERE meter_id = %s GROUP BY 1, 2 HAVING sum(quantity) <> 0 ORDER BY 2""", (meter,))
    return await cur.fetchall()


async def test_a_late_reading_re_rates_its_interval_by_reversal_and_repost(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await two_zone_customer(conn)
    # 20 kWh from 22:00 to 00:00 Moscow time: taken as even, 10 by day and 10 by night
    await rate(conn, made, [(120, "1020")])
    assert await balance(conn, made.account_id) == Decimal(1000) - (10 * 8 + 10 * 2)
    # the reading at 23:00 arrives late: only 2 kWh were used by day
    late = await rate(conn, made, [(60, "1002")])
    assert (late.readings, late.dead_letters) == (1, 0)
    assert await balance(conn, made.account_id) == Decimal(1000) - (2 * 8 + 18 * 2)
    assert [(q, a) for _, _, q, a in await net_intervals(conn, made.meter_id)] == [
        (Decimal(2), Decimal(16)), (Decimal(18), Decimal(36))]
    cur = await conn.execute("SELECT revision, sum(quantity) FROM charges WHERE meter_id = %s "
                             "GROUP BY revision ORDER BY revision", (made.meter_id,))
    # 23:00 is the zone boundary: the pieces' lines have the old lines' keys, one revision on
    # from their reversal
    assert await cur.fetchall() == [(0, Decimal(20)), (1, Decimal(-20)), (2, Decimal(20))]
    # delivered again, it re-rates nothing; one more late reading re-rates the reposted piece
    again = await rate(conn, made, [(60, "1002")])
    assert again.charges == 0
    await rate(conn, made, [(90, "1011")])
    assert await balance(conn, made.account_id) == Decimal(1000) - (2 * 8 + 18 * 2)
    assert len(await net_intervals(conn, made.meter_id)) == 3
    # one that does not fit between the readings around it is refused and changes nothing
    wrong = await rate(conn, made, [(100, "1030")])
    assert (wrong.charges, wrong.dead_letters) == (0, 1)
    assert await check(conn, made.account_id) == []


async def test_a_late_reading_of_a_closed_period_is_a_correction_in_the_open_one(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await two_zone_customer(conn)
    await rate(conn, made, [(120, "1020")])
    await close_period(conn, made.provider_id, date(2026, 10, 1))
    await rate(conn, made, [(60, "1002")])
    assert await balance(conn, made.account_id) == Decimal(1000) - (2 * 8 + 18 * 2)
    cur = await conn.execute("""SELECT period, sum(amount) FROM charges WHERE meter_id = %s
                                 GROUP BY period ORDER BY period""", (made.meter_id,))
    # October keeps what it was billed; November books the correction
    assert await cur.fetchall() == [(date(2026, 10, 1), Decimal(100)),
                                    (date(2026, 11, 1), Decimal(-48))]
    assert await check(conn, made.account_id) == []
