"""Money paid online through the acquirer (the payment provider): where a payment goes, and
crediting it once the acquirer confirms it. The API's online payments and the web cabinet's
form call these; HTTP and the acquirer's protocol stay in ``api/online_payments.py``.

The account's billing mode decides:

- **prepaid**: the payment tops up one provider's wallet (the one named, or the account's only
  one) through `meterline.topups.top_up`, keyed by the payment (``online-payment:<id>``), and
  the relays follow the new balance. A prepaid top-up names no month.
- **postpaid**: the payment is received like any other (`meterline.payments.receive`, key
  ``payment:online:<id>``) and split over the account's providers, services and periods
  (DOMAIN.md §2: the month the payer names first, else the earliest debt not time-barred,
  then penalties, then an advance spread like the bill). The payer cannot be made to pay one
  provider first, so it names none.

Everything runs in the caller's transaction and is idempotent on the payment's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from meterline.balances import resolve_provider
from meterline.errors import Invalid, NotFound
from meterline.payments import Payment, receive
from meterline.topups import entry_key, top_up


@dataclass(frozen=True)
class Destination:
    """Where an online payment's money goes: a prepaid provider's wallet, or (provider None)
    the postpaid account's bill, optionally a month of it."""

    billing_mode: str
    provider_id: str | None
    period: date | None


async def destination(
    conn: psycopg.AsyncConnection[Any], account_id: str, provider_id: str | None,
    period: date | None,
) -> Destination:
    """Where a payment to the account goes; ``Invalid`` when the request names what the
    account's billing mode does not take."""
    cur = await conn.execute("SELECT billing_mode FROM accounts WHERE id = %s", (account_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No account {account_id}")
    mode: str = row[0]
    if mode == "prepaid":
        if period is not None:
            raise Invalid(f"account {account_id} is prepaid: a top-up credits a provider's "
                          "balance and names no month", field=["body", "period"],
                          error_type="prepaid_account")
        return Destination(mode, await resolve_provider(conn, account_id, provider_id), None)
    if provider_id is not None:
        raise Invalid(f"account {account_id} is postpaid: a payment is split over its bill "
                      "between its providers, so it names none (name a period instead)",
                      field=["body", "provider_id"], error_type="postpaid_account")
    return Destination(mode, None, period)


def payment_key(payment_id: UUID) -> str:
    """The journal entry key of a postpaid online payment."""
    return f"payment:online:{payment_id}"


def topup_key(payment_id: UUID) -> str:
    """The top-up idempotency key of a prepaid online payment."""
    return f"online-payment:{payment_id}"


async def credit(
    conn: psycopg.AsyncConnection[Any], payment_id: UUID, account_id: str, amount: Decimal,
    provider_id: str | None, period: date | None, paid_at: datetime,
) -> None:
    """Book a paid online payment: a top-up of its provider's wallet (prepaid), or a payment
    received and allocated (postpaid). Once per payment, however often it is called."""
    if provider_id is not None:
        await top_up(conn, account_id, topup_key(payment_id), amount, provider_id)
    else:
        await receive(conn, Payment(payment_key(payment_id), "online", account_id, amount,
                                    paid_at, period=period))


@dataclass(frozen=True)
class PaidShare:
    """What a paid online payment credited: a provider's wallet, for a service and month
    where the payment was allocated (postpaid)."""

    provider_id: str
    service: str | None
    period: date | None
    amount: Decimal


_SHARES = """
SELECT p.provider_id, p.service, p.period, p.amount
  FROM entries e JOIN postings p ON p.entry_id = e.id
 WHERE e.key = ANY(%s) AND p.book = 'subscriber'
 ORDER BY p.period NULLS LAST, p.provider_id, p.service
"""


async def paid_shares(
    conn: psycopg.AsyncConnection[Any], payment_id: UUID, account_id: str
) -> list[PaidShare]:
    """The subscriber side of the entry a paid online payment posted (empty until paid)."""
    keys = [entry_key(account_id, topup_key(payment_id)), payment_key(payment_id)]
    cur = await conn.execute(_SHARES, (keys,))
    return [PaidShare(*row) for row in await cur.fetchall()]
