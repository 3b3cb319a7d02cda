"""The events outbox: what subscribers and operators must hear of.

Low balance, days of credit left, disconnection ahead, disconnected, reconnected, tamper,
register reset, meter replaced, ...: each is a row of ``events``, written with ``emit`` in
the same transaction as the money or the state it describes, so an event is never lost and
never told for something that was rolled back. A ``key`` makes an event idempotent (the same
key is written once). Notifiers LISTEN on ``events`` (a NOTIFY is sent on insert) and read
rows after the last id they delivered; the cabinet shows an account's events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import psycopg


class EventKind(StrEnum):
    """What the platform writes. The database accepts any lower-case word (add yours here)."""

    LOW_BALANCE = "low_balance"
    CREDIT_DAYS = "credit_days"
    DISCONNECTION_AHEAD = "disconnection_ahead"
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"
    TAMPER = "tamper"
    REGISTER_RESET = "register_reset"
    METER_REPLACED = "meter_replaced"
    IMPLAUSIBLE_JUMP = "implausible_jump"  # a register re-baselined at a jump, the leap uncharged


@dataclass(frozen=True)
class Event:
    kind: EventKind
    account_id: str | None = None
    provider_id: str | None = None
    meter_id: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None  # natural key: an event with a key is written once
    occurred_at: datetime | None = None  # None: the transaction's time


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")  # exact: money stays text, never a float
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def payload_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, default=_json_default, sort_keys=True)


_INSERT = """
INSERT INTO events (kind, key, account_id, provider_id, meter_id, payload, occurred_at)
SELECT kind, key, account_id, provider_id, meter_id, payload::jsonb, coalesce(at, now())
  FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
              %s::timestamptz[]) AS e(kind, key, account_id, provider_id, meter_id, payload, at)
ON CONFLICT (key) DO NOTHING
RETURNING id
"""


async def emit(conn: psycopg.AsyncConnection[Any], events: Iterable[Event]) -> int:
    """Write events in the caller's transaction; how many were new."""
    batch = list(events)
    if not batch:
        return 0
    cur = await conn.execute(_INSERT, (
        [e.kind.value for e in batch], [e.key for e in batch], [e.account_id for e in batch],
        [e.provider_id for e in batch], [e.meter_id for e in batch],
        [payload_json(e.payload) for e in batch], [e.occurred_at for e in batch],
    ))
    return len(await cur.fetchall())
