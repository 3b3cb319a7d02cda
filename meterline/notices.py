"""Notices to subscribers and the proof that they arrived, shared by the notifier (billing)
and the personal cabinet (api): the cabinet lists an account's notices and records that the
subscriber opened one; every channel's confirmation is recorded the same way, here.

A receipt is kept as it came (``notice_receipts``). One that proves delivery marks its attempt
delivered and, if the notice was not delivered yet, the notice too: the statutory periods of
DOMAIN.md §7 run from ``notices.delivered_at``. One that proves failure fails the attempt,
and the notifier tries the next channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from meterline.errors import NotFound


class Proof(StrEnum):
    SENT = "sent"  # the channel took it (no proof of delivery yet)
    DELIVERED = "delivered"
    FAILED = "failed"
    NOTHING = "nothing"  # an intermediate report, kept for the record


@dataclass(frozen=True)
class Recorded:
    notice_id: UUID
    channel: str
    delivered_now: bool  # this receipt delivered the notice


_ATTEMPT = """
SELECT a.notice_id, a.channel, a.status, n.status AS notice_status
  FROM notice_attempts a JOIN notices n ON n.id = a.notice_id
 WHERE a.token = %s
   FOR UPDATE OF a, n
"""

_RECEIPT = """
INSERT INTO notice_receipts (notice_id, channel, kind, proves, received_at, payload)
VALUES (%s, %s, %s, %s, %s, %s)
"""

_ATTEMPT_DELIVERED = """
UPDATE notice_attempts SET status = 'delivered', delivered_at = %s
 WHERE notice_id = %s AND channel = %s
"""

_ATTEMPT_FAILED = """
UPDATE notice_attempts SET status = 'failed', detail = %s
 WHERE notice_id = %s AND channel = %s AND status IN ('queued', 'sending', 'sent')
"""

_NOTICE_DELIVERED = """
UPDATE notices SET status = 'delivered', delivered_at = %s, delivered_by = %s
 WHERE id = %s AND status <> 'delivered'
"""


async def record_receipt(
    conn: psycopg.AsyncConnection[Any], token: str, kind: str, proves: Proof,
    payload: dict[str, Any], at: datetime,
) -> Recorded:
    """Keep a channel's confirmation of the attempt named by ``token``; in the caller's
    transaction."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_ATTEMPT, (token,))
    attempt = await cur.fetchone()
    if attempt is None:
        raise NotFound(f"no notice attempt {token}")
    notice_id, channel = attempt["notice_id"], attempt["channel"]
    await cur.execute(_RECEIPT, (notice_id, channel, kind, proves, at, Jsonb(payload)))
    delivered_now = False
    if proves is Proof.DELIVERED:
        await cur.execute(_ATTEMPT_DELIVERED, (at, notice_id, channel))
        await cur.execute(_NOTICE_DELIVERED, (at, channel, notice_id))
        delivered_now = cur.rowcount == 1
    elif proves is Proof.FAILED and attempt["status"] != "delivered":
        await cur.execute(_ATTEMPT_FAILED, (f"{kind}: {payload}", notice_id, channel))
    return Recorded(notice_id, channel, delivered_now)


@dataclass(frozen=True)
class CabinetNotice:
    id: UUID
    kind: str
    provider_id: str
    service: str | None
    subject: str
    text: str
    created_at: datetime
    opened_at: datetime | None


_CABINET = """
SELECT n.id, n.kind, n.provider_id, n.service, n.created_at, a.delivered_at AS opened_at,
       a.detail
  FROM notices n JOIN notice_attempts a ON a.notice_id = n.id AND a.channel = 'cabinet'
 WHERE n.account_id = %s AND a.status IN ('sent', 'delivered', 'expired')
 ORDER BY n.created_at DESC
"""

_CABINET_TEXT = """
SELECT payload FROM notice_receipts
 WHERE notice_id = %s AND channel = 'cabinet' AND kind = 'shown'
 ORDER BY id LIMIT 1
"""


async def cabinet_notices(
    conn: psycopg.AsyncConnection[Any], account_id: str
) -> list[CabinetNotice]:
    """The notices shown in an account's personal cabinet, newest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_CABINET, (account_id,))
    rows = await cur.fetchall()
    notices = []
    for row in rows:
        await cur.execute(_CABINET_TEXT, (row["id"],))
        shown = await cur.fetchone()
        payload = shown["payload"] if shown else {}
        notices.append(CabinetNotice(
            row["id"], row["kind"], row["provider_id"], row["service"],
            payload.get("subject", ""), payload.get("text", ""), row["created_at"],
            row["opened_at"],
        ))
    return notices


_CABINET_TOKEN = """
SELECT a.token FROM notice_attempts a JOIN notices n ON n.id = a.notice_id
 WHERE n.id = %s AND n.account_id = %s AND a.channel = 'cabinet'
"""


async def opened_in_cabinet(
    conn: psycopg.AsyncConnection[Any], account_id: str, notice_id: UUID, at: datetime,
) -> Recorded:
    """The subscriber opened the notice in the cabinet: proof of delivery. Another account's
    notice is not found."""
    cur = await conn.execute(_CABINET_TOKEN, (notice_id, account_id))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no notice {notice_id} in the cabinet of account {account_id}")
    return await record_receipt(conn, row[0], "cabinet_opened", Proof.DELIVERED,
                                {"account": account_id}, at)
