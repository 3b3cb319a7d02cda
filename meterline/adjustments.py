"""Manual balance adjustments by staff: one ledger entry with a mandatory reason, logged.

An adjustment of ``amount`` (signed roubles, whole kopecks: positive credits the subscriber,
negative debits) for a service is the entry ``subscriber +amount, revenue -amount`` (a credit
reduces the provider's revenue for that service; a debit adds to it), in the current billing
period of the account's time zone, keyed ``adjustment:<id>`` so that a form sent twice with
the same id books it once. In the same transaction: the audit log (who, what, when, balance
before and after, why) and the relay decisions the new balance calls for. A correction of an
adjustment is another adjustment (or a reversal), never an edit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

from meterline.audit import record, required_reason
from meterline.errors import Invalid, NotFound
from meterline.ledger import Book, Entry, EntryKind, Posting, check_amount, post
from meterline.money import has_at_most_kopecks
from meterline.periods import period_of
from meterline.relay import decide_relays
from meterline.units import Service


@dataclass(frozen=True)
class Adjusted:
    key: str
    account_id: str
    provider_id: str
    amount: Decimal
    balance_before: Decimal
    balance_after: Decimal
    audit_id: int | None  # None: this key was booked before, nothing changed now


_ACCOUNT = """
SELECT ad.time_zone, b.amount
  FROM accounts a
  JOIN addresses ad ON ad.id = a.address_id
  JOIN balances b ON b.account_id = a.id AND b.provider_id = %s
 WHERE a.id = %s
   FOR UPDATE OF b
"""


async def adjust(
    conn: psycopg.AsyncConnection[Any], *, account_id: str, provider_id: str, amount: Decimal,
    service: Service, reason: str, user_id: int | None, username: str,
    adjustment_id: uuid.UUID | None = None,
) -> Adjusted:
    """Book the adjustment (in the caller's transaction)."""
    why = required_reason(reason)
    check_amount(amount, "amount")
    if amount == 0 or not has_at_most_kopecks(amount):
        raise Invalid(f"an adjustment is a non-zero amount of whole kopecks, not {amount}",
                      field=["body", "amount"])
    cur = await conn.execute(_ACCOUNT, (provider_id, account_id))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No balance of account {account_id} with provider {provider_id}")
    time_zone, before = row
    key = f"adjustment:{adjustment_id or uuid.uuid4()}"
    period = period_of(datetime.now(UTC), time_zone)
    (posted,) = await post(conn, [Entry(EntryKind.ADJUSTMENT, key, (
        Posting(Book.SUBSCRIBER, provider_id, amount, account_id=account_id, service=service,
                period=period),
        Posting(Book.REVENUE, provider_id, -amount, service=service, period=period),
    ), reason=why)])
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s AND "
                             "provider_id = %s", (account_id, provider_id))
    after_row = await cur.fetchone()
    assert after_row is not None
    after: Decimal = after_row[0]
    if not posted.new:
        return Adjusted(key, account_id, provider_id, amount, after, after, None)
    await decide_relays(conn, [account_id])
    audit_id = await record(
        conn, user_id=user_id, username=username, action="balance.adjust",
        account_id=account_id, subject=f"balance with {provider_id} ({service})", reason=why,
        before={"balance": str(before)}, after={"balance": str(after), "amount": str(amount),
                                                 "entry": key})
    return Adjusted(key, account_id, provider_id, amount, before, after, audit_id)
