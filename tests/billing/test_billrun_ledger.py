"""The bill run in the journal ledger: a town's bill reconciles with the journal per provider
and service, billing again posts nothing, a changed bill is reversed and reposted, a closed
period is never billed again, and documents carry the debt and payments the journal holds."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from billing.billrun.run import bill
from meterline import ledger
from meterline.bill_runs import Selection
from meterline.documents.assemble import payment_document, payment_documents
from meterline.documents.pdf import render_pdf
from meterline.errors import Conflict
from meterline.ledger import Book, Entry, EntryKind, Posting
from meterline.money import kopecks
from meterline.periods import close_period
from meterline.tariffs.benefit_entries import book_benefits
from meterline.units import Service
from tests.billing.test_documents import pdf_text
from tests.factories import grant_benefit, housing, instalment_agreement, reading, town

D = Decimal
PERIOD = date(2026, 3, 1)


async def bill_postings(conn: psycopg.AsyncConnection[Any], providers: list[str],
                        book: str) -> dict[tuple[str, str], Decimal]:
    """The bill runs' postings of ``book`` per (provider, service) of the period."""
    cur = await conn.execute("""
        SELECT p.provider_id, p.service, sum(p.amount)
          FROM postings p JOIN entries e ON e.id = p.entry_id
         WHERE e.key LIKE 'bill:2026-03:%%' AND p.book = %s AND p.provider_id = ANY(%s)
           AND p.period = %s
         GROUP BY 1, 2""", (book, providers, PERIOD))
    return {(p, s): amount for p, s, amount in await cur.fetchall() if amount}


async def test_a_towns_bill_reconciles_with_the_journal_and_billing_again_posts_nothing(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await town(conn, accounts=120, months=3, seed=3)
    await bill(conn, PERIOD, Selection(region=made.spec.region), "test")
    cur = await conn.execute("SELECT id FROM accounts WHERE id LIKE %s || '%%' ORDER BY id",
                             (made.spec.prefix,))
    accounts = [a for (a,) in await cur.fetchall()]
    docs = await payment_documents(conn, PERIOD, accounts)
    assert len(docs) == 120

    charged: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    benefits: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for doc in docs:
        for line in doc.lines:
            charged[(line.provider_id, line.service)] += line.charged + line.recalculation
            if line.benefit:
                benefits[(line.provider_id, line.service)] += line.benefit
    providers = sorted(set(made.providers.values()))
    assert await bill_postings(conn, providers, "revenue") == dict(charged)
    assert not benefits  # the tariffs' benefits job books them, not the bill run
    booked = await book_benefits(conn, PERIOD)
    assert {b.rule for b in booked if b.amount} == {"veteran_maintenance", "veteran_heating"}
    docs = await payment_documents(conn, PERIOD, accounts)
    cur = await conn.execute("""
        SELECT p.provider_id, p.service, sum(p.amount) FROM postings p
          JOIN entries e ON e.id = p.entry_id
         WHERE e.kind = 'benefit' AND p.book = 'subscriber' AND p.account_id = ANY(%s)
         GROUP BY 1, 2""", (accounts,))
    journal = {(p, s): amount for p, s, amount in await cur.fetchall()}
    shown: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for doc in docs:
        for line in doc.lines:
            if line.benefit:
                shown[(line.provider_id, line.service)] += line.benefit
    assert set(shown) == set(journal)
    for key, amount in journal.items():  # each document shows its benefit in kopecks
        assert abs(shown[key] - amount) <= D("0.005") * len(docs)
    # each account's balance with each provider is minus what its document asks
    cur = await conn.execute("""
        SELECT account_id, provider_id, amount FROM balances WHERE account_id = ANY(%s)""",
        (accounts,))
    balances = {(a, p): amount for a, p, amount in await cur.fetchall()}
    for doc in docs:  # (a benefit is booked to the ledger's 12 decimals, shown in kopecks)
        for total in doc.payees:
            owed = -balances[(doc.account_id, total.payee.provider_id)]
            assert abs(kopecks(owed) - total.charged) <= D("0.01")
    assert await ledger.check(conn, accounts[0]) == []

    cur = await conn.execute("SELECT count(*) FROM entries WHERE key LIKE 'bill:2026-03:%%'")
    entries = await cur.fetchone()
    await bill(conn, PERIOD, Selection(region=made.spec.region), "again")
    cur = await conn.execute("SELECT count(*) FROM entries WHERE key LIKE 'bill:2026-03:%%'")
    assert await cur.fetchone() == entries
    cur = await conn.execute("""
        SELECT account_id, provider_id, amount FROM balances WHERE account_id = ANY(%s)""",
        (accounts,))
    assert {(a, p): amount for a, p, amount in await cur.fetchall()} == balances


async def test_a_changed_bill_is_reversed_and_reposted(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2), ("30", 1)], services=(Service.COLD_WATER,))
    one, two = house.accounts
    water = house.providers[Service.COLD_WATER]
    await reading(conn, house.meter(two, Service.COLD_WATER), "2026-03-10T10:00+03:00", "2")
    first = await bill(conn, PERIOD, Selection(region=house.region), "test")
    before = {a: (await payment_document(conn, PERIOD, a)).to_pay for a in (one, two)}

    await reading(conn, house.meter(two, Service.COLD_WATER), "2026-03-24T10:00+03:00", "5")
    again = await bill(conn, PERIOD, Selection(region=house.region), "late reading")
    cur = await conn.execute("""
        SELECT e.kind, p.account_id, p.amount FROM entries e JOIN postings p
            ON p.entry_id = e.id
         WHERE e.key LIKE %s AND p.book = 'subscriber' ORDER BY e.id""",
        (f"bill:2026-03:{again.id}:%",))
    moved = await cur.fetchall()
    # flat two's cold water only (flat one's bill did not change): 2 m³ then 5 m³
    individual = D("104.60")  # 2 x 52.30
    assert [(k, a) for k, a, _ in moved] == [("reversal", two), ("charge", two)]
    assert moved[0][2] == before[two] and moved[0][2] > individual
    after = await payment_document(conn, PERIOD, two)
    assert moved[1][2] == -after.to_pay
    cur = await conn.execute(
        "SELECT amount FROM balances WHERE account_id = %s AND provider_id = %s", (two, water))
    assert await cur.fetchone() == (-after.to_pay,)
    assert (await payment_document(conn, PERIOD, one)).to_pay == before[one]
    assert first.id != again.id and await ledger.check(conn, two) == []


async def test_a_closed_period_is_not_billed_again(conn: psycopg.AsyncConnection[Any]) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    await bill(conn, PERIOD, Selection(region=house.region), "test")
    async with conn.transaction():
        await close_period(conn, house.providers[Service.MAINTENANCE], PERIOD)
    with pytest.raises(Conflict, match="2026-03 is closed for "
                                       f"{house.providers[Service.MAINTENANCE]}"):
        await bill(conn, PERIOD, Selection(region=house.region), "again")
    # the next period is billed as usual
    await bill(conn, date(2026, 4, 1), Selection(region=house.region), "next")


async def test_documents_carry_the_debt_brought_forward_and_payments_received(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE, Service.WASTE),
                          metered=())
    (flat,) = house.accounts
    uk = house.providers[Service.MAINTENANCE]
    await bill(conn, date(2026, 1, 1), Selection(region=house.region), "test")
    await ledger.post(conn, [Entry(
        EntryKind.PAYMENT, f"payment:{flat}:feb", (
            Posting(Book.SUBSCRIBER, uk, D("1000.00"), flat, Service.MAINTENANCE,
                    date(2026, 1, 1)),
            Posting(Book.CLEARING, uk, D("-1000.00"))),
        booked_at=datetime(2026, 2, 10, 9, 0, tzinfo=UTC))])
    await bill(conn, date(2026, 2, 1), Selection(region=house.region), "test")
    doc = await payment_document(conn, date(2026, 2, 1), flat)
    (maintenance,) = [t for t in doc.payees if t.payee.provider_id == uk]
    assert (maintenance.charged, maintenance.debt, maintenance.paid) == (
        D("1710.00"), D("1710.00"), D("1000.00"))
    assert maintenance.to_pay == D("2420.00")
    line = next(line for line in doc.lines if line.service == Service.MAINTENANCE)
    assert line.debt == D("1710.00")


async def test_a_debt_under_a_repayment_agreement_is_asked_for_by_its_parts(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    (flat,) = house.accounts
    uk = house.providers[Service.MAINTENANCE]
    await bill(conn, date(2026, 1, 1), Selection(region=house.region), "test")  # 1,710.00
    await bill(conn, date(2026, 2, 1), Selection(region=house.region), "test")  # 1,710.00
    # January's and February's 3,420.00 in three parts due on the 10th of April, May, June
    await instalment_agreement(conn, flat, uk, "3420.00", signed_on=date(2026, 3, 5),
                               parts=3, first_due=date(2026, 4, 10))
    await bill(conn, date(2026, 3, 1), Selection(region=house.region), "test")
    doc = await payment_document(conn, date(2026, 3, 1), flat)
    (total,) = doc.payees
    # due with March's document (by April 10th): March's bill and the first part; the two
    # parts due later are not asked for yet
    assert (total.charged, total.instalment, total.debt) == (
        D("1710.00"), D("1140.00"), D("0.00"))
    assert total.to_pay == D("2850.00")
    (item,) = doc.instalments
    assert (item.provider_id, item.remaining, item.due_this_period) == (
        uk, D("3420.00"), D("1140.00"))
    text = pdf_text(render_pdf(doc))
    assert "остаток 3 420,00, к оплате в периоде 1 140,00" in text
    assert "рассрочка 1 140,00" in text

    # nothing was paid: by April's document the first part is overdue and back in the debt
    await bill(conn, date(2026, 4, 1), Selection(region=house.region), "test")
    (total,) = (await payment_document(conn, date(2026, 4, 1), flat)).payees
    assert (total.instalment, total.debt) == (D("1140.00"), D("1710.00") + D("1140.00"))
    assert total.to_pay == D("1710.00") * 4 - D("1140.00")  # all but the part due in June


async def test_a_benefit_rests_on_the_bill_as_corrected_not_on_every_bill_posted(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 1)], services=(Service.MAINTENANCE,), metered=())
    (flat,) = house.accounts
    await grant_benefit(conn, flat, "veteran_maintenance", "maintenance", PERIOD)
    await bill(conn, PERIOD, Selection(region=house.region), "test")
    (first,) = await book_benefits_of(conn, flat)
    assert first.amount == D("307.80")  # 50 % of 18 m² of 50 at 34.20 (1,710.00)

    await conn.execute("UPDATE accounts SET area = 60 WHERE id = %s", (flat,))
    await bill(conn, PERIOD, Selection(region=house.region), "area corrected")
    (again,) = await book_benefits_of(conn, flat)
    # the bill is reversed and reposted (2,052.00); the benefit rests on it alone: 50 % of
    # 18 m² of 60 is the same 307.80 (counting the reversed bill too would give 564.30)
    assert (again.action, again.amount) == ("unchanged", D("307.80"))
    cur = await conn.execute("""
        SELECT sum(p.amount) FROM postings p JOIN entries e ON e.id = p.entry_id
         WHERE p.account_id = %s AND p.book = 'subscriber' AND p.period = %s""",
        (flat, PERIOD))
    assert await cur.fetchone() == (D("-2052.00") + D("307.80"),)


async def book_benefits_of(conn: psycopg.AsyncConnection[Any], account: str) -> list[Any]:
    return [b for b in await book_benefits(conn, PERIOD) if b.account_id == account]
