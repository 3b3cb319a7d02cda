"""Delivering notices: one channel at a time, in the account's order of preference, until a
channel proves delivery (DOMAIN.md §7).

A pass of the notifier (`deliver`):
1. attempts that got no proof by their deadline expire;
2. each pending notice with no attempt under way gets one on the next channel it has consent
   and an address for (the account's channels for that kind of notice, in its order:
   `meterline.notices.reach`) (never one it was tried on: the primary key is notice and channel);
   SMS and calls wait for the end of quiet hours in the account's time zone; a notice with no
   channel left is marked undeliverable for an operator to deliver otherwise;
3. due attempts are claimed (committed as ``sending`` first, so a notifier that dies mid-send
   never sends twice on one channel) and sent. Calls are not sent here: the autodialer takes
   them with `claim_calls`.
Proof comes back later as receipts (`meterline.notices.record_receipt`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from billing.reminders.channels import Channel, ChannelFailed, Sent
from billing.reminders.channels.email import send_email
from billing.reminders.channels.phone import Call
from billing.reminders.channels.sms import send_sms
from billing.reminders.quiet_hours import QuietHours
from billing.reminders.templates import Rendered, Templates
from meterline.friendly_hours import Calendar
from meterline.metrics import NOTIFIER_NOTICES, NOTIFIER_PASS_SECONDS, NOTIFIER_UNDELIVERABLE
from meterline.notices import Proof, reach, record_receipt
from meterline.settings import Settings

logger = logging.getLogger("meterline.notifier")

QUIET_CHANNELS = (Channel.SMS, Channel.PHONE)
SENDING_TIMEOUT = timedelta(minutes=10)


@dataclass
class Pass:
    """What one pass did."""

    expired: int = 0
    attempts: int = 0
    sent: int = 0
    failed: int = 0
    undeliverable: int = 0


_EXPIRE = """
UPDATE notice_attempts a
   SET status = 'expired', detail = 'no proof of delivery by ' || a.deadline::text
  FROM notices n
 WHERE n.id = a.notice_id AND n.status = 'pending'
   AND a.status IN ('sent', 'queued') AND a.deadline <= %(now)s
"""

_INTERRUPTED = """
UPDATE notice_attempts
   SET status = 'failed', detail = 'the notifier stopped while sending; not sent again'
 WHERE status = 'sending' AND claimed_at <= %(stale)s
"""

_WAITING = """
SELECT n.id, n.account_id, n.kind, n.provider_id,
       ad.time_zone, ad.country,
       coalesce((SELECT array_agg(ARRAY[o.day::text, o.day_off::text]) FROM holiday_overrides o
                  WHERE o.region = ad.region
                    AND o.day BETWEEN (%(now)s AT TIME ZONE ad.time_zone)::date - 1
                                  AND (%(now)s AT TIME ZONE ad.time_zone)::date + 2), '{}')
           AS overrides,
       coalesce(t.proof_wait, interval '2 days') AS proof_wait,
       array(SELECT a.channel FROM notice_attempts a WHERE a.notice_id = n.id) AS tried
  FROM notices n
  JOIN accounts ac ON ac.id = n.account_id
  JOIN addresses ad ON ad.id = ac.address_id
  LEFT JOIN notice_terms t ON t.provider_id = n.provider_id
 WHERE n.status = 'pending'
   AND NOT EXISTS (SELECT 1 FROM notice_attempts a WHERE a.notice_id = n.id
                      AND a.status IN ('queued', 'sending', 'sent'))
 ORDER BY n.created_at
 LIMIT %(limit)s
   FOR UPDATE OF n SKIP LOCKED
"""

_ATTEMPT = """
INSERT INTO notice_attempts (notice_id, channel, token, address, not_before, deadline,
                             created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""

_UNDELIVERABLE = "UPDATE notices SET status = 'undeliverable' WHERE id = %s"

_CLAIM = """
UPDATE notice_attempts a SET status = 'sending', claimed_at = %(now)s
 WHERE (a.notice_id, a.channel) IN (
       SELECT notice_id, channel FROM notice_attempts
        WHERE status = 'queued' AND channel = ANY(%(channels)s) AND not_before <= %(now)s
        ORDER BY not_before LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED)
RETURNING a.notice_id, a.channel, a.token, a.address
"""

_CONTEXT = """
SELECT n.kind, n.account_id, n.provider_id, n.service, n.context, ac.holder_name,
       ad.full_text AS address, pr.name AS provider_name,
       coalesce(t.proof_wait, interval '2 days') AS proof_wait,
       coalesce(t.email_proof, 'read') AS email_proof
  FROM notices n
  JOIN accounts ac ON ac.id = n.account_id
  JOIN addresses ad ON ad.id = ac.address_id
  JOIN providers pr ON pr.id = n.provider_id
  LEFT JOIN notice_terms t ON t.provider_id = n.provider_id
 WHERE n.id = %s
"""

_SENT = """
UPDATE notice_attempts SET status = 'sent', sent_at = %s, deadline = %s, external_id = %s
 WHERE notice_id = %s AND channel = %s AND status = 'sending'
"""

_FAILED = """
UPDATE notice_attempts SET status = 'failed', detail = %s
 WHERE notice_id = %s AND channel = %s
"""


def _address(channel: Channel, email: str | None, phone: str | None) -> str | None:
    if channel is Channel.EMAIL:
        return email
    if channel in (Channel.SMS, Channel.PHONE):
        return phone
    return ""  # the cabinet needs no address


class Notifier:
    def __init__(self, settings: Settings, http: httpx.AsyncClient,
                 templates: Templates | None = None, quiet: QuietHours | None = None) -> None:
        self.settings = settings
        self.http = http
        self.templates = templates or Templates()
        self.quiet = quiet or QuietHours()

    async def deliver(self, conn: psycopg.AsyncConnection[Any], now: datetime,
                      *, limit: int = 500) -> Pass:
        """One pass; ``conn`` in autocommit mode (each step commits on its own)."""
        with NOTIFIER_PASS_SECONDS.time():
            return await self._deliver(conn, now, limit)

    async def _deliver(self, conn: psycopg.AsyncConnection[Any], now: datetime,
                       limit: int) -> Pass:
        done = Pass()
        async with conn.transaction():
            cur = await conn.execute(_EXPIRE, {"now": now})
            done.expired = cur.rowcount
            NOTIFIER_NOTICES.labels("any", "expired").inc(max(done.expired, 0))
            await conn.execute(_INTERRUPTED, {"stale": now - SENDING_TIMEOUT})
        for _ in Channel:  # a failed channel is followed by the next one in the same pass
            made = await self._plan(conn, now, limit, done)
            sent = await self._send_due(conn, now, limit, done)
            if not made and not sent:
                break
        return done

    async def _plan(self, conn: psycopg.AsyncConnection[Any], now: datetime, limit: int,
                    done: Pass) -> int:
        made = 0
        async with conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_WAITING, {"limit": limit, "now": now})
            waiting = await cur.fetchall()
            # the subscriber's channels for this kind of notice, in their order (consent)
            reachable = await reach(conn, [(n["account_id"], n["kind"]) for n in waiting])
            for n in waiting:
                to = reachable[n["account_id"], n["kind"]]
                choice = next(
                    ((Channel(c), addr) for c in to.channels if c not in n["tried"]
                     and (addr := _address(Channel(c), to.email, to.phone)) is not None),
                    None,
                )
                if choice is None:
                    await cur.execute(_UNDELIVERABLE, (n["id"],))
                    done.undeliverable += 1
                    NOTIFIER_UNDELIVERABLE.inc()
                    logger.warning("notice %s: no channel left to deliver it", n["id"])
                    continue
                channel, address = choice
                not_before = now
                if channel in QUIET_CHANNELS:
                    calendar = Calendar(n["country"], {date.fromisoformat(d): off == "true"
                                                       for d, off in n["overrides"]})
                    not_before = self.quiet.next_allowed(now, n["time_zone"], calendar)
                deadline = not_before + n["proof_wait"] if channel is Channel.PHONE else None
                await cur.execute(_ATTEMPT, (n["id"], channel, secrets.token_urlsafe(18),
                                             address, not_before, deadline, now))
                made += 1
        done.attempts += made
        return made

    async def _send_due(self, conn: psycopg.AsyncConnection[Any], now: datetime, limit: int,
                        done: Pass) -> int:
        channels = [Channel.CABINET, Channel.EMAIL, Channel.SMS]
        async with conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_CLAIM, {"now": now, "channels": channels, "limit": limit})
            claimed = await cur.fetchall()
        for attempt in claimed:
            await self._send(conn, attempt, now, done)
        return len(claimed)

    async def _send(self, conn: psycopg.AsyncConnection[Any], attempt: dict[str, Any],
                    now: datetime, done: Pass) -> None:
        notice_id, channel, token = attempt["notice_id"], Channel(attempt["channel"]), \
            attempt["token"]
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_CONTEXT, (notice_id,))
        notice = await cur.fetchone()
        assert notice is not None
        text = self.render(notice, channel, token)
        try:
            sent = await self._through(channel, attempt["address"], text, token)
        except ChannelFailed as exc:
            async with conn.transaction():
                await conn.execute(_FAILED, (str(exc), notice_id, channel))
            done.failed += 1
            NOTIFIER_NOTICES.labels(channel, "failed").inc()
            logger.info("notice %s on %s failed: %s", notice_id, channel, exc)
            return
        async with conn.transaction():
            await conn.execute(_SENT, (now, now + notice["proof_wait"], sent.external_id,
                                       notice_id, channel))
            proof = Proof.SENT
            if channel is Channel.EMAIL and notice["email_proof"] == "sent":
                proof = Proof.DELIVERED  # this provider counts the server's acceptance
            kind = {Channel.EMAIL: "smtp_accepted", Channel.SMS: "gateway_accepted",
                    Channel.CABINET: "shown"}[channel]
            payload = {"external_id": sent.external_id, "answer": sent.detail}
            if channel is Channel.CABINET:
                payload = {"subject": text.subject, "text": text.text}
            await record_receipt(conn, token, kind, proof, payload, now)
        done.sent += 1
        NOTIFIER_NOTICES.labels(channel, "sent").inc()
        if proof is Proof.DELIVERED:
            NOTIFIER_NOTICES.labels(channel, "delivered").inc()

    def render(self, notice: dict[str, Any], channel: Channel, token: str) -> Rendered:
        context = {
            **notice["context"], "account_id": notice["account_id"],
            "holder_name": notice["holder_name"], "address": notice["address"],
            "provider_name": notice["provider_name"], "service": notice["service"],
            "read_url": f"{self.settings.notifier_public_url}/n/{token}"
            if channel is Channel.EMAIL else "",
        }
        return self.templates.render(notice["kind"], channel, notice["provider_id"], context)

    async def _through(self, channel: Channel, address: str, text: Rendered, token: str) -> Sent:
        if channel is Channel.EMAIL:
            return await send_email(self.settings, to=address, subject=text.subject,
                                    text=text.text, ref=token)
        if channel is Channel.SMS:
            return await send_sms(self.settings, self.http, to=address, text=text.text,
                                  token=token)
        return Sent(Channel.CABINET, token)  # shown in the cabinet from now on

    async def claim_calls(self, conn: psycopg.AsyncConnection[Any], now: datetime,
                          *, limit: int = 1000) -> list[Call]:
        """The calls due now, for the autodialer; each is handed out once."""
        async with conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_CLAIM, {"now": now, "channels": [Channel.PHONE], "limit": limit})
            claimed = await cur.fetchall()
            calls = []
            for attempt in claimed:
                await cur.execute(_CONTEXT, (attempt["notice_id"],))
                notice = await cur.fetchone()
                assert notice is not None
                text = self.render(notice, Channel.PHONE, attempt["token"])
                await cur.execute(_SENT, (now, now + notice["proof_wait"], attempt["token"],
                                          attempt["notice_id"], Channel.PHONE))
                await record_receipt(conn, attempt["token"], "call_listed", Proof.SENT,
                                     {"phone": attempt["address"]}, now)
                calls.append(Call(attempt["token"], attempt["address"], notice["account_id"],
                                  text.text))
        return calls


_NOTICE = """
INSERT INTO notices (key, kind, account_id, provider_id, service, context, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (key) DO NOTHING
RETURNING id
"""


async def make_notice(
    conn: psycopg.AsyncConnection[Any], *, key: str, kind: str, account_id: str,
    provider_id: str, service: str | None, context: dict[str, Any], at: datetime,
) -> bool:
    """A notice to deliver, once per natural ``key``; True if it is new."""
    cur = await conn.execute(_NOTICE, (key, kind, account_id, provider_id, service,
                                       Jsonb(context), at))
    return await cur.fetchone() is not None

