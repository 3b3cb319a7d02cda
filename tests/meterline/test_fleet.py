"""Registering fleets (meterline.fleet): meters of several utilities and providers on one
account, each utility priced by its provider's flat plan in its own unit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest

from meterline.fleet import Fleet, FleetMeter, register_fleet
from meterline.units import Utility
from tests.conftest import unique
from tests.factories import provider


async def test_an_account_takes_meters_of_several_utilities_and_providers(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    account, water, gas = unique("A"), provider(), provider()
    cold, meter_of_gas = unique("cw"), unique("gas")
    for seller, utility, profile, serial, price in (
        (water, Utility.COLD_WATER, "pulse-counter-32", cold, Decimal("45.67")),
        (gas, Utility.GAS, "pulse-counter-16", meter_of_gas, Decimal("7.92")),
    ):
        await register_fleet(conn, Fleet(
            gateway_id="gw-test", provider=seller, utility=utility, profile=profile,
            price=price, meters=[FleetMeter(serial=serial, account_id=account,
                                            opening_balance=Decimal(100),
                                            address="Moscow, Lenina 1, apt 5")]))
    cur = await conn.execute(
        "SELECT m.id, m.utility, m.provider_id, r.code, r.unit FROM meters m"
        " JOIN registers r ON r.meter_id = m.id WHERE m.account_id = %s ORDER BY m.utility",
        (account,))
    assert await cur.fetchall() == [
        (cold, "cold_water", water.id, "volume", "m3"),
        (meter_of_gas, "gas", gas.id, "volume", "m3"),
    ]
    cur = await conn.execute(
        "SELECT provider_id, amount FROM balances WHERE account_id = %s ORDER BY provider_id",
        (account,))
    assert await cur.fetchall() == sorted([(water.id, Decimal(100)), (gas.id, Decimal(100))])
    cur = await conn.execute(
        "SELECT provider_id, utility, basis FROM tariff_plans"
        " WHERE provider_id = ANY(%s) AND is_default ORDER BY utility",
        ([water.id, gas.id],))
    assert await cur.fetchall() == [(water.id, "cold_water", "m3"), (gas.id, "gas", "m3")]
    cur = await conn.execute("SELECT count(*) FROM addresses WHERE full_text = %s",
                             ("Moscow, Lenina 1, apt 5",))
    assert await cur.fetchone() == (1,)  # one flat, one address


async def test_a_profile_that_does_not_meter_the_utility_is_refused(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    serial = unique("m")
    with pytest.raises(ValueError, match="profile heat-meter does not meter gas"):
        await register_fleet(conn, Fleet(
            gateway_id="gw-test", provider=provider(), utility=Utility.GAS,
            profile="heat-meter", price=Decimal(1), meters=[FleetMeter(
                serial=serial, account_id=unique("A"), opening_balance=Decimal(0),
                address="Moscow")]))
    cur = await conn.execute("SELECT count(*) FROM meters WHERE id = %s", (serial,))
    assert await cur.fetchone() == (0,)
