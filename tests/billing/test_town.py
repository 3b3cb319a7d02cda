"""The generated town: a whole housing stock on the books, the same every time."""

from __future__ import annotations

from typing import Any

import psycopg

from billing.accounts.town import TownSpec, generate_town
from meterline.units import Service
from tests.factories import town


async def test_a_town_puts_every_apartment_on_the_books(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await town(conn, accounts=150, months=3)
    prefix = made.spec.prefix
    assert made.accounts == 150 and made.houses >= 2 and made.house_meters > 0
    cur = await conn.execute("""
        SELECT count(*), count(DISTINCT a.els), count(DISTINCT p.house_id),
               min(a.area), max(a.area), sum(a.residents)
          FROM accounts a JOIN premises p ON p.id = a.premises_id
          JOIN houses h ON h.id = p.house_id JOIN streets s ON s.id = h.street_id
          JOIN cities c ON c.id = s.city_id
         WHERE a.id LIKE %s || '%%' AND c.region_code = %s""", (prefix, made.spec.region))
    row = await cur.fetchone()
    assert row is not None
    count, els, houses, smallest, largest, residents = row
    assert (count, els, houses) == (150, 150, made.houses)
    assert 28 <= smallest < largest <= 90 and residents > 150

    # every account buys the services of its house, each from its provider, with a balance
    cur = await conn.execute("""
        SELECT s.service, count(*), count(b.account_id)
          FROM account_services s
          LEFT JOIN balances b USING (account_id, provider_id)
         WHERE s.account_id LIKE %s || '%%' GROUP BY s.service""", (prefix,))
    sold = {service: (n, balances) for service, n, balances in await cur.fetchall()}
    for service in (Service.MAINTENANCE, Service.CAPITAL_REPAIR, Service.WASTE,
                    Service.COLD_WATER, Service.SEWERAGE, Service.HEATING,
                    Service.ELECTRICITY):
        assert sold[service] == (150, 150)
    assert 0 < sold[Service.HOT_WATER][0] <= 150

    # meters read by people: no gateway, read monthly from their installation reading on,
    # never backwards, some months missing
    cur = await conn.execute("""
        SELECT count(DISTINCT m.id), count(*), bool_and(m.gateway_id IS NULL),
               bool_and(r.value >= coalesce(r.previous, 0))
          FROM meters m
          JOIN (SELECT meter_id, value, lag(value) OVER (PARTITION BY meter_id ORDER BY ts)
                       AS previous FROM readings) r ON r.meter_id = m.id
         WHERE m.account_id LIKE %s || '%%'""", (prefix,))
    row = await cur.fetchone()
    assert row is not None
    meters, readings, manual, monotonic = row
    assert meters == made.meters and manual and monotonic
    assert meters * 2 < readings < meters * 4  # installation + up to 3 months


async def test_generating_a_town_again_adds_nothing(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await town(conn, accounts=40, months=2, services=(Service.MAINTENANCE,))
    again = await generate_town(conn, made.spec)
    assert (again.accounts, again.meters, again.house_meters) == (0, 0, 0)
    cur = await conn.execute(
        "SELECT count(*) FROM account_services WHERE account_id LIKE %s || '%%'",
        (made.spec.prefix,))
    assert await cur.fetchone() == (40,)


async def test_the_same_spec_draws_the_same_town(conn: psycopg.AsyncConnection[Any]) -> None:
    one = await town(conn, accounts=30, months=1, seed=7)
    other = await generate_town(conn, TownSpec(**{
        **one.spec.__dict__, "prefix": "B" + one.spec.prefix, "region": one.spec.region + "B"}))

    async def drawn(prefix: str) -> list[Any]:
        cur = await conn.execute("""
            SELECT substr(a.id, length(%s) + 1), a.area, a.residents, a.holder_name, ad.full_text
              FROM accounts a JOIN addresses ad ON ad.id = a.address_id
             WHERE a.id LIKE %s || '%%' ORDER BY a.id""", (prefix, prefix))
        return await cur.fetchall()

    assert await drawn(one.spec.prefix) == await drawn(other.spec.prefix)

    async def readings(prefix: str) -> list[Any]:
        cur = await conn.execute("""
            SELECT substr(r.meter_id, length(%s) + 1), r.ts, r.value, r.source
              FROM readings r JOIN meters m ON m.id = r.meter_id
             WHERE m.account_id LIKE %s || '%%' ORDER BY 1, 2""", (prefix, prefix))
        return await cur.fetchall()

    assert await readings(one.spec.prefix) == await readings(other.spec.prefix)
