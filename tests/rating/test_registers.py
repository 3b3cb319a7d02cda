"""The register policy against the real database: rollovers of counters of a known width,
resets re-baselined (flagged by a gateway or an unflagged drop), glitches refused, and never a
flood of dead letters nor a charge below zero or twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from meterline.contracts import AccountReadings, Reading, ReadingFlag
from meterline.fleet import Provider
from meterline.ledger import check
from meterline.units import Register, Unit, Utility
from rating.ledger import BatchResult, load_tariffs, rate_batch
from tests import factories

T0 = datetime(2026, 10, 5, 6, 0, tzinfo=UTC)
PRICE = Decimal("5.5")
WATER_PRICE = Decimal("63.32")  # vodokanal's cold water from 2026-07-01
PROVIDER = Provider(id="registers-test", name="Register policy test provider")


def record(account: str, meter: str, points: list[tuple[int, str]], *,
           flags: dict[int, tuple[ReadingFlag, ...]] | None = None, provider: str = PROVIDER.id,
           water: bool = False) -> AccountReadings:
    """Readings of one meter: (minutes after T0, value); ``flags`` by position."""
    register, unit, utility = ((Register.VOLUME, Unit.M3, Utility.COLD_WATER) if water else
                               (Register.ACTIVE_IMPORT, Unit.KWH, Utility.ELECTRICITY))
    return AccountReadings(account=account, gateway="gw", seq=0, readings=[
        Reading(meter=meter, register=register, unit=unit, value=Decimal(v),
                ts=T0 + timedelta(minutes=m), provider=provider, utility=utility,
                flags=(flags or {}).get(k, ()))
        for k, (m, v) in enumerate(points)])


async def rate(conn: psycopg.AsyncConnection[Any], *records: AccountReadings) -> BatchResult:
    return await rate_batch(conn, records, await load_tariffs(conn))


async def scalar(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> Any:
    cur = await conn.execute(query, args)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def balance(conn: psycopg.AsyncConnection[Any], account: str) -> Decimal:
    amount: Decimal = await scalar(conn, "SELECT amount FROM balances WHERE account_id = %s",
                                   account)
    return amount


async def electricity(conn: psycopg.AsyncConnection[Any],
                      reading: str = "1000") -> factories.Customer:
    return await factories.customer(conn, "100", seller=PROVIDER, price=PRICE,
                                    installation_reading=Decimal(reading),
                                    installed_at=T0 - timedelta(days=1))


async def events(conn: psycopg.AsyncConnection[Any], meter: str, kind: str) -> list[Any]:
    cur = await conn.execute("SELECT payload FROM events WHERE meter_id = %s AND kind = %s "
                             "ORDER BY id", (meter, kind))
    return [payload for (payload,) in await cur.fetchall()]


async def dead_letters(conn: psycopg.AsyncConnection[Any], meter: str) -> int:
    count: int = await scalar(conn, "SELECT count(*) FROM dead_letters WHERE payload LIKE %s",
                              f"%{meter}%")
    return count


async def test_a_16_bit_pulse_counter_rolls_over_into_consumption(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    # 65,536 pulses of 0.01 m3: the register shows 0 again after 655.35 m3
    made = await factories.pulse_counter_meter(conn, "100", reading=Decimal("655.2"),
                                               read_at=T0 - timedelta(hours=1))
    flagged = record(made.account_id, made.meter_id, [(0, "655.3"), (60, "0.1"), (120, "0.3")],
                     flags={1: (ReadingFlag.ROLLOVER,)}, provider=made.provider_id, water=True)
    result = await rate(conn, flagged)
    assert (result.charges, result.dead_letters, result.resets) == (3, 0, 0)
    cur = await conn.execute("SELECT quantity FROM charges WHERE meter_id = %s "
                             "ORDER BY interval_end", (made.meter_id,))
    assert [q for (q,) in await cur.fetchall()] == [Decimal("0.1"), Decimal("0.16"),
                                                    Decimal("0.2")]
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal("0.46") * WATER_PRICE
    # an older gateway does not flag it: the counter's width from the profile explains it
    unflagged = await factories.pulse_counter_meter(conn, "100", reading=Decimal("655.2"),
                                                    read_at=T0 - timedelta(hours=1))
    await rate(conn, record(unflagged.account_id, unflagged.meter_id, [(60, "0.1")],
                            provider=unflagged.provider_id, water=True))
    assert await balance(conn, unflagged.account_id) == (
        Decimal(100) - Decimal("0.26") * WATER_PRICE)
    assert await check(conn, made.account_id) == []


async def test_an_unflagged_drop_is_re_baselined_once_the_next_reading_confirms_it(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await electricity(conn)
    # the drop ends a batch: it waits, charged nothing and not dead-lettered
    first = await rate(conn, record(made.account_id, made.meter_id, [(0, "1010"), (5, "3")]))
    assert (first.charges, first.dead_letters, first.resets) == (1, 0, 0)
    state = await conn.execute("SELECT last_value, pending_value FROM register_state "
                               "WHERE meter_id = %s", (made.meter_id,))
    assert await state.fetchone() == (Decimal(1010), Decimal(3))
    second = record(made.account_id, made.meter_id, [(10, "4.5"), (15, "7")])
    result = await rate(conn, second)
    assert (result.charges, result.dead_letters, result.resets) == (2, 0, 1)
    again = await rate(conn, second)  # delivered again: nothing more
    assert (again.charges, again.resets) == (0, 0)
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal(14) * PRICE
    (reset,) = await events(conn, made.meter_id, "register_reset")
    assert (reset["level_before"], reset["new_level"]) == ("1010", "3")
    assert await dead_letters(conn, made.meter_id) == 0
    assert await check(conn, made.account_id) == []


async def test_a_reading_late_from_before_a_drop_is_charged_once_whatever_the_drop_was(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await electricity(conn)
    await rate(conn, record(made.account_id, made.meter_id, [(0, "1010"), (10, "3")]))
    late = await rate(conn, record(made.account_id, made.meter_id, [(5, "1012")]))
    assert (late.charges, late.dead_letters) == (1, 0)
    # the drop was a glitch after all: measured from the late reading, nothing twice
    await rate(conn, record(made.account_id, made.meter_id, [(15, "1015")]))
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal(15) * PRICE
    assert await check(conn, made.account_id) == []


async def test_a_reading_typed_wrong_is_refused_once_and_loses_nothing(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await electricity(conn)
    result = await rate(conn, record(made.account_id, made.meter_id,
                                     [(0, "1010"), (5, "101.1"), (10, "1011.5")]))
    assert (result.charges, result.dead_letters, result.resets) == (2, 1, 0)
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal("11.5") * PRICE
    assert await events(conn, made.meter_id, "register_reset") == []


async def test_a_gateway_flagged_reset_above_the_level_is_not_charged_as_consumption(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await electricity(conn)
    await rate(conn, record(made.account_id, made.meter_id, [(0, "1001"), (5, "5000"),
                                                             (10, "5002")],
                            flags={1: (ReadingFlag.RESET,)}))
    assert await balance(conn, made.account_id) == Decimal(100) - Decimal(3) * PRICE
    assert len(await events(conn, made.meter_id, "register_reset")) == 1


async def test_a_fleet_restarted_with_lower_registers_is_re_baselined_without_dead_letters(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    fleet = await factories.customers(conn, ["100"] * 20, seller=PROVIDER, price=PRICE,
                                      installation_reading=Decimal(5000),
                                      installed_at=T0 - timedelta(days=1))
    before = [record(c.account_id, c.meter_id, [(0, "5001")]) for c in fleet]
    await rate(conn, *before)
    # every meter comes back at 10 kWh and climbs slowly, far below its old 5001 kWh
    after = [record(c.account_id, c.meter_id, [(m, str(10 + m / 100)) for m in range(1, 61)])
             for c in fleet]
    result = await rate(conn, *after)
    assert (result.dead_letters, result.resets) == (0, 20)
    for c in fleet:
        # 1 kWh before the restart, then 0.59 kWh from the first reading after it
        assert await balance(conn, c.account_id) == Decimal(100) - Decimal("1.59") * PRICE
        assert await check(conn, c.account_id) == []
