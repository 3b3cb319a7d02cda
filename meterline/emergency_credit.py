"""Emergency credit and its recovery from later top-ups (DOMAIN §8).

A prepaid subscriber whose balance with a provider has run out (zero or less) may take the
emergency credit of the account's disconnection policy once; another only after it is repaid.
It is a journal entry ``subscriber +e, recovery -e`` (the ``recovery`` book holds what the
subscriber owes outside the wallet, per account and provider), keyed
``emergency_credit:<account>:<provider>:<n>`` (n: how many were taken before), and the relay
decisions the new balance calls for are made in the same transaction (a meter cut at the
limit is reconnected if the credit lifts the balance above it).

Each later top-up repays ``recovery_percent`` of its amount, at most what is owed: an entry
``subscriber -r, recovery +r`` keyed ``recovery:<top-up entry key>``, posted with the top-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg

from meterline.balances import resolve_provider
from meterline.errors import Conflict, Invalid
from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.relay import decide_relays

KOPECK = Decimal("0.01")


class EmergencyCreditTaken(Conflict):
    code = "emergency-credit-taken"
    title = "Emergency credit already taken"


class EmergencyCreditRefused(Invalid):
    code = "emergency-credit-refused"
    title = "Emergency credit refused"


@dataclass(frozen=True)
class EmergencyCredit:
    account_id: str
    provider_id: str
    amount: Decimal
    entry_id: int
    balance: Decimal  # with the provider, after the credit
    owed: Decimal  # in the recovery book, after the credit
    relay_commands: list[tuple[str, str]]


_TERMS = """
SELECT a.billing_mode, p.emergency_credit, p.recovery_percent, b.amount,
       coalesce((SELECT -sum(r.amount) FROM postings r
                  WHERE r.book = 'recovery' AND r.account_id = b.account_id
                    AND r.provider_id = b.provider_id), 0) AS owed,
       (SELECT count(*) FROM entries e
         WHERE e.key LIKE 'emergency\\_credit:' || b.account_id || ':' || b.provider_id || ':%%'
       ) AS taken
  FROM accounts a
  JOIN contract_types c ON c.code = a.contract_type
  JOIN disconnection_policies p ON p.code = c.policy
  JOIN balances b ON b.account_id = a.id
 WHERE a.id = %s AND b.provider_id = %s
"""

# taken one at a time per balance: what was taken before is read after this lock
_LOCK = "SELECT 1 FROM balances WHERE account_id = %s AND provider_id = %s FOR UPDATE"

async def take_emergency_credit(conn: psycopg.AsyncConnection[Any], account_id: str,
                                provider_id: str | None = None) -> EmergencyCredit:
    """Credit the policy's emergency amount to a prepaid account whose balance with the
    provider has run out, once while it is owed. Refusals: ``NotFound`` (no account),
    ``EmergencyCreditRefused`` (postpaid, none under the contract, balance not run out),
    ``EmergencyCreditTaken`` (taken and not repaid yet)."""
    provider = await resolve_provider(conn, account_id, provider_id)  # NotFound: no account
    await conn.execute(_LOCK, (account_id, provider))
    cur = await conn.execute(_TERMS, (account_id, provider))
    row = await cur.fetchone()
    assert row is not None  # the balance row exists: resolve_provider found it
    mode, amount, _, balance, owed, taken = row
    if mode != "prepaid":
        raise EmergencyCreditRefused(
            f"account {account_id} is postpaid: emergency credit is for prepaid accounts")
    if amount <= 0:
        raise EmergencyCreditRefused(
            f"the contract of account {account_id} gives no emergency credit")
    if owed > 0:
        raise EmergencyCreditTaken(
            f"account {account_id} already took emergency credit from {provider}: "
            f"{owed.quantize(KOPECK)} of it is still owed and is repaid from top-ups; "
            "another can be taken once it is repaid")
    if balance > 0:
        raise EmergencyCreditRefused(
            f"emergency credit is for a balance that has run out; account {account_id} "
            f"has {balance.quantize(KOPECK)} with {provider}")
    (posted,) = await post(conn, [Entry(
        EntryKind.EMERGENCY_CREDIT, f"emergency_credit:{account_id}:{provider}:{taken + 1}", (
            Posting(Book.SUBSCRIBER, provider, amount, account_id=account_id),
            Posting(Book.RECOVERY, provider, -amount, account_id=account_id),
        ), reason="emergency credit taken by the subscriber")])
    if not posted.new:  # cannot happen under the lock; never credit twice if it did
        raise EmergencyCreditTaken(f"account {account_id} already took emergency credit")
    commands = await decide_relays(conn, [account_id])
    cur = await conn.execute(
        "SELECT amount FROM balances WHERE account_id = %s AND provider_id = %s",
        (account_id, provider))
    after = await cur.fetchone()
    assert after is not None
    return EmergencyCredit(account_id, provider, amount, posted.id, after[0], amount, commands)


_OWED = """
SELECT p.recovery_percent,
       coalesce((SELECT -sum(r.amount) FROM postings r
                  WHERE r.book = 'recovery' AND r.account_id = a.id
                    AND r.provider_id = %(provider)s), 0)
  FROM accounts a
  JOIN contract_types c ON c.code = a.contract_type
  JOIN disconnection_policies p ON p.code = c.policy
 WHERE a.id = %(account)s
"""


async def recover_from_topup(conn: psycopg.AsyncConnection[Any], account_id: str,
                             provider_id: str, amount: Decimal, topup_key: str) -> Decimal:
    """Repay what the account owes in the recovery book by the policy's share of a top-up of
    ``amount`` (half-up to the kopeck, at most what is owed); what was repaid."""
    cur = await conn.execute(_OWED, {"account": account_id, "provider": provider_id})
    row = await cur.fetchone()
    if row is None:
        return Decimal(0)
    percent, owed = row
    if owed <= 0 or percent <= 0:
        return Decimal(0)
    share = (amount * percent / 100).quantize(KOPECK, rounding=ROUND_HALF_UP)
    repaid: Decimal = min(share, owed)
    if repaid <= 0:
        return Decimal(0)
    await post(conn, [Entry(EntryKind.RECOVERY, f"recovery:{topup_key}", (
        Posting(Book.SUBSCRIBER, provider_id, -repaid, account_id=account_id),
        Posting(Book.RECOVERY, provider_id, repaid, account_id=account_id),
    ), reason=f"{percent}% of a top-up repays emergency credit")])
    return repaid
