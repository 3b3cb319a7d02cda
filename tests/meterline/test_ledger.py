"""The journal kernel (meterline.ledger) and the rules the database keeps, on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from meterline import ledger
from meterline.errors import Invalid, NotFound
from meterline.ledger import (
    AlreadyReversed,
    Book,
    Entry,
    EntryKeyReused,
    EntryKind,
    Line,
    Posting,
    check,
    post,
    post_lines,
    reverse,
    stage_lines,
)
from meterline.units import Service
from tests.conftest import unique
from tests.factories import Customer, customer, customers, provider
from tests.waiting import until

NOV = date(2026, 11, 1)


async def balance(conn: psycopg.AsyncConnection[Any], who: Customer) -> Decimal:
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s "
                             "AND provider_id = %s", (who.account_id, who.provider_id))
    row = await cur.fetchone()
    assert row is not None
    amount: Decimal = row[0]
    return amount


def topup(who: Customer, amount: str, key: str | None = None) -> Entry:
    return Entry(EntryKind.TOPUP, key or unique("topup"), (
        Posting(Book.SUBSCRIBER, who.provider_id, Decimal(amount), account_id=who.account_id),
        Posting(Book.CLEARING, who.provider_id, -Decimal(amount)),
    ))


def penalty(who: Customer, amount: str, key: str | None = None) -> Entry:
    return Entry(EntryKind.PENALTY, key or unique("penalty"), (
        Posting(Book.SUBSCRIBER, who.provider_id, -Decimal(amount), account_id=who.account_id,
                service=Service.ELECTRICITY, period=NOV),
        Posting(Book.PENALTIES, who.provider_id, Decimal(amount), service=Service.ELECTRICITY,
                period=NOV),
    ), reason="late payment")


@pytest.fixture
async def tx(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection whose work is rolled back at the end (for states the database refuses to
    keep, made with its triggers off)."""
    async with await psycopg.AsyncConnection.connect(pg_url) as connection:
        yield connection
        await connection.rollback()


async def test_an_entry_moves_the_balance_by_its_subscriber_postings_once(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    who = await customer(conn, "10")
    entry = topup(who, "100.5")
    (first,) = await post(conn, [entry])
    (again,) = await post(conn, [entry, entry])  # the same entry twice, then again: once
    assert first.new and not again.new and again.id == first.id
    assert await balance(conn, who) == Decimal("110.5")
    cur = await conn.execute("SELECT book, amount FROM postings WHERE entry_id = %s "
                             "ORDER BY book", (first.id,))
    assert await cur.fetchall() == [("clearing", Decimal("-100.5")),
                                    ("subscriber", Decimal("100.5"))]
    assert await check(conn, who.account_id) == []


async def test_an_entry_key_names_one_movement_of_money(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    who = await customer(conn, "0")
    key = unique("topup")
    await post(conn, [topup(who, "5", key)])
    # the same postings spelt with other trailing zeros are the same entry
    (same,) = await post(conn, [topup(who, "5.000", key)])
    assert not same.new
    with pytest.raises(EntryKeyReused):
        await post(conn, [topup(who, "6", key)])
    with pytest.raises(EntryKeyReused):
        await post(conn, [topup(who, "1", "twice"), topup(who, "2", "twice")])
    assert await balance(conn, who) == Decimal(5)


@pytest.mark.parametrize(("amount", "code"), [
    (0.1, "inexact-amount"),  # a float never reaches money
    (Decimal("NaN"), "inexact-amount"),
    (Decimal("0.0000000000001"), "inexact-amount"),  # 13 decimals: NUMERIC(28, 12) would round
    (Decimal("1e16"), "inexact-amount"),
])
async def test_amounts_the_journal_cannot_hold_exactly_are_refused(
    conn: psycopg.AsyncConnection[Any], amount: Any, code: str,
) -> None:
    who = await customer(conn, "0")
    entry = Entry(EntryKind.ADJUSTMENT, unique("adj"), (
        Posting(Book.SUBSCRIBER, who.provider_id, amount, account_id=who.account_id),
        Posting(Book.REVENUE, who.provider_id, amount),
    ))
    with pytest.raises(Invalid) as refused:
        await post(conn, [entry])
    assert refused.value.code == code
    assert await balance(conn, who) == 0


async def test_an_unbalanced_entry_is_refused_by_the_kernel_and_by_the_database(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    who = await customer(conn, "0")
    lopsided = Entry(EntryKind.ADJUSTMENT, unique("adj"), (
        Posting(Book.SUBSCRIBER, who.provider_id, Decimal("1"), account_id=who.account_id),
        Posting(Book.REVENUE, who.provider_id, Decimal("-0.999999999999")),
    ))
    with pytest.raises(Invalid, match="does not balance: its postings sum to 1E-12"):
        await post(conn, [lopsided])
    with pytest.raises(Invalid, match="names its account"):
        await post(conn, [Entry(EntryKind.ADJUSTMENT, unique("adj"), (
            Posting(Book.SUBSCRIBER, who.provider_id, Decimal(1)),
            Posting(Book.REVENUE, who.provider_id, Decimal(-1))))])
    # straight SQL that bypasses the kernel meets the same rule in the database
    async with conn.transaction():
        cur = await conn.execute("INSERT INTO entries (kind, key) VALUES ('adjustment', %s) "
                                 "RETURNING id", (unique("adj"),))
        row = await cur.fetchone()
        assert row is not None
        with pytest.raises(psycopg.errors.CheckViolation, match="does not balance"):
            await conn.execute(
                "INSERT INTO postings (entry_id, book, provider_id, account_id, amount) "
                "VALUES (%s, 'subscriber', %s, %s, 5)", (row[0], who.provider_id, who.account_id))
        raise psycopg.Rollback
    assert await balance(conn, who) == 0


async def test_balances_and_the_journal_are_never_written_directly(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    who = await customer(conn, "7")
    (posted,) = await post(conn, [topup(who, "1")])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="through the ledger"):
        await conn.execute("UPDATE balances SET amount = 1000 WHERE account_id = %s",
                           (who.account_id,))
    for statement in ("UPDATE postings SET amount = 0 WHERE entry_id = %s",
                      "DELETE FROM postings WHERE entry_id = %s",
                      "DELETE FROM entries WHERE id = %s",
                      "UPDATE charges SET amount = 0 WHERE entry_id = %s"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await conn.execute(statement, (posted.id,))
    # a new balance row starts at zero; only postings move it
    other = provider()
    await conn.execute("INSERT INTO providers (id, name) VALUES (%s, %s)", (other.id, other.name))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await conn.execute("INSERT INTO balances (account_id, provider_id, amount) "
                           "VALUES (%s, %s, 3)", (who.account_id, other.id))
    assert await balance(conn, who) == Decimal(8)


async def test_a_reversal_mirrors_an_entry_once(conn: psycopg.AsyncConnection[Any]) -> None:
    who = await customer(conn, "100")
    charged = penalty(who, "12.34")
    (original,) = await post(conn, [charged])
    assert await balance(conn, who) == Decimal("87.66")

    first = await reverse(conn, charged.key, reason="penalty waived")
    again = await reverse(conn, charged.key, reason="penalty waived")
    assert first.new and not again.new and first.id == again.id
    assert await balance(conn, who) == Decimal(100)
    cur = await conn.execute("SELECT kind, reverses, reason FROM entries WHERE id = %s",
                             (first.id,))
    assert await cur.fetchone() == ("reversal", original.id, "penalty waived")
    cur = await conn.execute("SELECT book, amount, service, period FROM postings "
                             "WHERE entry_id = %s ORDER BY book", (first.id,))
    assert await cur.fetchall() == [("penalties", Decimal("-12.34"), "electricity", NOV),
                                    ("subscriber", Decimal("12.34"), "electricity", NOV)]
    with pytest.raises(AlreadyReversed):
        await reverse(conn, charged.key, reason="again", reversal_key=unique("rev"))
    with pytest.raises(NotFound):
        await reverse(conn, unique("missing"), reason="?")
    assert await check(conn, who.account_id) == []


async def test_the_bulk_path_posts_one_entry_aggregated_per_account_service_and_period(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    one, two = await customers(conn, ["0", "0"])
    dec = date(2026, 12, 1)
    key = unique("billrun")
    async with conn.transaction():
        await stage_lines(conn, [
            Line(one.account_id, one.provider_id, Decimal("-10.5"), Service.MAINTENANCE, NOV),
            Line(one.account_id, one.provider_id, Decimal("-0.25"), Service.MAINTENANCE, NOV),
            Line(one.account_id, one.provider_id, Decimal("-3"), Service.WASTE, NOV),
            Line(two.account_id, two.provider_id, Decimal("-7"), Service.MAINTENANCE, dec),
        ])
        posted = await post_lines(conn, kind=EntryKind.CHARGE, key=key, counter=Book.REVENUE,
                                  reason="November bill run")
    assert posted is not None and posted.new
    cur = await conn.execute("SELECT book, account_id, service, period, amount FROM postings "
                             "WHERE entry_id = %s", (posted.id,))
    assert set(await cur.fetchall()) == {
        ("revenue", None, "maintenance", NOV, Decimal("10.75")),
        ("revenue", None, "maintenance", dec, Decimal("7")),
        ("revenue", None, "waste", NOV, Decimal("3")),
        ("subscriber", one.account_id, "maintenance", NOV, Decimal("-10.75")),
        ("subscriber", one.account_id, "waste", NOV, Decimal("-3")),
        ("subscriber", two.account_id, "maintenance", dec, Decimal("-7")),
    }
    assert await balance(conn, one) == Decimal("-13.75")
    assert await balance(conn, two) == Decimal("-7")
    # the same run again posts nothing; nothing staged posts nothing
    async with conn.transaction():
        await stage_lines(conn, [Line(one.account_id, one.provider_id, Decimal("-1"))])
        replay = await post_lines(conn, kind=EntryKind.CHARGE, key=key, counter=Book.REVENUE)
        empty = await post_lines(conn, kind=EntryKind.CHARGE, key=unique("none"),
                                 counter=Book.REVENUE)
    assert replay is not None and not replay.new and replay.id == posted.id and empty is None
    assert await balance(conn, one) == Decimal("-13.75")
    # debt per (account, provider, service, period) is a query over subscriber postings
    cur = await conn.execute("""SELECT service, -sum(amount) FROM ledger
                                 WHERE account_id = %s GROUP BY service ORDER BY service""",
                             (one.account_id,))
    assert await cur.fetchall() == [("maintenance", Decimal("10.75")), ("waste", Decimal("3"))]


async def test_check_finds_what_is_wrong_and_names_it(
    tx: psycopg.AsyncConnection[Any],
) -> None:
    who = await customer(tx, "50")
    (posted,) = await post(tx, [penalty(who, "1")])
    assert await check(tx, who.account_id) == []
    # with the database's rules off, as a broken import or a hand edit would leave things
    await tx.execute("SET LOCAL session_replication_role = replica")
    await tx.execute("UPDATE balances SET amount = amount + 1 WHERE account_id = %s",
                     (who.account_id,))
    await tx.execute("INSERT INTO postings (entry_id, book, provider_id, amount) "
                     "VALUES (%s, 'penalties', %s, 0.5)", (posted.id, who.provider_id))
    await tx.execute("SET LOCAL session_replication_role = origin")
    problems = await check(tx, who.account_id)
    assert problems == [
        f"entry {posted.id} ({posted.key}) does not balance: its postings sum to 0.5",
        f"balance of {who.account_id} with {who.provider_id} is 50 but its subscriber "
        "postings sum to 49",
    ]
    with pytest.raises(NotFound):
        await check(tx, unique("nobody"))


async def test_events_are_written_once_per_key_with_exact_amounts(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    from meterline.events import Event, EventKind, emit

    who = await customer(conn, "0")
    key = unique("low")
    event = Event(EventKind.LOW_BALANCE, who.account_id, who.provider_id,
                  payload={"balance": Decimal("0.10"), "threshold": Decimal("50")}, key=key,
                  occurred_at=datetime(2026, 11, 27, 20, 30, tzinfo=UTC))
    assert await emit(conn, [event, Event(EventKind.TAMPER, who.account_id)]) == 2
    assert await emit(conn, [event]) == 0
    cur = await conn.execute("SELECT kind, payload, occurred_at FROM events WHERE key = %s",
                             (key,))
    assert await cur.fetchone() == ("low_balance", {"balance": "0.10", "threshold": "50"},
                                    datetime(2026, 11, 27, 20, 30, tzinfo=UTC))


def test_the_kernel_names_its_books_as_the_database_does() -> None:
    assert [b.value for b in Book] == ["subscriber", "revenue", "clearing", "discounts",
                                       "penalties", "payable", "commission", "opening",
                                       "recovery"]
    assert ledger.check_amount(Decimal("-0.000000000001")) == Decimal("-1e-12")


async def test_posting_never_commits_the_callers_work(pg_url: str,
                                                      conn: psycopg.AsyncConnection[Any]) -> None:
    who = await customer(conn, "0")
    async with await psycopg.AsyncConnection.connect(pg_url) as caller:  # not autocommit
        await post(caller, [topup(who, "5")])
        await caller.rollback()
        async with caller.transaction():
            await post(caller, [topup(who, "7")])
            raise psycopg.Rollback
    assert await balance(conn, who) == 0


async def _post_bulk(url: str, amounts: list[tuple[Customer, Decimal]], key: str,
                     held: asyncio.Event | None = None) -> None:
    """One transaction staging ``amounts`` in the order given and posting them as one entry
    (one statement inserts every posting); with ``held``, it commits only once that is set."""
    async with await psycopg.AsyncConnection.connect(url) as caller, caller.transaction():
        await stage_lines(caller, [Line(who.account_id, who.provider_id, amount,
                                        Service.ELECTRICITY, NOV)
                                   for who, amount in amounts])
        await post_lines(caller, kind=EntryKind.CHARGE, key=key, counter=Book.REVENUE)
        if held is not None:
            await held.wait()


async def _sessions(conn: psycopg.AsyncConnection[Any], condition: str) -> int:
    """How many other sessions of this database are in that state."""
    cur = await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                             "current_database() AND pid <> pg_backend_pid() AND " + condition)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_concurrent_bulk_entries_move_every_balance_once_without_deadlock(
    pg_url: str, conn: psycopg.AsyncConnection[Any],
) -> None:
    """Many postings in one statement, from transactions that overlap on the same balances
    and stage them in opposite orders: the balances are locked in one order (no deadlock),
    each moves by exactly its postings, and the books check."""
    people = await customers(conn, ["100"] * 40)
    rng = random.Random(5)
    expected = {who.account_id: Decimal(100) for who in people}

    def amounts(order: list[Customer]) -> list[tuple[Customer, Decimal]]:
        moved = [(who, -Decimal(rng.randrange(1, 10**6)) / 10**6) for who in order]
        for who, amount in moved:
            expected[who.account_id] += amount
        return moved

    async def both_waiting() -> bool:
        return await _sessions(conn, "wait_event_type = 'Lock'") == 2

    # the first holds every balance; two more, staged in the reverse and a shuffled order,
    # wait for it on the balances' row locks, then go on
    held = asyncio.Event()
    first = asyncio.create_task(_post_bulk(pg_url, amounts(people), unique("charge"), held))
    await until(lambda: _sessions(conn, "state = 'idle in transaction'"),
                what="the first entry posted, not committed")
    waiting = [asyncio.create_task(_post_bulk(pg_url, amounts(order), unique("charge")))
               for order in (people[::-1], rng.sample(people, len(people)))]
    await until(both_waiting, what="both later posters waiting on the balances' locks")
    held.set()
    await asyncio.gather(first, *waiting)

    # then many at once, each over a random part of the accounts in a random order
    await asyncio.gather(*(
        _post_bulk(pg_url, amounts(rng.sample(people, rng.randrange(10, len(people)))),
                   unique("charge"))
        for _ in range(12)))

    for who in people:
        assert await balance(conn, who) == expected[who.account_id]
    assert await check(conn) == []


async def test_what_a_posting_names_exists_and_stays(tx: psycopg.AsyncConnection[Any]) -> None:
    """The journal's references, checked per statement: a posting naming no entry, an unknown
    provider or account is refused; an account or provider the journal names, and a balance,
    are never deleted."""
    who = await customer(tx, "5")
    (posted,) = await post(tx, [topup(who, "1")])
    insert = ("INSERT INTO postings (entry_id, book, provider_id, account_id, amount) "
              "VALUES (%s, 'subscriber', %s, %s, 1), (%s, 'clearing', %s, NULL, -1)")
    for entry, provider_id, account, named in (
            (posted.id + 1000, who.provider_id, who.account_id, "no entry"),
            (posted.id, "nobody", who.account_id, "an unknown provider nobody"),
            (posted.id, who.provider_id, "A-nobody", "an unknown account A-nobody")):
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match=named):
            async with tx.transaction():
                await tx.execute(insert, (entry, provider_id, account, entry, provider_id))
    for statement, value in (("DELETE FROM accounts WHERE id = %s", who.account_id),
                             ("UPDATE providers SET id = 'renamed' WHERE id = %s",
                              who.provider_id)):
        with pytest.raises(psycopg.errors.IntegrityError, match="named by the journal"):
            async with tx.transaction():
                await tx.execute(statement, (value,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="balances are kept"):
        async with tx.transaction():
            await tx.execute("DELETE FROM balances WHERE account_id = %s", (who.account_id,))
    assert await balance(tx, who) == Decimal(6)
    assert await check(tx, who.account_id) == []
