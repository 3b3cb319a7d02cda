"""Restricting and suspending a service for debt, and lifting it (DOMAIN.md §7, decree 354
pp. 117-120), inside the caller's transaction.

Each step of a debt procedure (``debt_procedures``) is carried out once:

- a meter of the service with a relay (the account's meters of that provider and utility)
  is disconnected: a ``relay_commands`` row the bridge delivers, ``meters.relay_state`` set.
  A relay can cut, not limit, and decree 354 p. 119 (в) says a service that cannot be
  restricted is suspended without restriction first: so the restriction step already opens
  the relay and the suspension step finds nothing more to do on it;
- a service with no relay meter gets a work order for a technician (``work_orders``), who
  restricts, then suspends, and whom an operator marks done (`complete`) or cancels.

Never heating, nor cold water in an apartment building (p. 117); maintenance, capital repair
and waste are not supplied through anything that can be cut, so they are never restricted
either: asking for any of these is refused (`Invalid`). Lifting (p. 120: within two days of
the debt being paid or an agreement made) reconnects what the procedure's relay commands
disconnected, cancels the technician's orders not yet done, and orders a reconnection when
one was done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.rows import dict_row

from meterline.errors import Conflict, Invalid, NotFound

# Services a debt procedure may restrict, and the utility of their meters (sewerage has none)
RESTRICTABLE: dict[str, str | None] = {
    "electricity": "electricity", "cold_water": "cold_water", "hot_water": "hot_water",
    "gas": "gas", "sewerage": None,
}


class Action(StrEnum):
    RESTRICT = "restrict"
    SUSPEND = "suspend"
    LIFT = "lift"


def never_restricted(service: str, apartment_building: bool) -> bool:
    """Heating, and cold water in an apartment building, are never restricted for debt
    (decree 354 p. 117); a service with nothing to cut (maintenance, capital repair, waste)
    neither."""
    if service == "cold_water":
        return apartment_building
    return service not in RESTRICTABLE


@dataclass(frozen=True)
class Ordered:
    """What one step ordered: the relay commands (meter, action) and the technician's orders."""

    relay: list[tuple[str, str]]
    work_orders: list[int]


_PROCEDURE = """
SELECT p.id, p.account_id, p.provider_id, p.service, a.premises_id IS NOT NULL AS apartment
  FROM debt_procedures p JOIN accounts a ON a.id = p.account_id
 WHERE p.id = %s
"""

# The procedure's relay meters that are still connected: disconnected, each with its command.
_CUT = """
WITH cut AS (
    UPDATE meters m SET relay_state = 'disconnected'
     WHERE m.account_id = %(account)s AND m.provider_id = %(provider)s
       AND m.utility = %(utility)s AND m.has_relay AND m.relay_state = 'connected'
    RETURNING m.id
), commands AS (
    INSERT INTO relay_commands (meter_id, action, reason)
    SELECT id, 'disconnect', %(reason)s FROM cut
    RETURNING id, meter_id
)
INSERT INTO work_orders (procedure_id, account_id, provider_id, service, action, via, meter_id,
                         relay_command_id, status, ordered_at, done_at, done_by)
SELECT %(procedure)s, %(account)s, %(provider)s, %(service)s, %(action)s, 'relay', meter_id,
       id, 'done', %(at)s, %(at)s, 'relay'
  FROM commands
ON CONFLICT DO NOTHING
RETURNING meter_id
"""

_HAS_RELAY = """
SELECT EXISTS (SELECT 1 FROM meters WHERE account_id = %s AND provider_id = %s
                                      AND utility = %s AND has_relay)
"""

_TECHNICIAN = """
INSERT INTO work_orders (procedure_id, account_id, provider_id, service, action, via,
                         ordered_at)
VALUES (%s, %s, %s, %s, %s, 'technician', %s)
ON CONFLICT DO NOTHING
RETURNING id
"""


async def _procedure(conn: psycopg.AsyncConnection[Any], procedure_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_PROCEDURE, (procedure_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no debt procedure {procedure_id}")
    return row


async def order_step(conn: psycopg.AsyncConnection[Any], procedure_id: int, action: Action,
                     at: datetime) -> Ordered:
    """Restrict or suspend the procedure's service: relay commands for its relay meters, a
    technician's work order when it has none. Once per procedure and step: again, nothing."""
    if action is Action.LIFT:
        raise Invalid("lifting is `lift`, not a step", field=["action"])
    p = await _procedure(conn, procedure_id)
    service = p["service"]
    if never_restricted(service, p["apartment"]):
        raise Invalid(f"{service} is never restricted or suspended for debt here "
                      "(decree 354 p. 117)", code="never-restricted", field=["service"])
    utility = RESTRICTABLE[service]
    has_relay = False
    if utility is not None:
        cur = await conn.execute(_HAS_RELAY, (p["account_id"], p["provider_id"], utility))
        row = await cur.fetchone()
        has_relay = bool(row and row[0])
    if has_relay:
        cur = await conn.execute(_CUT, {
            "account": p["account_id"], "provider": p["provider_id"], "utility": utility,
            "service": service, "procedure": procedure_id, "action": action.value, "at": at,
            "reason": f"debt: {action.value} (procedure {procedure_id})"})
        return Ordered([(meter, "disconnect") for (meter,) in await cur.fetchall()], [])
    cur = await conn.execute(_TECHNICIAN, (procedure_id, p["account_id"], p["provider_id"],
                                           service, action.value, at))
    return Ordered([], [row[0] for row in await cur.fetchall()])


# Reconnect the meters this procedure disconnected (and that are still so).
_RECONNECT = """
WITH ours AS (
    SELECT DISTINCT w.meter_id FROM work_orders w
     WHERE w.procedure_id = %(procedure)s AND w.via = 'relay' AND w.action <> 'lift'
), back AS (
    UPDATE meters m SET relay_state = 'connected'
      FROM ours WHERE m.id = ours.meter_id AND m.relay_state = 'disconnected'
    RETURNING m.id
), commands AS (
    INSERT INTO relay_commands (meter_id, action, reason)
    SELECT id, 'connect', %(reason)s FROM back
    RETURNING id, meter_id
)
INSERT INTO work_orders (procedure_id, account_id, provider_id, service, action, via, meter_id,
                         relay_command_id, status, ordered_at, done_at, done_by)
SELECT %(procedure)s, %(account)s, %(provider)s, %(service)s, 'lift', 'relay', meter_id, id,
       'done', %(at)s, %(at)s, 'relay'
  FROM commands
ON CONFLICT DO NOTHING
RETURNING meter_id
"""

_CANCEL_OPEN = """
UPDATE work_orders SET status = 'cancelled', done_at = %s, note = %s
 WHERE procedure_id = %s AND via = 'technician' AND status = 'open' AND action <> 'lift'
"""

_ANY_DONE = """
SELECT EXISTS (SELECT 1 FROM work_orders WHERE procedure_id = %s AND via = 'technician'
                                           AND status = 'done' AND action <> 'lift')
"""


async def lift(conn: psycopg.AsyncConnection[Any], procedure_id: int, at: datetime,
               why: str) -> Ordered:
    """Undo what the procedure's steps did: its relay meters connected again, the
    technician's orders not yet carried out cancelled, a reconnection ordered when one was."""
    p = await _procedure(conn, procedure_id)
    cur = await conn.execute(_RECONNECT, {
        "procedure": procedure_id, "account": p["account_id"], "provider": p["provider_id"],
        "service": p["service"], "at": at, "reason": f"debt procedure {procedure_id}: {why}"})
    relay = [(meter, "connect") for (meter,) in await cur.fetchall()]
    await conn.execute(_CANCEL_OPEN, (at, f"not needed: {why}", procedure_id))
    cur = await conn.execute(_ANY_DONE, (procedure_id,))
    row = await cur.fetchone()
    orders: list[int] = []
    if row and row[0]:
        cur = await conn.execute(_TECHNICIAN, (procedure_id, p["account_id"], p["provider_id"],
                                               p["service"], Action.LIFT.value, at))
        orders = [r[0] for r in await cur.fetchall()]
    return Ordered(relay, orders)


_LIST = """
SELECT w.id, w.action, w.via, w.status, w.ordered_at, w.done_at, w.done_by, w.note,
       w.account_id, w.provider_id, w.service, w.meter_id, w.procedure_id,
       c.status AS relay_status, ad.full_text AS address
  FROM work_orders w
  JOIN accounts a ON a.id = w.account_id
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN relay_commands c ON c.id = w.relay_command_id
 WHERE (%(provider)s::text IS NULL OR w.provider_id = %(provider)s)
   AND (%(status)s::text IS NULL OR w.status = %(status)s)
   AND (%(via)s::text IS NULL OR w.via = %(via)s)
 ORDER BY w.ordered_at, w.id
 LIMIT %(limit)s
"""


async def work_orders(conn: psycopg.AsyncConnection[Any], *, provider: str | None = None,
                      status: str | None = "open", via: str | None = "technician",
                      limit: int = 1000) -> list[dict[str, Any]]:
    """The orders for an operator, oldest first: by default the technician's open ones."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_LIST, {"provider": provider, "status": status, "via": via,
                              "limit": limit})
    return await cur.fetchall()


async def complete(conn: psycopg.AsyncConnection[Any], order_id: int, at: datetime, *,
                   by: str, note: str = "", cancelled: bool = False) -> None:
    """An operator marks a technician's order carried out (or cancelled)."""
    cur = await conn.execute(
        "UPDATE work_orders SET status = %s, done_at = %s, done_by = %s, note = %s "
        "WHERE id = %s AND via = 'technician' AND status = 'open' RETURNING id",
        ("cancelled" if cancelled else "done", at, by, note, order_id))
    if await cur.fetchone() is not None:
        return
    cur = await conn.execute("SELECT via, status FROM work_orders WHERE id = %s", (order_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no work order {order_id}")
    if row[0] != "technician":
        raise Conflict(f"work order {order_id} went to the meter's relay; nothing to mark")
    raise Conflict(f"work order {order_id} is already {row[1]}")
