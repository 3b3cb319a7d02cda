"""Receiving a payment: one journal entry on the payment's natural key, whatever the channel
(online, bank registry, cash desk). In the kernel because every channel's service takes
payments: the back office's registries, the API's online payments and cash desk.

The entry credits the account's wallets per provider, service and period as `allocation`
splits the payment over what the journal says is owed (``subscriber +share``), against the
channel's clearing per provider (``clearing -collected``), which settlement later closes. A
prepaid top-up that names a provider credits that provider's wallet whole. Penalties are
owed per provider and service without a period, so money paying them is told apart from
money paying a month's charge.

Everything runs in the caller's transaction; `receive` is one payment, `receive_many` a
batch (one query for every account's debts, one statement per table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from meterline.allocation import (
    Due,
    Item,
    ServiceLine,
    Share,
    allocate,
    by_provider,
)
from meterline.emergency_credit import recover_from_topup
from meterline.errors import Conflict, Invalid, NotFound
from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.relay import decide_relays
from meterline.units import Service


@dataclass(frozen=True)
class Payment:
    key: str  # natural key: payment:<channel>:<the channel's own id>
    channel: str  # online | registry | cash
    account_id: str
    amount: Decimal
    paid_at: datetime
    period: date | None = None  # the period the payer named
    items: Sequence[Item] | None = None  # the payer's own split per service
    provider_id: str | None = None  # a prepaid top-up naming its provider
    registry_id: int | None = None
    line: int | None = None


@dataclass(frozen=True)
class Received:
    payment: Payment
    entry_id: int
    shares: tuple[Share, ...]
    new: bool  # False: this key was received before; nothing moved now


@dataclass(frozen=True)
class Books:
    """What one account owes and buys, read from the journal and its services."""

    time_zone: str
    billing_mode: str
    dues: list[Due]
    penalties: list[Due]
    lines: list[ServiceLine]


# What is owed per provider, service and period (penalties: per provider and service, no
# period): the subscriber postings netted, negative sums only; with the due date of each.
_DUES = """
SELECT p.account_id, p.provider_id, p.service, p.period, -sum(p.amount) AS owed,
       charge_due(p.period, coalesce(t.due_day, 10)) AS due_date
  FROM postings p
  LEFT JOIN payment_terms t ON t.provider_id = p.provider_id
 WHERE p.book = 'subscriber' AND p.account_id = ANY(%(accounts)s) AND p.service IS NOT NULL
 GROUP BY p.account_id, p.provider_id, p.service, p.period, t.due_day
HAVING sum(p.amount) < 0
"""

# The services on each account (the back office's account_services, and the metered utilities
# of its meters), weighted by the charges of the account's latest charged period.
_LINES = """
WITH wanted AS (
    SELECT s.account_id, s.provider_id, s.service FROM account_services s
     WHERE s.account_id = ANY(%(accounts)s)
       AND s.valid_from <= %(day)s AND (s.valid_to IS NULL OR s.valid_to > %(day)s)
    UNION
    SELECT m.account_id, m.provider_id,
           CASE m.utility WHEN 'heat' THEN 'heating' ELSE m.utility END FROM meters m
     WHERE m.account_id = ANY(%(accounts)s)
), charged AS (
    SELECT p.account_id, p.provider_id, p.service, p.period, -sum(p.amount) AS amount
      FROM postings p JOIN entries e ON e.id = p.entry_id
     WHERE p.book = 'subscriber' AND p.account_id = ANY(%(accounts)s)
       AND e.kind IN ('charge', 'usage') AND p.period IS NOT NULL
     GROUP BY p.account_id, p.provider_id, p.service, p.period
), latest AS (
    SELECT account_id, max(period) AS period FROM charged GROUP BY account_id
)
SELECT w.account_id, w.provider_id, w.service, coalesce(c.amount, 0) AS latest
  FROM wanted w
  LEFT JOIN latest l ON l.account_id = w.account_id
  LEFT JOIN charged c ON c.account_id = w.account_id AND c.provider_id = w.provider_id
                     AND c.service = w.service AND c.period = l.period
 ORDER BY w.account_id, w.provider_id, w.service
"""

_ACCOUNTS = """
SELECT a.id, a.billing_mode, ad.time_zone
  FROM accounts a JOIN addresses ad ON ad.id = a.address_id
 WHERE a.id = ANY(%s)
"""

_LOCK = "SELECT 1 FROM balances WHERE account_id = ANY(%s) ORDER BY account_id, provider_id " \
        "FOR UPDATE"

_RECORD = """
INSERT INTO payments (key, channel, account_id, amount, paid_at, period, provider_id,
                      registry_id, line, entry_id)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::numeric[], %s::timestamptz[],
                     %s::date[], %s::text[], %s::bigint[], %s::integer[], %s::bigint[])
ON CONFLICT (key) DO NOTHING
"""

_EARLIER = "SELECT key, account_id, amount FROM payments WHERE key = ANY(%s)"


async def read_books(conn: psycopg.AsyncConnection[Any], account_ids: Sequence[str],
                     day: date) -> dict[str, Books]:
    """Every account's debts and services, in three queries."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_ACCOUNTS, (list(account_ids),))
    books = {r["id"]: Books(r["time_zone"], r["billing_mode"], [], [], [])
             for r in await cur.fetchall()}
    await cur.execute(_DUES, {"accounts": list(account_ids)})
    for r in await cur.fetchall():
        b = books[r["account_id"]]
        if r["period"] is None:
            b.penalties.append(Due(r["provider_id"], r["service"], None, r["owed"], day))
        else:
            b.dues.append(Due(r["provider_id"], r["service"], r["period"], r["owed"],
                              r["due_date"]))
    await cur.execute(_LINES, {"accounts": list(account_ids), "day": day})
    for r in await cur.fetchall():
        books[r["account_id"]].lines.append(
            ServiceLine(r["provider_id"], r["service"], r["latest"]))
    return books


def shares_of(payment: Payment, books: Books) -> list[Share]:
    """How the payment is split (a prepaid top-up naming a provider is not split)."""
    paid_on = payment.paid_at.astimezone(ZoneInfo(books.time_zone)).date()
    if payment.provider_id is not None:
        if payment.provider_id not in {ln.provider_id for ln in books.lines}:
            raise Invalid(f"account {payment.account_id} buys nothing from "
                          f"{payment.provider_id}", field=["provider_id"])
        return [Share(payment.provider_id, "", paid_on.replace(day=1), payment.amount,
                      advance=True)]
    lines = list(dict.fromkeys(books.lines))
    return allocate(payment.amount, books.dues, lines, paid_on=paid_on, period=payment.period,
                    items=payment.items, penalties=books.penalties)


def entry_of(payment: Payment, shares: Sequence[Share]) -> Entry:
    postings = [
        Posting(Book.SUBSCRIBER, s.provider_id, s.amount, account_id=payment.account_id,
                service=Service(s.service) if s.service else None,
                period=s.period if s.service and not s.penalty else None)
        for s in shares
    ]
    postings += [Posting(Book.CLEARING, provider, -collected)
                 for provider, collected in by_provider(shares).items()]
    return Entry(EntryKind.PAYMENT, payment.key, tuple(postings),
                 reason=f"{payment.channel} payment", booked_at=payment.paid_at)


async def receive_many(conn: psycopg.AsyncConnection[Any],
                       payments: Sequence[Payment]) -> list[Received]:
    """Post the payments whose keys are new (each one entry) and record them; a key received
    before is answered with what it was (a different account or amount: ``Conflict``)."""
    if not payments:
        return []
    async with conn.transaction():
        cur = await conn.execute(_EARLIER, ([p.key for p in payments],))
        earlier = {key: (account, amount) for key, account, amount in await cur.fetchall()}
        for p in payments:
            if p.key in earlier and earlier[p.key] != (p.account_id, p.amount):
                raise Conflict(f"payment {p.key} was received before for account "
                               f"{earlier[p.key][0]}, {earlier[p.key][1]}")
        fresh = list({p.key: p for p in payments if p.key not in earlier}.values())
        accounts = sorted({p.account_id for p in fresh})
        await conn.execute(_LOCK, (accounts,))
        day = max(p.paid_at for p in payments).date()
        books = await read_books(conn, accounts, day)
        missing = [a for a in accounts if a not in books]
        if missing:
            raise NotFound(f"no account {', '.join(missing)}")
        split: list[tuple[Payment, list[Share]]] = []
        for p in sorted(fresh, key=lambda p: p.paid_at):  # an account's earlier money first
            b = books[p.account_id]
            shares = shares_of(p, b)
            _apply(b, shares)
            split.append((p, shares))
        posted = await post(conn, [entry_of(p, shares) for p, shares in split])
        ids = {x.key: x.id for x in posted}
        await conn.execute(_RECORD, (
            [p.key for p, _ in split], [p.channel for p, _ in split],
            [p.account_id for p, _ in split], [p.amount for p, _ in split],
            [p.paid_at for p, _ in split], [p.period for p, _ in split],
            [p.provider_id for p, _ in split], [p.registry_id for p, _ in split],
            [p.line for p, _ in split], [ids[p.key] for p, _ in split],
        ))
        prepaid = [a for a in accounts if books[a].billing_mode == "prepaid"]
        for p, shares in split:  # a prepaid wallet's payment repays emergency credit too
            if p.account_id in prepaid:
                paid: dict[str, Decimal] = {}
                for s in shares:
                    paid[s.provider_id] = paid.get(s.provider_id, Decimal(0)) + s.amount
                for provider, amount in sorted(paid.items()):
                    await recover_from_topup(conn, p.account_id, provider, amount,
                                             f"{p.key}:{provider}")
        await decide_relays(conn, prepaid)
    done = {p.key: Received(p, ids[p.key], tuple(s), True) for p, s in split}
    return [done.get(p.key) or await _replay(conn, p) for p in payments]


async def receive(conn: psycopg.AsyncConnection[Any], payment: Payment) -> Received:
    (received,) = await receive_many(conn, [payment])
    return received


def _apply(books: Books, shares: Sequence[Share]) -> None:
    """Count a payment's shares against the debts, so the account's next payment in the same
    batch sees what is still owed."""
    for s in shares:
        pool = books.penalties if s.penalty else books.dues
        for n, d in enumerate(pool):
            if (d.provider_id, d.service, d.period) == (s.provider_id, s.service,
                                                        None if s.penalty else s.period):
                pool[n] = Due(d.provider_id, d.service, d.period, d.amount - s.amount,
                              d.due_date)
                break


_SHARES = """
SELECT p.provider_id, p.service, p.period, p.amount
  FROM postings p JOIN entries e ON e.id = p.entry_id
 WHERE e.key = %s AND p.book = 'subscriber'
"""


async def _replay(conn: psycopg.AsyncConnection[Any], payment: Payment) -> Received:
    cur = await conn.execute("SELECT entry_id FROM payments WHERE key = %s", (payment.key,))
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(_SHARES, (payment.key,))
    shares = tuple(Share(p, s or "", d or payment.paid_at.date().replace(day=1), a,
                         penalty=s is not None and d is None)
                   for p, s, d, a in await cur.fetchall())
    return Received(payment, row[0], shares, False)
