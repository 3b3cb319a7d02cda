"""Booking a priced batch in PostgreSQL: ``rating.ledger.rate_batch`` against the real database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from meterline.contracts import AccountReadings, Reading
from meterline.fleet import Provider
from meterline.ledger import check
from meterline.periods import close_period
from meterline.units import Register, Unit, Utility
from rating.ledger import load_tariffs, rate_batch
from tests import factories
from tests.conftest import unique

T0 = datetime(2026, 10, 5, 6, 0, tzinfo=UTC)
PRICE = Decimal("7.123457")
PROVIDER = Provider(id="ledger-test", name="Ledger test provider")


async def customer(conn: psycopg.AsyncConnection[Any], opening: str = "100",
                   billing_mode: str = "prepaid") -> tuple[str, str]:
    made = await factories.customer(conn, opening, seller=PROVIDER, price=PRICE,
                                    billing_mode=billing_mode)
    return made.meter_id, made.account_id


def record(account: str, meter: str, points: list[tuple[int, str]],
           provider: str = PROVIDER.id, start: datetime = T0) -> AccountReadings:
    """Readings of one meter: (minutes after ``start``, register value)."""
    return AccountReadings(account=account, gateway="gw", seq=0, readings=[
        Reading(meter=meter, register=Register.ACTIVE_IMPORT, unit=Unit.KWH, value=Decimal(v),
                ts=start + timedelta(minutes=m), provider=provider, utility=Utility.ELECTRICITY)
        for m, v in points])


async def one(conn: psycopg.AsyncConnection[Any], query: str, *args: Any) -> Any:
    cur = await conn.execute(query, args)
    row = await cur.fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


async def rate(conn: psycopg.AsyncConnection[Any], *records: AccountReadings) -> Any:
    return await rate_batch(conn, records, await load_tariffs(conn))


async def test_charges_are_exact_and_the_ledger_adds_up_to_the_balance(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    meter, account = await customer(conn)
    result = await rate(conn, record(account, meter, [(0, "1000.5"), (30, "1000.625"),
                                                      (60, "1001.000001")]))
    assert (result.readings, result.charges, result.dead_letters) == (3, 2, 0)
    consumed = Decimal("1001.000001") - Decimal("1000.5")
    balance = await one(conn, "SELECT amount FROM balances WHERE account_id = %s", account)
    assert balance == Decimal(100) - consumed * PRICE
    ledger = await one(conn, "SELECT sum(amount) FROM ledger WHERE account_id = %s", account)
    assert ledger == balance  # the opening balance is an entry too
    cur = await conn.execute("""SELECT interval_start, interval_end, quantity, amount
                                  FROM charges WHERE meter_id = %s ORDER BY interval_end""",
                             (meter,))
    assert await cur.fetchall() == [
        (T0, T0 + timedelta(minutes=30), Decimal("0.125"), Decimal("0.125") * PRICE),
        (T0 + timedelta(minutes=30), T0 + timedelta(minutes=60), Decimal("0.375001"),
         Decimal("0.375001") * PRICE),
    ]


async def test_the_same_batch_twice_changes_nothing(conn: psycopg.AsyncConnection[Any]) -> None:
    meter, account = await customer(conn)
    batch = record(account, meter, [(0, "5"), (1, "6"), (2, "8")])
    await rate(conn, batch)
    before = await one(conn, "SELECT amount FROM balances WHERE account_id = %s", account)
    again = await rate(conn, batch, batch)
    assert again.charges == 0
    assert await one(conn, "SELECT amount FROM balances WHERE account_id = %s", account) == before
    assert await one(conn, "SELECT count(*) FROM charges WHERE meter_id = %s", meter) == 2


async def test_a_line_booked_before_is_skipped_and_the_rest_of_the_batch_booked(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    # the first interval's line is in the books already (booked behind the register state's
    # back): the batch's plain insert meets it, and the batch is booked by the insert that
    # skips it, in the same transaction: that line is not charged twice, the other is charged
    meter, account = await customer(conn)
    await factories.charge(conn, meter, T0, T0 + timedelta(minutes=1), "1", "7.123457")
    await factories.charge(conn, meter, T0, T0 + timedelta(minutes=1), "1", "7.123457")
    assert await one(conn, "SELECT count(*) FROM charges WHERE meter_id = %s", meter) == 1
    result = await rate(conn, record(account, meter, [(0, "5"), (1, "6"), (2, "8")]))
    assert result.charges == 1
    cur = await conn.execute("SELECT interval_end, quantity FROM charges WHERE meter_id = %s "
                             "ORDER BY interval_end", (meter,))
    assert await cur.fetchall() == [(T0 + timedelta(minutes=1), Decimal(1)),
                                    (T0 + timedelta(minutes=2), Decimal(2))]
    assert await one(conn, "SELECT amount FROM balances WHERE account_id = %s",
                     account) == Decimal(100) - 3 * PRICE
    assert await check(conn, account) == []


async def test_readings_of_unknown_or_moved_meters_are_dead_lettered_and_charge_nothing(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    meter, account = await customer(conn)
    _, other_account = await customer(conn)
    stranger = unique("m")
    result = await rate(
        conn,
        record(account, stranger, [(0, "1"), (1, "2")]),
        record(other_account, meter, [(0, "1"), (1, "2")]),  # meter named on another account
    )
    assert (result.charges, result.dead_letters) == (0, 4)
    cur = await conn.execute("SELECT DISTINCT reason FROM dead_letters WHERE payload LIKE %s "
                             "OR payload LIKE %s ORDER BY 1", (f"%{stranger}%", f"%{meter}%"))
    reasons = [r for (r,) in await cur.fetchall()]
    assert reasons == sorted([
        f"meter {meter} belongs to account {account} (provider {PROVIDER.id}), "
        f"not to {other_account} ({PROVIDER.id})",
        f"meter {stranger} is not registered",
    ])
    for acc in (account, other_account):
        assert await one(conn, "SELECT amount FROM balances WHERE account_id = %s", acc) == 100


async def test_a_reading_with_no_tariff_in_force_is_held_back_not_lost(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    meter, account = await customer(conn)
    early = T0.replace(year=2019)  # before the tariff's validity (2020-01-01)
    batch = AccountReadings(account=account, gateway="gw", seq=0, readings=[
        Reading(meter=meter, register=Register.ACTIVE_IMPORT, unit=Unit.KWH, value=Decimal(v),
                ts=at, provider=PROVIDER.id, utility=Utility.ELECTRICITY)
        for at, v in [(early, "10"), (T0, "12"), (T0 + timedelta(hours=1), "15")]])
    result = await rate(conn, batch)
    assert result.dead_letters == 1
    reason = await one(conn, "SELECT reason FROM dead_letters WHERE payload LIKE %s",
                       f"%{meter}%")
    assert reason.startswith(f"no electricity tariff of provider {PROVIDER.id} in kWh at 2019")
    # the unpriced reading did not become the baseline: 12 is, and 12 -> 15 is charged
    assert await one(conn, "SELECT sum(quantity) FROM charges WHERE meter_id = %s", meter) == 3


async def test_a_prepaid_balance_running_out_requests_a_disconnect_postpaid_does_not(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    prepaid_meter, prepaid = await customer(conn, opening="1")
    postpaid_meter, postpaid = await customer(conn, opening="1", billing_mode="postpaid")
    result = await rate(conn, record(prepaid, prepaid_meter, [(0, "0"), (1, "1")]),
                        record(postpaid, postpaid_meter, [(0, "0"), (1, "1")]))
    assert result.relay_commands == [(prepaid_meter, "disconnect")]
    assert await one(conn, "SELECT relay_state FROM meters WHERE id = %s",
                     prepaid_meter) == "disconnected"
    assert await one(conn, "SELECT action, status, reason FROM relay_commands "
                           "WHERE meter_id = %s", prepaid_meter) == (
        "disconnect", "requested", "balance exhausted")
    assert await one(conn, "SELECT count(*) FROM relay_commands WHERE meter_id = %s",
                     postpaid_meter) == 0
    # more consumption on an already disconnected meter asks for nothing more
    again = await rate(conn, record(prepaid, prepaid_meter, [(2, "1.5")]))
    assert again.relay_commands == []


async def test_consumption_is_billed_from_the_installation_reading(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await factories.customer(conn, "100", seller=PROVIDER, price=PRICE,
                                    installation_reading=Decimal("250.5"),
                                    installed_at=T0 - timedelta(days=1))
    meter, account = made.meter_id, made.account_id
    await rate(conn, record(account, meter, [(0, "252")]))
    assert await one(conn, "SELECT interval_start, quantity FROM charges WHERE meter_id = %s",
                     meter) == (T0 - timedelta(days=1), Decimal("1.5"))
    assert await one(conn, "SELECT amount FROM balances WHERE account_id = %s",
                     account) == Decimal(100) - Decimal("1.5") * PRICE


async def test_a_batch_books_one_entry_with_debits_per_account_service_and_period(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    meter_a, account_a = await customer(conn, opening="50")
    meter_b, account_b = await customer(conn, opening="50")
    # 21:00 UTC on October 31st is midnight of November 1st in Moscow (the accounts' zone):
    # an interval ending then is October's; one ending after it November's
    october = datetime(2026, 10, 31, 20, 0, tzinfo=UTC)
    batch = [record(account_a, meter_a, [(0, "10"), (30, "11"), (60, "11.5"), (90, "13")],
                    start=october),
             record(account_b, meter_b, [(0, "1"), (45, "1.5")], start=october)]
    result = await rate(conn, *batch)
    assert result.charges == 4 and result.entry_id is not None
    cur = await conn.execute("SELECT book, account_id, service, period, amount FROM postings "
                             "WHERE entry_id = %s", (result.entry_id,))
    oct_, nov = date(2026, 10, 1), date(2026, 11, 1)
    assert set(await cur.fetchall()) == {
        ("subscriber", account_a, "electricity", oct_, -Decimal("1.5") * PRICE),
        ("subscriber", account_a, "electricity", nov, -Decimal("1.5") * PRICE),
        ("subscriber", account_b, "electricity", oct_, -Decimal("0.5") * PRICE),
        ("revenue", None, "electricity", oct_, 2 * PRICE),
        ("revenue", None, "electricity", nov, Decimal("1.5") * PRICE),
    }
    assert await one(conn, "SELECT count(DISTINCT entry_id) FROM charges WHERE meter_id = ANY(%s)",
                     [meter_a, meter_b]) == 1
    again = await rate(conn, *batch)  # delivered again: no line, no entry
    assert (again.charges, again.entry_id) == (0, None)
    for account in (account_a, account_b):
        assert await check(conn, account) == []


async def test_usage_of_a_closed_period_is_booked_in_the_next_open_one(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = factories.provider()  # its own provider: its periods are closed
    made = await factories.customer(conn, "100", seller=seller, price=PRICE)
    meter, account = made.meter_id, made.account_id
    for month in (date(2026, 9, 1), date(2026, 10, 1)):
        await close_period(conn, seller.id, month)
    september = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)
    await rate(conn, record(account, meter, [(0, "5"), (60, "7")], provider=seller.id,
                            start=september))
    assert await one(conn, "SELECT period, quantity FROM charges WHERE meter_id = %s",
                     meter) == (date(2026, 11, 1), Decimal(2))
    assert await one(conn, "SELECT DISTINCT period FROM ledger WHERE account_id = %s "
                           "AND kind = 'usage'", account) == date(2026, 11, 1)
