"""Properties of the money model, tried by hypothesis against the real PostgreSQL: the order and
repetition of deliveries does not change what is charged, every entry balances, and money is
exact (never a float)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline.contracts import AccountReadings, Reading
from meterline.errors import Invalid
from meterline.fleet import Provider
from meterline.ledger import Book, Entry, EntryKind, Posting, check, post
from meterline.units import Register, Unit, Utility
from rating.ledger import load_tariffs, rate_batch
from tests import factories
from tests.conftest import unique

T0 = datetime(2026, 10, 20, 0, 0, tzinfo=UTC)
PRICE = Decimal("4.987651")
PROVIDER = Provider(id="property-test", name="Property test provider")
INSTALLED = Decimal("100")

SETTINGS = settings(max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# a meter's readings: strictly later times (minutes), values that never fall (micro-units)
readings_of_a_meter = st.lists(
    st.tuples(st.integers(1, 600), st.integers(0, 3_000_000)), min_size=2, max_size=12,
).map(lambda steps: [
    (sum(dt for dt, _ in steps[:k + 1]),
     INSTALLED + Decimal(sum(dv for _, dv in steps[:k + 1])).scaleb(-6))
    for k in range(len(steps))
])


def record(account: str, meter: str, points: list[tuple[int, Decimal]]) -> AccountReadings:
    return AccountReadings(account=account, gateway="gw", seq=0, readings=[
        Reading(meter=meter, register=Register.ACTIVE_IMPORT, unit=Unit.KWH, value=v,
                ts=T0 + timedelta(minutes=m), provider=PROVIDER.id, utility=Utility.ELECTRICITY)
        for m, v in points])


async def meter(conn: psycopg.AsyncConnection[Any]) -> tuple[str, str]:
    made = await factories.customer(conn, "1000", seller=PROVIDER, price=PRICE,
                                    installation_reading=INSTALLED,
                                    installed_at=T0 - timedelta(days=1))
    return made.account_id, made.meter_id


async def deliver(conn: psycopg.AsyncConnection[Any], account: str, meter_id: str,
                  batches: list[list[tuple[int, Decimal]]]) -> None:
    book = await load_tariffs(conn)
    for batch in batches:
        await rate_batch(conn, [record(account, meter_id, batch)], book)


async def booked(conn: psycopg.AsyncConnection[Any], account: str,
                 meter_id: str) -> tuple[Decimal, set[tuple[Any, ...]]]:
    """The account's balance, and the net charged per interval of its meter."""
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s", (account,))
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute("""SELECT interval_start, interval_end, sum(quantity), sum(amount)
                                  FROM charges WHERE meter_id = %s
                                 GROUP BY interval_start, interval_end""", (meter_id,))
    return row[0], set(await cur.fetchall())


async def net(conn: psycopg.AsyncConnection[Any], meter_id: str) -> set[tuple[Any, ...]]:
    """The net charged per interval of the meter, where anything is (reversals netted out)."""
    cur = await conn.execute("""SELECT interval_start, interval_end, sum(quantity), sum(amount)
                                  FROM charges WHERE meter_id = %s
                                 GROUP BY interval_start, interval_end
                                HAVING sum(quantity) <> 0 OR sum(amount) <> 0""", (meter_id,))
    return set(await cur.fetchall())


def shuffled_with_repeats(points: list[tuple[int, Decimal]], rnd: random.Random,
                          ) -> list[tuple[int, Decimal]]:
    repeated = points + rnd.choices(points, k=rnd.randint(0, len(points)))
    rnd.shuffle(repeated)
    return repeated


@SETTINGS
@given(points=readings_of_a_meter, seed=st.randoms(use_true_random=False))
async def test_any_order_and_repetition_in_a_batch_books_the_same_money(
    conn: psycopg.AsyncConnection[Any], points: list[tuple[int, Decimal]], seed: random.Random,
) -> None:
    reference, mixed = await meter(conn), await meter(conn)
    await deliver(conn, *reference, [points])
    await deliver(conn, *mixed, [shuffled_with_repeats(points, seed)])
    (balance, intervals), (mixed_balance, mixed_intervals) = (
        await booked(conn, *reference), await booked(conn, *mixed))
    assert mixed_balance == balance
    assert mixed_intervals == intervals
    # exactly consumption x price, from the installation reading to the last one
    assert balance == Decimal(1000) - (points[-1][1] - INSTALLED) * PRICE
    assert await check(conn, mixed[0]) == []


@SETTINGS
@given(points=readings_of_a_meter, seed=st.randoms(use_true_random=False))
async def test_batches_delivered_in_order_and_again_book_the_same_money_per_interval(
    conn: psycopg.AsyncConnection[Any], points: list[tuple[int, Decimal]], seed: random.Random,
) -> None:
    reference, redelivered = await meter(conn), await meter(conn)
    await deliver(conn, *reference, [points])
    cuts = sorted(seed.sample(range(1, len(points)), k=seed.randint(0, len(points) - 1)))
    chunks = [points[a:b] for a, b in zip([0, *cuts], [*cuts, len(points)], strict=True)]
    deliveries: list[list[tuple[int, Decimal]]] = []
    for k, chunk in enumerate(chunks):  # each batch mixed up, earlier ones delivered again
        deliveries.append(shuffled_with_repeats(chunk, seed))
        deliveries += [seed.choice(chunks[:k + 1]) for _ in range(seed.randint(0, 2))]
    await deliver(conn, *redelivered, deliveries)
    assert await booked(conn, *redelivered) == await booked(conn, *reference)
    assert await check(conn, redelivered[0]) == []


@SETTINGS
@given(points=readings_of_a_meter, seed=st.randoms(use_true_random=False))
async def test_batches_in_any_order_book_the_same_balance(
    conn: psycopg.AsyncConnection[Any], points: list[tuple[int, Decimal]], seed: random.Random,
) -> None:
    # A reading older than the last one booked re-rates the interval it falls inside (reversal
    # and repost), so the net charged per interval ends up as if they came in order.
    reference, mixed = await meter(conn), await meter(conn)
    await deliver(conn, *reference, [points])
    batches = [[p] for p in shuffled_with_repeats(points, seed)]
    await deliver(conn, *mixed, batches)
    assert await net(conn, mixed[1]) == await net(conn, reference[1])
    assert (await booked(conn, *mixed))[0] == (await booked(conn, *reference))[0]
    cur = await conn.execute("SELECT count(*) FROM charges WHERE meter_id = %s "
                             "AND amount <> quantity * unit_price", (mixed[1],))
    assert await cur.fetchone() == (0,)  # every line is exactly quantity x price
    assert await check(conn, mixed[0]) == []


amounts = st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=12,
                      allow_nan=False, allow_infinity=False)


@SETTINGS
@given(parts=st.lists(st.tuples(st.sampled_from([Book.REVENUE, Book.PENALTIES,
                                                   Book.DISCOUNTS, Book.CLEARING]), amounts),
                      min_size=1, max_size=6),
       skew=st.one_of(st.just(Decimal(0)), amounts))
async def test_an_entry_is_posted_only_if_it_balances_and_then_balances_the_books(
    conn: psycopg.AsyncConnection[Any], parts: list[tuple[Book, Decimal]], skew: Decimal,
) -> None:
    who = await factories.customer(conn, "0")
    total = sum((amount for _, amount in parts), Decimal(0))
    entry = Entry(EntryKind.ADJUSTMENT, unique("prop"), (
        Posting(Book.SUBSCRIBER, who.provider_id, -total + skew, account_id=who.account_id),
        *(Posting(book, who.provider_id, amount) for book, amount in parts),
    ))
    if skew:
        with pytest.raises(Invalid):
            await post(conn, [entry])
        expected = Decimal(0)
    else:
        await post(conn, [entry])
        expected = -total
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s",
                             (who.account_id,))
    assert await cur.fetchone() == (expected,)
    assert await check(conn, who.account_id) == []


@SETTINGS
@given(amount=st.floats(allow_nan=True, allow_infinity=True))
async def test_no_float_reaches_money(conn: psycopg.AsyncConnection[Any], amount: float) -> None:
    who = await factories.customer(conn, "0")
    with pytest.raises(Invalid, match="money is never a float"):
        await post(conn, [Entry(EntryKind.ADJUSTMENT, unique("float"), (
            Posting(Book.SUBSCRIBER, who.provider_id, amount,  # type: ignore[arg-type]
                    account_id=who.account_id),
            Posting(Book.REVENUE, who.provider_id, -amount),  # type: ignore[arg-type]
        ))])


# a meter's readings with resets: (minutes, value) where a reset drops the register to a low
# value far below the level (so the next reading confirms it rather than showing a glitch)
readings_with_resets = st.lists(
    st.tuples(st.integers(1, 600), st.integers(0, 3_000_000), st.booleans()),
    min_size=2, max_size=12,
).map(lambda steps: _with_resets(steps))


def _with_resets(steps: list[tuple[int, int, bool]]) -> list[tuple[int, Decimal]]:
    points: list[tuple[int, Decimal]] = []
    t, value = 0, 100_000_000  # micro-units: 100 kWh, the installation reading
    for dt, dv, reset in steps:
        t += dt
        value = dv // 1000 if reset and value > 10_000_000 else value + dv
        points.append((t, Decimal(value).scaleb(-6)))
    return points


@SETTINGS
@given(points=readings_with_resets, seed=st.randoms(use_true_random=False))
async def test_resets_in_one_batch_or_consecutive_batches_book_the_same(
    conn: psycopg.AsyncConnection[Any], points: list[tuple[int, Decimal]], seed: random.Random,
) -> None:
    whole, parts = await meter(conn), await meter(conn)
    await deliver(conn, *whole, [points])
    cuts = sorted(seed.sample(range(1, len(points)), k=seed.randint(0, len(points) - 1)))
    await deliver(conn, *parts, [points[a:b] for a, b in zip([0, *cuts], [*cuts, len(points)],
                                                             strict=True)])
    assert await booked(conn, *parts) == await booked(conn, *whole)
    cur = await conn.execute("SELECT meter_id, count(*) FROM events WHERE kind = "
                             "'register_reset' AND meter_id = ANY(%s) GROUP BY meter_id",
                             ([whole[1], parts[1]],))
    counts = dict(await cur.fetchall())
    assert counts.get(whole[1], 0) == counts.get(parts[1], 0)
    cur = await conn.execute("SELECT count(*) FROM dead_letters WHERE payload LIKE %s "
                             "OR payload LIKE %s", (f"%{whole[1]}%", f"%{parts[1]}%"))
    assert await cur.fetchone() == (0,)
    assert await check(conn, parts[0]) == []
