"""A reading the gateway flagged implausible_jump against the real database: a gas counter
pushed 241.67 m3 ahead by a fault is not billed for the leap. The next reading decides: back
below the jump, the jump is refused once and the meter charged from its old level; at or above
it, the register re-baselines at the jump, the leap uncharged, with one ``implausible_jump``
event for an operator to review."""

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
from tests.conftest import unique
from tests.factories import UtilityMeter, utility_meters

T0 = datetime(2026, 10, 5, 6, 0, tzinfo=UTC)
PRICE = Decimal("7.92")  # per m3
OPENING = Decimal(1_000)
JUMP = (ReadingFlag.IMPLAUSIBLE_JUMP,)


async def gas_meter(conn: psycopg.AsyncConnection[Any]) -> tuple[str, str, Provider]:
    """A gas meter on a 16-bit pulse counter behind a gateway: (account, meter, seller)."""
    seller = Provider(unique("gorgaz"), "Gorgaz")
    account, meter = unique("JUMP"), unique("gas")
    await utility_meters(conn, [UtilityMeter(meter, account, Utility.GAS, "pulse-counter-16",
                                             seller, PRICE)],
                         gateway_id=unique("gw"), balances={(account, seller.id): OPENING})
    return account, meter, seller


def record(account: str, meter: str, seller: Provider,
           points: list[tuple[int, str, tuple[ReadingFlag, ...]]]) -> AccountReadings:
    """Readings of the gas meter: (minutes after T0, m3, flags)."""
    return AccountReadings(account=account, gateway="gw", seq=0, readings=[
        Reading(meter=meter, register=Register.VOLUME, unit=Unit.M3, value=Decimal(v),
                ts=T0 + timedelta(minutes=m), provider=seller.id, utility=Utility.GAS,
                flags=flags)
        for m, v, flags in points])


async def rate(conn: psycopg.AsyncConnection[Any], *records: AccountReadings) -> BatchResult:
    return await rate_batch(conn, records, await load_tariffs(conn))


async def rows(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> list[Any]:
    cur = await conn.execute(query, args)
    return list(await cur.fetchall())


async def charged(conn: psycopg.AsyncConnection[Any], meter: str) -> list[Decimal]:
    return [q for (q,) in await rows(conn, "SELECT quantity FROM charges WHERE meter_id = %s"
                                     " ORDER BY interval_end", meter)]


async def balance(conn: psycopg.AsyncConnection[Any], account: str, seller: Provider) -> Decimal:
    ((amount,),) = await rows(conn, "SELECT amount FROM balances WHERE account_id = %s"
                              " AND provider_id = %s", account, seller.id)
    return Decimal(amount)


async def test_a_jump_the_meter_stays_at_is_re_baselined_without_billing_the_leap(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    account, meter, seller = await gas_meter(conn)
    # the jump ends its batch: it waits, charged nothing and not dead-lettered
    first = record(account, meter, seller, [(0, "12.5", ()), (5, "12.6", ()),
                                            (10, "254.27", JUMP)])
    result = await rate(conn, first)
    assert (result.charges, result.dead_letters, result.jumps) == (1, 0, 0)
    assert await rows(conn, "SELECT last_value, pending_value, pending_jump FROM register_state"
                      " WHERE meter_id = %s", meter) == [(Decimal("12.6"), Decimal("254.27"),
                                                         True)]
    # the next readings stay at and above it: the meter really is there
    second = record(account, meter, seller, [(15, "254.3", ()), (20, "254.4", ())])
    result = await rate(conn, second)
    assert (result.charges, result.dead_letters, result.jumps, result.resets) == (2, 0, 1, 0)
    # delivered again, both batches: nothing more
    for again in (second, first):
        repeat = await rate(conn, again)
        assert (repeat.charges, repeat.jumps, repeat.dead_letters) == (0, 0, 0)
    # 0.1 m3 before the jump, 0.03 + 0.1 m3 after it; never the 241.67 m3 leap
    assert await charged(conn, meter) == [Decimal("0.1"), Decimal("0.03"), Decimal("0.1")]
    assert await balance(conn, account, seller) == OPENING - Decimal("0.23") * PRICE
    ((payload,),) = await rows(conn, "SELECT payload FROM events WHERE meter_id = %s"
                               " AND kind = 'implausible_jump'", meter)
    assert payload["meter"] == meter
    assert (payload["register"], payload["unit"], payload["from_level"], payload["to_level"]) == (
        "volume", "m3", "12.6", "254.27")
    assert datetime.fromisoformat(payload["ts"]) == T0 + timedelta(minutes=10)
    assert await rows(conn, "SELECT 1 FROM events WHERE meter_id = %s"
                      " AND kind = 'register_reset'", meter) == []
    assert await check(conn, account) == []


async def test_a_jump_the_next_reading_falls_back_from_is_refused_once_and_nothing_lost(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    account, meter, seller = await gas_meter(conn)
    # the gateway flags the fall back reset: it measures from the jump it published
    batch = record(account, meter, seller, [(0, "12.5", ()), (5, "254.17", JUMP),
                                            (10, "12.6", (ReadingFlag.RESET,)),
                                            (15, "12.8", ())])
    result = await rate(conn, batch)
    assert (result.charges, result.dead_letters, result.jumps) == (2, 1, 0)
    # charged from the old level: 0.1 m3 over the jump's interval, then 0.2 m3
    assert await charged(conn, meter) == [Decimal("0.1"), Decimal("0.2")]
    ((reason, payload),) = await rows(conn, "SELECT reason, payload FROM dead_letters"
                                      " WHERE payload LIKE %s", f"%{meter}%")
    assert reason.startswith("implausible jump: 254.17 m3 from 12.5 m3") and "254.17" in payload
    again = await rate(conn, batch)  # delivered again: nothing charged, no event
    assert (again.charges, again.jumps) == (0, 0)
    assert await balance(conn, account, seller) == OPENING - Decimal("0.3") * PRICE
    assert await rows(conn, "SELECT 1 FROM events WHERE meter_id = %s"
                      " AND kind IN ('implausible_jump', 'register_reset')", meter) == []
    assert await check(conn, account) == []


async def test_an_unflagged_leap_is_still_charged_as_read(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    account, meter, seller = await gas_meter(conn)
    result = await rate(conn, record(account, meter, seller, [(0, "12.5", ()),
                                                              (5, "254.17", ())]))
    assert (result.charges, result.jumps) == (1, 0)
    assert await charged(conn, meter) == [Decimal("241.67")]


async def test_a_jump_held_from_an_earlier_batch_and_then_refused_is_dead_lettered_once(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    account, meter, seller = await gas_meter(conn)
    first = record(account, meter, seller, [(0, "12.5", ()), (5, "254.17", JUMP)])
    assert (await rate(conn, first)).dead_letters == 0  # held, not yet judged
    second = record(account, meter, seller, [(10, "12.6", (ReadingFlag.RESET,))])
    result = await rate(conn, second)
    assert (result.charges, result.dead_letters, result.jumps) == (1, 1, 0)
    assert (await rate(conn, second)).dead_letters == 0  # delivered again: judged already
    ((reason, payload),) = await rows(conn, "SELECT reason, payload FROM dead_letters"
                                      " WHERE payload LIKE %s", f"%{meter}%")
    assert reason.startswith("implausible jump: 254.17 m3 from 12.5 m3")
    refused = Reading.model_validate_json(payload)
    assert (refused.value, refused.ts, refused.flags) == (
        Decimal("254.17"), T0 + timedelta(minutes=5), JUMP)
    assert await charged(conn, meter) == [Decimal("0.1")]
    assert await check(conn, account) == []
