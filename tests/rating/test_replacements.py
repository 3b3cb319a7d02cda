"""Meter replacements: reported by a gateway in a readings record, or registered by an operator
(kernel function and ``meterline meters replace``): the old meter is charged up to its closing
reading and closed, the new one opened on the same account, one ``meter_replaced`` event."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.contracts import (
    AccountReadings,
    ClosingReading,
    MeterReplacement,
    Reading,
)
from meterline.errors import Conflict, NotFound
from meterline.fleet import Provider
from meterline.ledger import check
from meterline.replacements import RegisterReading, Replacement
from meterline.settings import get_settings
from meterline.units import Register, Unit, Utility
from rating.commands import register_replacement
from rating.ledger import load_tariffs, rate_batch
from tests import factories
from tests.conftest import unique

T0 = datetime(2026, 10, 5, 6, 0, tzinfo=UTC)
PRICE = Decimal("4.25")
PROVIDER = Provider(id="replacement-test", name="Replacement test provider")


def reading(meter: str, minutes: int, value: str) -> Reading:
    return Reading(meter=meter, register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                   value=Decimal(value), ts=T0 + timedelta(minutes=minutes),
                   provider=PROVIDER.id, utility=Utility.ELECTRICITY)


async def customer(conn: psycopg.AsyncConnection[Any]) -> factories.Customer:
    return await factories.customer(conn, "100", seller=PROVIDER, price=PRICE,
                                    installation_reading=Decimal(1000),
                                    installed_at=T0 - timedelta(days=1))


async def rows(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> list[Any]:
    cur = await conn.execute(query, args)
    return await cur.fetchall()


async def balance(conn: psycopg.AsyncConnection[Any], account: str) -> Decimal:
    ((amount,),) = await rows(conn, "SELECT amount FROM balances WHERE account_id = %s", account)
    assert isinstance(amount, Decimal)
    return amount


async def test_a_replacement_reported_by_the_gateway_closes_the_old_meter_and_opens_the_new(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await customer(conn)
    old, new = made.meter_id, unique("m")
    swap = MeterReplacement(
        device="meter-3", old_meter=old, new_meter=new, profile="eastron-sdm120",
        closing=[ClosingReading(register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                                value=Decimal(1005), ts=T0 + timedelta(minutes=10))],
        detected_at=T0 + timedelta(minutes=11))
    record = AccountReadings(account=made.account_id, gateway=made.gateway_id, seq=7, readings=[
        reading(old, 0, "1004"), reading(new, 12, "3"), reading(new, 13, "3.5"),
        reading(old, 14, "1006")],  # the old meter's serial once more: refused
        replacements=[swap])
    result = await rate_batch(conn, [record], await load_tariffs(conn))
    assert (result.replacements, result.charges, result.dead_letters) == (1, 3, 1)
    # 1000 -> 1005 on the old meter, 3 -> 3.5 on the new one (its first reading its baseline)
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal("5.5") * PRICE
    assert await rows(conn, "SELECT account_id, provider_id, profile, has_relay FROM meters "
                            "WHERE id = %s", new) == [(made.account_id, PROVIDER.id,
                                                       "eastron-sdm120", True)]
    assert await rows(conn, "SELECT replaced_by, removed_at FROM meters WHERE id = %s",
                      old) == [(new, T0 + timedelta(minutes=11))]
    ((event,),) = await rows(conn, "SELECT payload FROM events WHERE kind = 'meter_replaced' "
                                   "AND meter_id = %s", old)
    assert (event["new_meter"], event["source"], event["closing"][0]["value"]) == (
        new, "gateway", "1005")
    ((reason,),) = await rows(conn, "SELECT reason FROM dead_letters WHERE payload LIKE %s",
                              f"%{old}%")
    assert reason.startswith(f"meter {old} was replaced by {new}")
    again = await rate_batch(conn, [record], await load_tariffs(conn))
    assert (again.replacements, again.charges) == (0, 0)
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal("5.5") * PRICE
    assert await check(conn, made.account_id) == []


async def test_an_operator_registers_a_replacement_with_its_opening_reading(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await customer(conn)
    old, new = made.meter_id, unique("m")
    at = T0 + timedelta(hours=1)
    replacement = Replacement(
        old_meter=old, new_meter=new, at=at, source="operator", reason="meter broken",
        closing=(RegisterReading("active_import", Decimal("1007.5"), at),),
        opening=(RegisterReading("active_import", Decimal(12), at),))
    replaced, result = await register_replacement(conn, replacement)
    assert (replaced.new, result.charges) == (True, 1)
    later = AccountReadings(account=made.account_id, gateway=made.gateway_id, seq=1,
                            readings=[reading(new, 120, "13")])
    await rate_batch(conn, [later], await load_tariffs(conn))
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal("8.5") * PRICE
    again, _ = await register_replacement(conn, replacement)
    assert not again.new
    with pytest.raises(Conflict):
        await register_replacement(conn, Replacement(old, unique("m"), at, "operator"))
    with pytest.raises(NotFound):
        await register_replacement(conn, Replacement(unique("m"), unique("m"), at, "operator"))
    other = await customer(conn)
    with pytest.raises(Conflict):  # the new serial is another account's meter
        await register_replacement(conn, Replacement(other.meter_id, new, at, "operator"))
    assert await rows(conn, "SELECT replaced_by FROM meters WHERE id = %s",
                      other.meter_id) == [(None,)]
    assert await check(conn, made.account_id) == []


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Iterator[Any]:
    async def invoke(*args: str) -> Any:
        monkeypatch.setenv("METERLINE_DATABASE_URL", pg_url)
        get_settings.cache_clear()
        return await asyncio.to_thread(CliRunner().invoke, app, ["meters", "replace", *args])

    yield invoke
    get_settings.cache_clear()


async def test_meterline_meters_replace(conn: psycopg.AsyncConnection[Any], cli: Any) -> None:
    made = await customer(conn)
    new = unique("m")
    at = (T0 + timedelta(hours=2)).isoformat()
    done = await cli(made.meter_id, new, "--at", at, "--closing", "active_import=1002.25")
    assert done.exit_code == 0, done.output
    assert f"replaced by {new}" in done.output and "1 charge line" in done.output
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal("2.25") * PRICE
    refused = await cli(made.meter_id, unique("m"), "--at", at, "--closing",
                        "active_import=1003")
    assert refused.exit_code == 2
    assert f"was replaced by {new} already" in refused.output
    typo = await cli(new, unique("m"), "--at", at, "--closing", "volume=3")
    assert typo.exit_code == 2 and "has no register volume" in typo.output
