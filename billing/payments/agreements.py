"""Repayment (instalment) agreements on the books: signed with a schedule of parts, reviewed
against the payments made to the provider since, kept, broken or completed (`instalments`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from billing.payments.instalments import Part, Standing, schedule, standing


@dataclass(frozen=True)
class Agreement:
    id: int
    parts: list[Part]


async def sign(conn: psycopg.AsyncConnection[Any], account_id: str, provider_id: str,
               debt: Decimal, parts: int, first_due: date, *, signed_on: date,
               grace_days: int = 0) -> Agreement:
    plan = schedule(debt, parts, first_due)
    cur = await conn.execute(
        "INSERT INTO instalment_agreements (account_id, provider_id, signed_on, debt, parts, "
        "grace_days) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (account_id, provider_id, signed_on, debt,
         json.dumps([{"due": p.due.isoformat(), "amount": str(p.amount)} for p in plan]),
         grace_days))
    row = await cur.fetchone()
    assert row is not None
    return Agreement(int(row[0]), plan)


_KEPT = """
SELECT g.id, g.parts, g.grace_days, g.signed_on,
       array(SELECT ((e.booked_at AT TIME ZONE ad.time_zone)::date, p.amount)::text
               FROM postings p JOIN entries e ON e.id = p.entry_id
              WHERE p.book = 'subscriber' AND p.account_id = g.account_id
                AND p.provider_id = g.provider_id AND e.kind = 'payment'
                AND e.booked_at >= g.signed_on) AS paid
  FROM instalment_agreements g
  JOIN accounts a ON a.id = g.account_id JOIN addresses ad ON ad.id = a.address_id
 WHERE g.status = 'kept'
   FOR UPDATE OF g
"""


async def review(conn: psycopg.AsyncConnection[Any], on: date) -> dict[Standing, int]:
    """Mark each kept agreement broken or completed as the payments say; counts by standing."""
    counts = dict.fromkeys(Standing, 0)
    async with conn.transaction():
        cur = await conn.execute(_KEPT)
        for id_, parts, grace, _, paid in await cur.fetchall():
            plan = [Part(date.fromisoformat(p["due"]), Decimal(p["amount"])) for p in parts]
            payments = []
            for text in paid:
                day, amount = text.strip("()").split(",")
                payments.append((date.fromisoformat(day), Decimal(amount)))
            now = standing(plan, payments, on, grace_days=grace)
            counts[now] += 1
            if now is not Standing.KEPT:
                await conn.execute("UPDATE instalment_agreements SET status = %s WHERE id = %s",
                                   (now, id_))
    return counts
