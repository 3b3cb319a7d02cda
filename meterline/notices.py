"""Notices to subscribers and the proof that they arrived, shared by the notifier (billing)
and the personal cabinet (api): the cabinet lists an account's notices and records that the
subscriber opened one; every channel's confirmation is recorded the same way, here.

How an account wants to hear from its providers is here too (`preferences`,
`set_preferences`), and the notifier asks `reach` which channels it may use for a notice: the
account's channels in its order, or those it chose for that kind of notice. A channel left
out has no consent; every change is kept in ``notice_consents`` (who, when, before, after).

A receipt is kept as it came (``notice_receipts``). One that proves delivery marks its attempt
delivered and, if the notice was not delivered yet, the notice too: the statutory periods of
DOMAIN.md §7 run from ``notices.delivered_at``. One that proves failure fails the attempt,
and the notifier tries the next channel.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from meterline.errors import Conflict, Invalid, NotFound


class NoticeChannel(StrEnum):
    CABINET = "cabinet"
    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"


class NoticeKind(StrEnum):
    """What a notice is about (the notifier's template of the same name)."""

    DEBT_REMINDER = "debt_reminder"
    DEBT_NOTICE = "debt_notice"
    RESTRICTION_NOTICE = "restriction_notice"
    SUSPENSION_NOTICE = "suspension_notice"
    LOW_BALANCE = "low_balance"
    CREDIT_DAYS = "credit_days"
    DISCONNECTION_AHEAD = "disconnection_ahead"
    DISCONNECTED = "disconnected"
    TAMPER = "tamper"


# without preferences: the personal cabinet only (it needs neither address nor consent)
DEFAULT_CHANNELS = (NoticeChannel.CABINET,)


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
       coalesce(shown.payload, '{}') AS payload
  FROM notices n
  JOIN notice_attempts a ON a.notice_id = n.id AND a.channel = 'cabinet'
  LEFT JOIN LATERAL (SELECT r.payload FROM notice_receipts r
                      WHERE r.notice_id = n.id AND r.channel = 'cabinet' AND r.kind = 'shown'
                      ORDER BY r.id LIMIT 1) shown ON true
 WHERE n.account_id = %s AND a.status IN ('sent', 'delivered', 'expired')
 ORDER BY n.created_at DESC
"""


async def cabinet_notices(
    conn: psycopg.AsyncConnection[Any], account_id: str
) -> list[CabinetNotice]:
    """The notices shown in an account's personal cabinet, newest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_CABINET, (account_id,))
    return [CabinetNotice(r["id"], r["kind"], r["provider_id"], r["service"],
                          r["payload"].get("subject", ""), r["payload"].get("text", ""),
                          r["created_at"], r["opened_at"])
            for r in await cur.fetchall()]


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


# --- preferences and consents


@dataclass(frozen=True)
class Preferences:
    """How an account wants to hear from its providers: addresses, channels in order of
    preference (a channel left out has no consent), and per kind of notice other channels."""

    email: str | None
    phone: str | None
    channels: tuple[NoticeChannel, ...]
    by_kind: Mapping[NoticeKind, tuple[NoticeChannel, ...]]

    def channels_for(self, kind: str) -> tuple[NoticeChannel, ...]:
        try:
            return self.by_kind[NoticeKind(kind)]
        except (ValueError, KeyError):
            return self.channels

    def as_json(self) -> dict[str, Any]:
        return {"email": self.email, "phone": self.phone, "channels": list(self.channels),
                "by_kind": {k.value: list(v) for k, v in sorted(self.by_kind.items())}}

    @property
    def version(self) -> str:
        """Changes whenever the preferences do (the API's ETag)."""
        text = json.dumps(self.as_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class StalePreferences(Conflict):
    """The preferences changed since the version the change was made against."""

    code = "preferences-changed"


_PREFERENCES = """
SELECT email, phone, channels FROM notice_preferences WHERE account_id = %s
"""

_KIND_CHANNELS = """
SELECT kind, channels FROM notice_kind_channels WHERE account_id = %s ORDER BY kind
"""


def _channels(values: Iterable[str]) -> tuple[NoticeChannel, ...]:
    return tuple(NoticeChannel(c) for c in values)


async def preferences(conn: psycopg.AsyncConnection[Any], account_id: str) -> Preferences:
    """The account's preferences (the default when it never set any)."""
    cur = await conn.execute(_PREFERENCES, (account_id,))
    row = await cur.fetchone()
    email, phone, channels = row if row else (None, None, list(DEFAULT_CHANNELS))
    cur = await conn.execute(_KIND_CHANNELS, (account_id,))
    by_kind = {NoticeKind(k): _channels(c) for k, c in await cur.fetchall()
               if k in NoticeKind.__members__.values()}
    return Preferences(email, phone, _channels(channels), by_kind)


def _check(wanted: Preferences) -> None:
    lists = [(("body", "channels"), wanted.channels)] + [
        (("body", "by_kind", kind.value), chosen) for kind, chosen in wanted.by_kind.items()]
    for field, chosen in lists:
        if len(set(chosen)) != len(chosen):
            raise Invalid("each channel at most once", field=field)
        if NoticeChannel.EMAIL in chosen and not wanted.email:
            raise Invalid("notices by e-mail need an e-mail address", field=field,
                          code="address-missing")
        if {NoticeChannel.SMS, NoticeChannel.PHONE} & set(chosen) and not wanted.phone:
            raise Invalid("notices by SMS or phone call need a phone number", field=field,
                          code="address-missing")
        if not chosen:
            raise Invalid("at least one channel: a notice always reaches the personal cabinet "
                          "at the least (it needs no address); choose the cabinet alone to "
                          "get no messages", field=field, code="channel-required")


_UPSERT = """
INSERT INTO notice_preferences (account_id, email, phone, channels, updated_at)
VALUES (%s, %s, %s, %s, now())
ON CONFLICT (account_id) DO UPDATE
   SET email = EXCLUDED.email, phone = EXCLUDED.phone, channels = EXCLUDED.channels,
       updated_at = now()
"""

_CONSENT = """
INSERT INTO notice_consents (account_id, user_id, username, before, after)
VALUES (%s, %s, %s, %s, %s)
"""


async def set_preferences(
    conn: psycopg.AsyncConnection[Any], account_id: str, wanted: Preferences, *,
    user_id: int | None, username: str, if_version: str | None = None,
) -> Preferences:
    """Replace the account's preferences, in the caller's transaction, and keep the change in
    ``notice_consents``. Refused (`Invalid`) when a channel has no address, a channel comes
    twice, or a list is empty (every notice reaches somewhere: some, like debt notices, the
    law requires delivered; the cabinet alone means no messages); `StalePreferences` when
    ``if_version`` is not the version stored."""
    _check(wanted)
    cur = await conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (account_id,))
    if await cur.fetchone() is None:
        raise NotFound(f"No account {account_id}")
    before = await preferences(conn, account_id)
    if if_version is not None and if_version != before.version:
        raise StalePreferences("the preferences changed since you read them; read them again")
    if before == wanted:
        return before
    await conn.execute(_UPSERT, (account_id, wanted.email, wanted.phone,
                                 list(wanted.channels)))
    await conn.execute("DELETE FROM notice_kind_channels WHERE account_id = %s", (account_id,))
    if wanted.by_kind:
        kinds = sorted(wanted.by_kind)
        await conn.execute(
            "INSERT INTO notice_kind_channels (account_id, kind, channels) "
            "SELECT %s, k, string_to_array(c, ',') FROM unnest(%s::text[], %s::text[]) AS x(k, c)",
            (account_id, [k.value for k in kinds],
             [",".join(wanted.by_kind[k]) for k in kinds]))
    await conn.execute(_CONSENT, (account_id, user_id, username, Jsonb(before.as_json()),
                                  Jsonb(wanted.as_json())))
    return await preferences(conn, account_id)


@dataclass(frozen=True)
class Reach:
    """The channels a notice may use, in order, and the addresses they go to."""

    channels: tuple[NoticeChannel, ...]
    email: str | None
    phone: str | None


_REACH = """
SELECT w.account_id, w.kind, coalesce(k.channels, p.channels, %(default)s::text[]),
       p.email, p.phone
  FROM unnest(%(accounts)s::text[], %(kinds)s::text[]) AS w(account_id, kind)
  LEFT JOIN notice_preferences p ON p.account_id = w.account_id
  LEFT JOIN notice_kind_channels k ON k.account_id = w.account_id AND k.kind = w.kind
"""


async def reach(
    conn: psycopg.AsyncConnection[Any], notices: Sequence[tuple[str, str]],
) -> dict[tuple[str, str], Reach]:
    """For each (account, kind of notice): the channels the account consents to for that
    kind, in its order, with its addresses. What every channel that delivers notices asks."""
    if not notices:
        return {}
    cur = await conn.execute(_REACH, {
        "default": [c.value for c in DEFAULT_CHANNELS],
        "accounts": [a for a, _ in notices], "kinds": [k for _, k in notices]})
    return {(account, kind): Reach(_channels(channels), email, phone)
            for account, kind, channels, email, phone in await cur.fetchall()}
