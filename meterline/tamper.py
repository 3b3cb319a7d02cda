"""A relay's state is confirmed by readings: a meter commanded open that still consumes.

Rating books a batch's consumption and then asks ``confirm_relays`` about the batch's meters.
A meter whose relay the platform last commanded open (``meters.relay_state`` 'disconnected',
its latest ``relay_commands`` row a disconnect) and whose charge lines show more than
``TOLERANCE`` of its unit consumed over intervals starting ``GRACE`` or more after that command
was requested (time for the gateway to deliver it and the relay to open) was closed behind the
platform's back: a power cut, a meter restarted with its relay closed, a bypass. In the caller's
transaction, the disconnect is commanded again (a new ``relay_commands`` row, which the bridge
delivers) and a ``tamper`` event (key ``tamper:<command id>``, one per command) tells the
operator how much was consumed since and where the balance stands: the consumption is charged
as any other, so the account does not run past its negative limit unnoticed. The new command
starts a new window, so a meter that keeps consuming is commanded again at most once per
``GRACE``.

Which balance calls for a disconnect is the relay policy's business (``meterline.relay``);
this module only checks that a disconnect holds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from meterline.events import Event, EventKind, emit

TOLERANCE = Decimal("0.01")  # kWh, m3 or Gcal: more than this since the disconnect is tamper
GRACE = timedelta(minutes=1)  # after a disconnect is requested, before its relay must be open

_CONSUMING = """
SELECT m.id, m.account_id, m.provider_id, l.id, l.requested_at, u.quantity, u.since, b.amount
  FROM meters m
  CROSS JOIN LATERAL (SELECT c.id, c.action, c.requested_at FROM relay_commands c
                       WHERE c.meter_id = m.id ORDER BY c.seq DESC LIMIT 1) l
  CROSS JOIN LATERAL (SELECT coalesce(sum(ch.quantity), 0) AS quantity,
                             min(ch.interval_start) AS since
                        FROM charges ch
                       WHERE ch.meter_id = m.id
                         AND ch.interval_start >= l.requested_at + %(grace)s) u
  JOIN balances b ON b.account_id = m.account_id AND b.provider_id = m.provider_id
 WHERE m.id = ANY(%(meters)b::text[]) AND m.has_relay AND m.relay_state = 'disconnected'
   AND l.action = 'disconnect' AND u.quantity > %(tolerance)s
 ORDER BY m.id
"""

_COMMAND_AGAIN = """
INSERT INTO relay_commands (meter_id, action, reason)
SELECT meter_id, 'disconnect', 'consumption while disconnected: commanded again'
  FROM unnest(%s::text[]) AS t(meter_id)
RETURNING meter_id, id
"""


@dataclass(frozen=True)
class Tamper:
    meter_id: str
    account_id: str
    provider_id: str
    disconnect_id: UUID  # the disconnect that did not hold
    disconnect_requested_at: datetime
    consumed: Decimal  # since the disconnect (and its grace), in the register's unit
    consuming_since: datetime
    balance: Decimal
    command_id: UUID  # the disconnect commanded again


async def confirm_relays(
    conn: psycopg.AsyncConnection[Any], meter_ids: Collection[str], *,
    tolerance: Decimal = TOLERANCE, grace: timedelta = GRACE,
) -> list[Tamper]:
    """Command the disconnect again of each of ``meter_ids`` commanded open that still
    consumes, and raise a ``tamper`` event for it, in the caller's transaction."""
    if not meter_ids:
        return []
    cur = await conn.execute(_CONSUMING, {"meters": sorted(set(meter_ids)), "grace": grace,
                                          "tolerance": tolerance})
    found = await cur.fetchall()
    if not found:
        return []
    cur = await conn.execute(_COMMAND_AGAIN, ([row[0] for row in found],))
    again = dict(await cur.fetchall())
    tampers = [Tamper(meter, account, provider, disconnect, requested, consumed, since, balance,
                      again[meter])
               for meter, account, provider, disconnect, requested, consumed, since, balance
               in found]
    await emit(conn, [
        Event(EventKind.TAMPER, account_id=t.account_id, provider_id=t.provider_id,
              meter_id=t.meter_id, key=f"tamper:{t.disconnect_id}", payload={
                  "reason": "consumption while the relay was commanded open",
                  "disconnect_requested_at": t.disconnect_requested_at,
                  "consumed": t.consumed.normalize(), "consuming_since": t.consuming_since,
                  "balance": t.balance, "commanded_again": str(t.command_id)})
        for t in tampers])
    return tampers
