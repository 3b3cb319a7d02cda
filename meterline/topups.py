"""Top-ups: a subscriber credits their balance with a provider, exactly once per key.

One business action, knowing nothing of HTTP (the API, the cabinet and the command line all
call ``top_up``). Inside the caller's transaction: the journal entry (``subscriber +amount,
clearing -amount``, keyed by the top-up's natural key ``topup:<account>:<idempotency key>``),
the top-up request that names it, the share that repays emergency credit
(``meterline.emergency_credit``), and the relay decisions the new balance calls for.
Refusals are domain errors: ``NotFound`` (no account), ``Invalid`` (amount, provider),
``IdempotencyKeyReused``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from meterline.balances import resolve_provider
from meterline.emergency_credit import recover_from_topup
from meterline.errors import Conflict, Invalid
from meterline.ledger import Book, Entry, EntryKeyReused, EntryKind, Posting, check_amount, post
from meterline.money import has_at_most_kopecks
from meterline.relay import decide_relays


class IdempotencyKeyReused(Conflict):
    code = "idempotency-key-reused"
    title = "Idempotency-Key reused"


@dataclass(frozen=True)
class Topup:
    id: UUID
    account_id: str
    provider_id: str
    amount: Decimal
    idempotency_key: str
    received_at: datetime
    balance: Decimal  # with the provider after this top-up (for a replay: now)
    replayed: bool  # the key was used before: nothing was credited now


# the balance after the top-up's postings (the trigger moved it in the statement before)
_INSERT = """
INSERT INTO topups (account_id, provider_id, amount, idempotency_key, entry_id)
VALUES (%(account)s, %(provider)s, %(amount)s, %(key)s, %(entry)s)
RETURNING id, received_at,
          (SELECT amount FROM balances
            WHERE account_id = %(account)s AND provider_id = %(provider)s)
"""

_EARLIER = """
SELECT id, provider_id, amount, received_at FROM topups
 WHERE account_id = %s AND idempotency_key = %s
"""

_BALANCE = "SELECT amount FROM balances WHERE account_id = %s AND provider_id = %s"


def entry_key(account_id: str, idempotency_key: str) -> str:
    """A top-up's natural key, as its journal entry's key."""
    return f"topup:{account_id}:{idempotency_key}"


async def _balance(conn: psycopg.AsyncConnection[Any], account_id: str, provider: str) -> Decimal:
    cur = await conn.execute(_BALANCE, (account_id, provider))
    row = await cur.fetchone()
    assert row is not None  # the topups foreign key guarantees the balance row
    amount: Decimal = row[0]
    return amount


async def top_up(
    conn: psycopg.AsyncConnection[Any], account_id: str, idempotency_key: str, amount: Decimal,
    provider_id: str | None = None,
) -> Topup:
    """Credit ``amount`` (roubles, whole kopecks, > 0) to the account's balance with a
    provider (which may be left out when the account has one), once per idempotency key."""
    check_amount(amount, "amount")
    if amount <= 0 or not has_at_most_kopecks(amount):
        raise Invalid(f"a top-up is a positive amount of whole kopecks, not {amount}",
                      field=["body", "amount"])
    if not 1 <= len(idempotency_key) <= 255:
        raise Invalid("an idempotency key has 1 to 255 characters",
                      field=["header", "Idempotency-Key"])
    provider = await resolve_provider(conn, account_id, provider_id)  # NotFound: no account
    # A concurrent request with the same key waits in `post` until the other one commits or
    # rolls back, then either posts or finds the committed entry.
    try:
        (posted,) = await post(conn, [Entry(
            EntryKind.TOPUP, entry_key(account_id, idempotency_key), (
                Posting(Book.SUBSCRIBER, provider, amount, account_id=account_id),
                Posting(Book.CLEARING, provider, -amount),
            ), reason=f"top-up {idempotency_key}")])
    except EntryKeyReused:
        posted = None
    if posted is not None and posted.new:
        cur = await conn.execute(_INSERT, {
            "account": account_id, "provider": provider, "amount": amount,
            "key": idempotency_key, "entry": posted.id})
        row = await cur.fetchone()
        assert row is not None
        topup_id, received_at, balance = row
        if await recover_from_topup(conn, account_id, provider, amount,
                                    entry_key(account_id, idempotency_key)):
            balance = await _balance(conn, account_id, provider)  # less what it repaid
        # received_at is the transaction's now(): the relays are decided at the same instant
        await decide_relays(conn, [account_id], now=received_at)
        return Topup(topup_id, account_id, provider, amount, idempotency_key, received_at,
                     balance, replayed=False)
    cur = await conn.execute(_EARLIER, (account_id, idempotency_key))
    earlier = await cur.fetchone()
    if earlier is None:  # cannot happen: the entry and its top-up are committed together
        raise RuntimeError(f"top-up {account_id}/{idempotency_key!r} posted but not found")
    earlier_id, earlier_provider, earlier_amount, received_at = earlier
    if posted is None:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {idempotency_key!r} was already used on account {account_id} "
            f"for a top-up of {earlier_amount:.2f} to provider {earlier_provider}; "
            "use a new key for a different top-up")
    return Topup(earlier_id, account_id, earlier_provider, earlier_amount, idempotency_key,
                 received_at, await _balance(conn, account_id, earlier_provider), replayed=True)
