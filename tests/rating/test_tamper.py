"""The case found when the stack was run, crafted at the contract level: the simulators
restart (a power cut) and bring the meters back with their relays closed behind the platform's
back and their registers lower than before. The disconnect is commanded again with a tamper
event, the reset is re-baselined, nothing is dead-lettered, and once the relay holds the
balance stops running away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from meterline.contracts import ReadingFlag, ReadingsRecord
from meterline.fleet import Provider
from meterline.instants import micros
from meterline.ledger import check
from rating.ledger import BatchResult, load_tariffs, rate_batch
from rating.records import decode, routed
from tests import factories

PRICE = Decimal("5.5")
PROVIDER = Provider(id="tamper-test", name="Tamper test provider")


def payload(account: str, meter: str, points: list[tuple[datetime, str]],
            reset_at: int | None = None) -> bytes:
    """A readings record (v2) as the bridge produces it; the reading at ``reset_at`` flagged
    ``reset`` by the gateway."""
    n = len(points)
    return ReadingsRecord(
        batches=[("gw", 1)], account=[account] * n, meter=[meter] * n,
        register=["active_import"] * n, unit=["kWh"] * n, provider=[PROVIDER.id] * n,
        utility=["electricity"] * n, ts=[micros(t) for t, _ in points],
        value=[int(Decimal(v).scaleb(6)) for _, v in points],
        flagged=[] if reset_at is None else [(reset_at, (ReadingFlag.RESET,))],
    ).model_dump_json().encode()


async def rate(conn: psycopg.AsyncConnection[Any], *payloads: bytes) -> BatchResult:
    records, rejected = decode(payloads)
    assert rejected == []
    return await rate_batch(conn, routed(records), await load_tariffs(conn))


async def rows(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> list[Any]:
    cur = await conn.execute(query, args)
    return await cur.fetchall()


async def test_a_meter_back_with_its_relay_closed_and_its_register_reset(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    made = await factories.customer(conn, "20", seller=PROVIDER, price=PRICE,
                                    installation_reading=Decimal(1000),
                                    installed_at=now - timedelta(hours=1))
    account, meter = made.account_id, made.meter_id

    def at(minutes: int) -> datetime:
        return now + timedelta(minutes=minutes)

    # 20 RUB of credit runs out: the platform commands the relay open
    spent = await rate(conn, payload(account, meter, [(at(1), "1002"), (at(2), "1005")]))
    assert spent.relay_commands == [(meter, "disconnect")]
    assert spent.moved == {(account, PROVIDER.id)}
    (balance,) = await rows(conn, "SELECT amount FROM balances WHERE account_id = %s", account)
    assert balance == (Decimal(20) - 5 * PRICE,)

    # a power cut: the meter is back with its relay closed and its register at 0.5 kWh, and
    # consumes 2.5 kWh more (the gateway flags the drop as a reset)
    restarted = await rate(conn, payload(account, meter, [
        (at(4), "0.5"), (at(5), "1.0"), (at(6), "2.0"), (at(7), "3.0")], reset_at=0))
    assert (restarted.dead_letters, restarted.resets, restarted.tampers) == (0, 1, 1)
    assert restarted.relay_commands == [(meter, "disconnect")]  # commanded again
    commands = await rows(conn, "SELECT action, reason FROM relay_commands WHERE meter_id = %s "
                                "ORDER BY seq", meter)
    assert commands == [("disconnect", "balance exhausted"),
                        ("disconnect", "consumption while disconnected: commanded again")]
    (tamper,) = await rows(conn, "SELECT payload FROM events WHERE meter_id = %s "
                                 "AND kind = 'tamper'", meter)
    assert tamper[0]["consumed"] == "2.5"
    (reset,) = await rows(conn, "SELECT payload FROM events WHERE meter_id = %s "
                                "AND kind = 'register_reset'", meter)
    assert (reset[0]["level_before"], reset[0]["new_level"]) == ("1005", "0.5")
    after_restart = Decimal(20) - Decimal("7.5") * PRICE
    (balance,) = await rows(conn, "SELECT amount FROM balances WHERE account_id = %s", account)
    assert balance == (after_restart,)
    assert Decimal(tamper[0]["balance"]) == after_restart  # in the tamper event

    # the relay opens this time: the register stands still and so does the balance; nothing
    # is commanded again, and every later reading is taken (none dead-lettered)
    held = await rate(conn, payload(account, meter, [(at(9), "3.0"), (at(10), "3.0")]))
    assert (held.charges, held.dead_letters, held.tampers, held.relay_commands) == (0, 0, 0, [])
    (balance,) = await rows(conn, "SELECT amount FROM balances WHERE account_id = %s", account)
    assert balance == (after_restart,)
    (dead,) = await rows(conn, "SELECT count(*) FROM dead_letters WHERE payload LIKE %s",
                         f"%{meter}%")
    assert dead == (0,)
    assert await check(conn, account) == []


async def test_consumption_within_the_grace_or_the_tolerance_is_not_tamper(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    made = await factories.customer(conn, "1", seller=PROVIDER, price=PRICE,
                                    installation_reading=Decimal(1000),
                                    installed_at=now - timedelta(hours=1))
    account, meter = made.account_id, made.meter_id
    spent = await rate(conn, payload(account, meter, [(now + timedelta(seconds=10), "1001")]))
    assert spent.relay_commands == [(meter, "disconnect")]
    # the relay takes a few seconds to open; then a creep below the tolerance
    slow = await rate(conn, payload(account, meter, [
        (now + timedelta(seconds=20), "1001.5"), (now + timedelta(minutes=2), "1001.5"),
        (now + timedelta(minutes=3), "1001.505")]))
    assert (slow.charges, slow.tampers, slow.relay_commands) == (2, 0, [])
