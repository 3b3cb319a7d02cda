"""The journal ledger: every movement of money is one entry of postings that sum to zero.

An ``Entry`` (kind, unique natural ``key``, booked_at, reason, optional ``reverses``) holds
``Posting`` s over a small chart of accounts (``Book``). Sign convention, from the subscriber's
side: a top-up of 100 is ``subscriber +100, clearing -100``; usage of 6.43 is
``subscriber -6.43, revenue +6.43``; a penalty ``subscriber -p, penalties +p``; a benefit
``subscriber +d, discounts -d``; an opening balance ``subscriber +o, opening -o``.

What the database keeps (migration 0010): every entry balances; ``balances.amount`` is the sum
of the pair's ``subscriber`` postings, moved by a trigger in the statement that inserts them
and by nothing else (a direct write is refused); entries, postings and charge lines are
append-only, so a correction is a reversal and a repost.

Everything here runs inside the caller's transaction (`post` is one statement) and never
commits. Two ways in:

- ``post(conn, entries)``: any entries, set-based (arrays, one statement), idempotent
  on keys: an entry whose key exists is not posted again (the same key with other postings is a
  ``Conflict``). ``reverse`` posts the mirror of an entry.
- ``stage_lines`` + ``post_lines``: the bulk path for rating and bill runs. Subscriber-side
  amounts (account, provider, service, period) are staged in the session's ``ledger_lines``
  table (COPY, or ``INSERT ... SELECT`` from the caller's own SQL), then become ONE entry: a
  subscriber posting per (account, provider, service, period) and a counter posting per
  (provider, service, period) in the counter book.

``check`` proves the books: every entry balances, every cached balance equals its postings,
and every charge line's money is in the usage entry that booked it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from meterline.db import copy_rows
from meterline.errors import Conflict, Invalid, NotFound
from meterline.units import Service

PICO_EXP = Decimal("1e-12")
MAX_AMOUNT = Decimal(10) ** 16  # NUMERIC(28, 12): 16 digits before the point
MAX_KEY = 512


class Book(StrEnum):
    """The chart of accounts."""

    SUBSCRIBER = "subscriber"  # the account's wallet with a provider: + credit, - debt
    REVENUE = "revenue"  # the provider's revenue, per service
    CLEARING = "clearing"  # received through a payment channel, not settled yet
    DISCOUNTS = "discounts"  # discounts and benefits granted
    PENALTIES = "penalties"  # penalty income
    PAYABLE = "payable"  # collected for a provider, to be transferred
    COMMISSION = "commission"  # the collecting agent's commission
    OPENING = "opening"  # balances brought in from elsewhere
    RECOVERY = "recovery"  # owed outside the wallet (emergency credit), repaid from top-ups


class EntryKind(StrEnum):
    """What moved the money. The database accepts any lower-case word; these are the ones the
    platform writes (add yours here)."""

    USAGE = "usage"  # metered consumption priced by rating (charge lines carry the detail)
    CHARGE = "charge"  # a service charged by the bill run (maintenance, waste, ...)
    STANDING_CHARGE = "standing_charge"  # a plan's charge per account per day
    TOPUP = "topup"
    PAYMENT = "payment"
    OPENING = "opening"
    ADJUSTMENT = "adjustment"  # a manual correction, with its reason
    DISCOUNT = "discount"
    BENEFIT = "benefit"
    PENALTY = "penalty"
    REFUND = "refund"
    REVERSAL = "reversal"
    SETTLEMENT = "settlement"
    COMMISSION = "commission"
    EMERGENCY_CREDIT = "emergency_credit"  # credit a prepaid subscriber took (recovery book)
    RECOVERY = "recovery"  # a share of a top-up repaying emergency credit


@dataclass(frozen=True)
class Posting:
    """One line of an entry. ``amount`` is a ``Decimal`` with at most 12 decimals."""

    book: Book
    provider_id: str
    amount: Decimal
    account_id: str | None = None
    service: Service | None = None
    period: date | None = None  # first day of the billing month (the account's time zone)
    meter_id: str | None = None

    def negated(self) -> Posting:
        return replace(self, amount=-self.amount)

    def _identity(self) -> tuple[str, ...]:
        return (self.book.value, self.provider_id, self.account_id or "",
                self.service.value if self.service else "",
                self.period.isoformat() if self.period else "", self.meter_id or "",
                _text(self.amount))


@dataclass(frozen=True)
class Entry:
    """One movement of money. ``key`` is its natural key (``topup:<id>``, ``opening:<account>:
    <provider>``, ...): posting an entry whose key exists changes nothing."""

    kind: EntryKind
    key: str
    postings: tuple[Posting, ...]
    reason: str = ""
    booked_at: datetime | None = None  # None: the transaction's time
    reverses: int | None = None  # id of the entry this one reverses

    def _identity(self) -> tuple[Any, ...]:
        return (self.kind.value, tuple(sorted(p._identity() for p in self.postings)))


@dataclass(frozen=True)
class Posted:
    id: int
    key: str
    new: bool  # False: the key was posted before, nothing was posted now


@dataclass(frozen=True)
class Line:
    """A subscriber-side amount of a bulk entry (``post_lines``): negative for a charge."""

    account_id: str
    provider_id: str
    amount: Decimal
    service: Service | None = None
    period: date | None = None


class EntryKeyReused(Conflict):
    code = "entry-key-reused"
    title = "Entry key reused"


class AlreadyReversed(Conflict):
    code = "entry-already-reversed"
    title = "Entry already reversed"


# --- validation -----------------------------------------------------------------------------

def _text(amount: Decimal) -> str:
    """The amount as exact text without trailing zeros (50 == 50.000000000000)."""
    return format(amount.quantize(PICO_EXP), "f").rstrip("0").rstrip(".") or "0"


def check_amount(amount: object, what: str = "amount") -> Decimal:
    """A money amount as the journal stores it, or ``Invalid``: a finite ``Decimal`` (never a
    float) with at most 12 decimals and 16 digits before the point."""
    if not isinstance(amount, Decimal):
        raise Invalid(f"{what} must be a Decimal, not {type(amount).__name__}: money is never "
                      "a float", code="inexact-amount", field=[what])
    if not amount.is_finite():
        raise Invalid(f"{what} must be finite, not {amount}", code="inexact-amount", field=[what])
    with localcontext() as ctx:
        ctx.prec = 60
        try:
            exact = amount.quantize(PICO_EXP) == amount
        except InvalidOperation:
            exact = False
    if not exact or abs(amount) >= MAX_AMOUNT:
        raise Invalid(f"{what} {amount} does not fit the journal (at most 12 decimals, "
                      "16 digits before the point)", code="inexact-amount", field=[what])
    return amount


def _check_entry(entry: Entry) -> None:
    if not 1 <= len(entry.key) <= MAX_KEY:
        raise Invalid(f"an entry key has 1 to {MAX_KEY} characters: {entry.key[:40]!r}",
                      code="bad-entry", field=["key"])
    if not entry.postings:
        raise Invalid(f"entry {entry.key} has no postings", code="bad-entry")
    total = Decimal(0)
    for posting in entry.postings:
        total += check_amount(posting.amount, f"amount of a {posting.book} posting")
        if posting.book is Book.SUBSCRIBER and not posting.account_id:
            raise Invalid(f"entry {entry.key}: a subscriber posting names its account",
                          code="bad-entry")
        if posting.period is not None and posting.period.day != 1:
            raise Invalid(f"entry {entry.key}: a period is the first day of its month, "
                          f"not {posting.period}", code="bad-entry")
    if total != 0:
        raise Invalid(f"entry {entry.key} does not balance: its postings sum to {total}",
                      code="unbalanced-entry")
    if entry.booked_at is not None and entry.booked_at.tzinfo is None:
        raise Invalid(f"entry {entry.key}: booked_at needs a time zone", code="bad-entry")


def _distinct(entries: Iterable[Entry]) -> list[Entry]:
    """One entry per key; the same key twice with other postings is refused."""
    seen: dict[str, Entry] = {}
    for entry in entries:
        _check_entry(entry)
        earlier = seen.setdefault(entry.key, entry)
        if earlier is not entry and earlier._identity() != entry._identity():
            raise EntryKeyReused(f"entry key {entry.key} names two different entries")
    return list(seen.values())


# --- post and reverse -----------------------------------------------------------------------

def atomic(conn: psycopg.AsyncConnection[Any]) -> AbstractAsyncContextManager[Any]:
    """All or nothing without committing the caller's work: a savepoint inside a transaction;
    on a non-autocommit connection not in one yet, the implicit transaction that the caller
    commits; on an autocommit connection, a transaction of its own."""
    if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        return nullcontext()
    return conn.transaction()


# The entries whose keys are new and their postings, in one statement (all or nothing by
# itself): a posting names its entry by key; the balance trigger moves the balances at its end.
_POST = """
WITH new AS (
    INSERT INTO entries (kind, key, booked_at, reason, reverses)
    SELECT kind, key, coalesce(booked_at, now()), reason, reverses
      FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::bigint[])
           AS e(kind, key, booked_at, reason, reverses)
    ON CONFLICT (key) DO NOTHING
    RETURNING id, key
), lines AS (
    INSERT INTO postings (entry_id, book, provider_id, account_id, service, period, meter_id,
                          amount)
    SELECT new.id, p.book, p.provider_id, p.account_id, p.service, p.period, p.meter_id,
           p.amount
      FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::date[],
                  %s::text[], %s::numeric[]) WITH ORDINALITY
           AS p(key, book, provider_id, account_id, service, period, meter_id, amount, n)
      JOIN new ON new.key = p.key
     ORDER BY p.n
)
SELECT id, key FROM new
"""

_EARLIER = """
SELECT e.id, e.key, e.kind, p.book, p.provider_id, p.account_id, p.service, p.period,
       p.meter_id, p.amount
  FROM entries e JOIN postings p ON p.entry_id = e.id
 WHERE e.key = ANY(%s)
"""


async def post(conn: psycopg.AsyncConnection[Any], entries: Iterable[Entry]) -> list[Posted]:
    """Post the entries whose keys are new, all or none; the others must match what was
    posted under their key (else ``EntryKeyReused``). One ``Posted`` per distinct key.

    One statement, atomic by itself: on an autocommit connection it commits, in a
    transaction the caller commits it. Like any statement's, its database error aborts the
    caller's transaction (`atomic` around it keeps the rest, as `reverse` does)."""
    batch = _distinct(entries)
    if not batch:
        return []
    lines = [(e.key, p) for e in batch for p in e.postings]
    cur = await conn.execute(_POST, (
        [e.kind.value for e in batch], [e.key for e in batch],
        [e.booked_at for e in batch], [e.reason for e in batch],
        [e.reverses for e in batch],
        [k for k, _ in lines], [p.book.value for _, p in lines],
        [p.provider_id for _, p in lines], [p.account_id for _, p in lines],
        [p.service.value if p.service else None for _, p in lines],
        [p.period for _, p in lines], [p.meter_id for _, p in lines],
        [p.amount for _, p in lines],
    ))
    new_ids: dict[str, int] = {key: id_ for id_, key in await cur.fetchall()}
    old_ids = await _same_as_before([e for e in batch if e.key not in new_ids], conn)
    return [Posted(new_ids[e.key], e.key, True) if e.key in new_ids
            else Posted(old_ids[e.key], e.key, False) for e in batch]


async def _same_as_before(entries: Sequence[Entry],
                          conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    if not entries:
        return {}
    cur = await conn.execute(_EARLIER, ([e.key for e in entries],))
    ids: dict[str, int] = {}
    kinds: dict[str, str] = {}
    postings: dict[str, list[tuple[str, ...]]] = {}
    for id_, key, kind, book, provider, account, service, period, meter, amount in (
            await cur.fetchall()):
        ids[key], kinds[key] = id_, kind
        postings.setdefault(key, []).append((
            book, provider, account or "", service or "",
            period.isoformat() if period else "", meter or "", _text(amount)))
    for entry in entries:
        if entry.key not in ids:  # cannot happen: the conflicting entry is committed
            raise RuntimeError(f"entry {entry.key} conflicted but is not found")
        if (kinds[entry.key], tuple(sorted(postings[entry.key]))) != entry._identity():
            raise EntryKeyReused(f"entry key {entry.key} was already posted with other "
                                 "postings; a correction is a reversal and a new entry")
    return ids


_ENTRY = "SELECT id, kind FROM entries WHERE key = %s"
_POSTINGS_OF = """
SELECT book, provider_id, account_id, service, period, meter_id, amount
  FROM postings WHERE entry_id = %s
"""
_REVERSED_BY = "SELECT key FROM entries WHERE reverses = %s"


async def reverse(
    conn: psycopg.AsyncConnection[Any], key: str, *, reason: str,
    reversal_key: str | None = None, booked_at: datetime | None = None,
) -> Posted:
    """Post the mirror of the entry ``key`` (every posting negated), naming it in
    ``reverses``. Idempotent on ``reversal_key`` (default ``reversal:<key>``); an entry is
    reversed once. Usage is corrected by re-rating its readings, not here."""
    cur = await conn.execute(_ENTRY, (key,))
    found = await cur.fetchone()
    if found is None:
        raise NotFound(f"no entry {key}")
    entry_id, kind = found
    if kind == EntryKind.USAGE:
        raise Invalid(f"entry {key} is usage: it is corrected by re-rating its readings",
                      code="usage-not-reversible")
    reversal_key = reversal_key or f"reversal:{key}"
    cur = await conn.execute(_REVERSED_BY, (entry_id,))
    earlier = await cur.fetchone()
    if earlier is not None and earlier[0] != reversal_key:
        raise AlreadyReversed(f"entry {key} was already reversed by {earlier[0]}")
    cur = await conn.execute(_POSTINGS_OF, (entry_id,))
    mirror = tuple(
        Posting(Book(book), provider, -amount, account,
                Service(service) if service else None, period, meter)
        for book, provider, account, service, period, meter, amount in await cur.fetchall())
    try:
        async with atomic(conn):  # the transaction goes on after a refusal
            (posted,) = await post(conn, [Entry(EntryKind.REVERSAL, reversal_key, mirror,
                                                reason=reason, booked_at=booked_at,
                                                reverses=entry_id)])
    except pg_errors.UniqueViolation as exc:  # reversed concurrently under another key
        raise AlreadyReversed(f"entry {key} was reversed concurrently") from exc
    return posted


# --- the bulk path --------------------------------------------------------------------------

LINES_TABLE = "ledger_lines"

_LINES_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS ledger_lines (
    account_id text NOT NULL, provider_id text NOT NULL, service text, period date,
    amount numeric NOT NULL
) ON COMMIT DELETE ROWS
"""

_NEXT_ENTRY_ID = "SELECT nextval(pg_get_serial_sequence('entries', 'id'))"

# The staged lines summed per (account, provider, service, period) in that order, read once: a
# sort (by bytes, "C": the order of the database's C.UTF-8 collation, compared without it) then
# a running sum, not a hash (a million groups spill a hash to disk, and the sort is needed
# anyway: the postings go into their index in its order). The staging table is emptied after
# (TRUNCATE, not a DELETE of every row).
_SORTED_SUMS = "SELECT current_setting('enable_hashagg'), set_config('enable_hashagg', 'off', true)"
_SETTING_BACK = "SELECT set_config('enable_hashagg', %s, true)"
_POST_LINES = """
WITH totals AS MATERIALIZED (
    SELECT (account_id COLLATE "C") COLLATE "default" AS account_id,
           (provider_id COLLATE "C") COLLATE "default" AS provider_id,
           (service COLLATE "C") COLLATE "default" AS service, period, sum(amount) AS amount
      FROM ledger_lines
     GROUP BY account_id COLLATE "C", provider_id COLLATE "C", service COLLATE "C", period
     ORDER BY account_id COLLATE "C", provider_id COLLATE "C", service COLLATE "C", period
), entry AS (
    INSERT INTO entries (id, kind, key, booked_at, reason)
    SELECT coalesce(%(id)s::bigint, nextval(pg_get_serial_sequence('entries', 'id'))),
           %(kind)s, %(key)s, coalesce(%(at)s::timestamptz, now()), %(reason)s
     WHERE EXISTS (SELECT 1 FROM totals)
    ON CONFLICT (key) DO NOTHING
    RETURNING id
), posted AS (
    INSERT INTO postings (entry_id, book, provider_id, account_id, service, period, amount)
    SELECT entry.id, 'subscriber', t.provider_id, t.account_id, t.service, t.period, t.amount
      FROM totals t CROSS JOIN entry
    UNION ALL
    SELECT entry.id, %(counter)s, (t.provider_id COLLATE "C") COLLATE "default", NULL,
           (t.service COLLATE "C") COLLATE "default", t.period, -sum(t.amount)
      FROM totals t CROSS JOIN entry
     GROUP BY entry.id, t.provider_id COLLATE "C", t.service COLLATE "C", t.period
    RETURNING 1
)
SELECT (SELECT id FROM entry), (SELECT count(*) FROM posted), (SELECT count(*) FROM totals)
"""

_EMPTY_LINES = "TRUNCATE ledger_lines"


async def lines_table(conn: psycopg.AsyncConnection[Any]) -> str:
    """Make sure the session's staging table of bulk lines exists; its name."""
    await conn.execute(_LINES_TABLE)
    return LINES_TABLE


async def next_entry_id(conn: psycopg.AsyncConnection[Any]) -> int:
    """An entry id reserved for ``post_lines(entry_id=...)``, for rows that must name their
    entry before it is posted (charge lines). An id left unused is only a gap."""
    cur = await conn.execute(_NEXT_ENTRY_ID)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def stage_lines(conn: psycopg.AsyncConnection[Any], lines: Iterable[Line]) -> None:
    """Stage subscriber-side amounts for ``post_lines`` (binary COPY)."""
    await lines_table(conn)
    async with conn.cursor() as cur:
        await copy_rows(
            cur, LINES_TABLE, ("account_id", "provider_id", "service", "period", "amount"),
            ("text", "text", "text", "date", "numeric"),
            ((line.account_id, line.provider_id, line.service.value if line.service else None,
              line.period, check_amount(line.amount)) for line in lines),
        )


async def post_lines(
    conn: psycopg.AsyncConnection[Any], *, kind: EntryKind, key: str, counter: Book,
    reason: str = "", booked_at: datetime | None = None, entry_id: int | None = None,
) -> Posted | None:
    """Post the staged lines as one entry and empty the staging table. Subscriber postings
    per (account, provider, service, period) with the staged sign; the counter book takes the
    opposite per (provider, service, period). None when nothing was staged. A key posted
    before posts nothing (``new`` False; the staged lines are not compared)."""
    if counter is Book.SUBSCRIBER:
        raise Invalid("the counter book of a bulk entry is not the subscriber's")
    if not 1 <= len(key) <= MAX_KEY:
        raise Invalid(f"an entry key has 1 to {MAX_KEY} characters", code="bad-entry")
    cur = await conn.execute(_SORTED_SUMS)
    setting = await cur.fetchone()
    assert setting is not None
    cur = await conn.execute(_POST_LINES, {
        "id": entry_id, "kind": kind.value, "key": key, "at": booked_at, "reason": reason,
        "counter": counter.value,
    })
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(_SETTING_BACK, (setting[0],))
    await conn.execute(_EMPTY_LINES)
    posted_id, _, groups = row
    if posted_id is not None:
        return Posted(int(posted_id), key, True)
    if not groups:
        return None
    cur = await conn.execute(_ENTRY, (key,))
    earlier = await cur.fetchone()
    assert earlier is not None
    return Posted(int(earlier[0]), key, False)


# --- check ----------------------------------------------------------------------------------

_UNBALANCED = """
SELECT e.id, e.key, coalesce(sum(p.amount), 0) AS total, count(p.entry_id) AS n
  FROM entries e LEFT JOIN postings p ON p.entry_id = e.id
 WHERE %(account)s::text IS NULL
    OR e.id IN (SELECT entry_id FROM postings WHERE account_id = %(account)s::text)
 GROUP BY e.id, e.key
HAVING coalesce(sum(p.amount), 0) <> 0 OR count(p.entry_id) = 0
 ORDER BY e.id
"""

_BALANCES = """
WITH sums AS (
    SELECT account_id, provider_id, sum(amount) AS amount
      FROM postings
     WHERE book = 'subscriber' AND (%(account)s::text IS NULL OR account_id = %(account)s::text)
     GROUP BY account_id, provider_id
), cached AS (
    SELECT account_id, provider_id, amount FROM balances
     WHERE %(account)s::text IS NULL OR account_id = %(account)s::text
)
SELECT account_id, provider_id, c.amount, coalesce(s.amount, 0)
  FROM cached c FULL JOIN sums s USING (account_id, provider_id)
 WHERE c.amount IS DISTINCT FROM coalesce(s.amount, 0)
 ORDER BY account_id, provider_id
"""

_CHARGES = """
WITH lines AS (
    SELECT entry_id, account_id, provider_id, service, period, sum(amount) AS amount
      FROM charges
     WHERE %(account)s::text IS NULL OR account_id = %(account)s::text
     GROUP BY entry_id, account_id, provider_id, service, period
), booked AS (
    SELECT p.entry_id, p.account_id, p.provider_id, p.service, p.period, -sum(p.amount) AS amount
      FROM postings p JOIN entries e ON e.id = p.entry_id
     WHERE e.kind = 'usage' AND p.book = 'subscriber'
       AND (%(account)s::text IS NULL OR p.account_id = %(account)s::text)
     GROUP BY p.entry_id, p.account_id, p.provider_id, p.service, p.period
)
SELECT entry_id, account_id, provider_id, service, period,
       coalesce(l.amount, 0), coalesce(b.amount, 0)
  FROM lines l FULL JOIN booked b USING (entry_id, account_id, provider_id, service, period)
 WHERE coalesce(l.amount, 0) <> coalesce(b.amount, 0)
 ORDER BY entry_id, account_id, provider_id
"""

_STRAY_CHARGES = """
SELECT c.meter_id, count(*)
  FROM charges c
 WHERE (%(account)s::text IS NULL OR c.account_id = %(account)s::text)
   AND NOT EXISTS (SELECT 1 FROM meters m WHERE m.id = c.meter_id)
 GROUP BY c.meter_id
 ORDER BY c.meter_id
"""


async def check(conn: psycopg.AsyncConnection[Any], account_id: str | None = None) -> list[str]:
    """What is wrong with the books (of one account, when given), one sentence each; empty
    when every entry balances, every cached balance equals the sum of its subscriber postings
    and every charge line's money is in the usage entry that booked it (and names a registered
    meter). Reads one snapshot.
    ``NotFound`` for an account that does not exist."""
    problems: list[str] = []
    params = {"account": account_id}
    fresh = conn.info.transaction_status == TransactionStatus.IDLE
    async with conn.transaction():
        if fresh:  # one snapshot for the three queries (inside a caller's transaction: its own)
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if account_id is not None:
            cur = await conn.execute("SELECT 1 FROM accounts WHERE id = %s", (account_id,))
            if await cur.fetchone() is None:
                raise NotFound(f"No account {account_id}")
        cur = await conn.execute(_UNBALANCED, params)
        for id_, key, total, count in await cur.fetchall():
            problems.append(f"entry {id_} ({key}) has no postings" if count == 0 else
                            f"entry {id_} ({key}) does not balance: its postings sum to "
                            f"{_text(total)}")
        cur = await conn.execute(_BALANCES, params)
        for account, provider, cached, summed in await cur.fetchall():
            problems.append(
                f"balance of {account} with {provider}: no balance row, postings sum to "
                f"{_text(summed)}" if cached is None else
                f"balance of {account} with {provider} is {_text(cached)} but its subscriber "
                f"postings sum to {_text(summed)}")
        cur = await conn.execute(_CHARGES, params)
        for entry, account, provider, service, period, lines, booked in await cur.fetchall():
            problems.append(
                f"usage of {account} with {provider} ({service}, {period}) in entry {entry}: "
                f"charge lines sum to {_text(lines)} but the entry debits {_text(booked)}")
        cur = await conn.execute(_STRAY_CHARGES, params)
        for meter, count in await cur.fetchall():
            problems.append(f"{count} charge line(s) name meter {meter}, which is not registered")
    return problems

