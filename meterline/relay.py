"""Which relays should be open: the prepaid rule, applied inside the caller's transaction.

A prepaid account's meters are disconnected when its balance with the meter's provider is
zero or less, and connected again when it is positive. The decision is written as rows of
``relay_commands`` (an outbox) in the same transaction as the money movement that caused it,
so a command is never lost and never sent for money that was rolled back. The bridge delivers
the rows to the gateways (a trigger NOTIFYs it on insert).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg

_DECIDE = """
WITH wanted AS (
    SELECT m.id,
           CASE WHEN b.amount > 0 THEN 'connected' ELSE 'disconnected' END AS state
      FROM meters m
      JOIN accounts a ON a.id = m.account_id
      JOIN balances b ON b.account_id = m.account_id AND b.provider_id = m.provider_id
     WHERE m.account_id = ANY(%(accounts)s)
       AND a.billing_mode = 'prepaid'
       AND m.has_relay
), changed AS (
    UPDATE meters m SET relay_state = w.state
      FROM wanted w
     WHERE m.id = w.id AND m.relay_state <> w.state
    RETURNING m.id, w.state
)
INSERT INTO relay_commands (meter_id, action, reason)
SELECT id,
       CASE state WHEN 'connected' THEN 'connect' ELSE 'disconnect' END,
       CASE state WHEN 'connected' THEN 'balance positive' ELSE 'balance exhausted' END
  FROM changed
RETURNING meter_id, action
"""


async def decide_relays(
    conn: psycopg.AsyncConnection[Any], account_ids: Collection[str]
) -> list[tuple[str, str]]:
    """Request relay changes the accounts' balances call for; (meter, action) of each."""
    if not account_ids:
        return []
    cur = await conn.execute(_DECIDE, {"accounts": list(account_ids)})
    return [(meter, action) for meter, action in await cur.fetchall()]
