"""Delivering notices against a local SMTP server, a local SMS gateway speaking Kannel's
interface and the notifier's own callbacks over HTTP, on the real database: each notice goes
out once per channel, proofs are stored, quiet hours are respected, a channel without proof
gives way to the next, and a rerun sends nothing new."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg

from billing.reminders.delivery import make_notice
from billing.reminders.service import run
from meterline.kafka import free_port
from meterline.metrics import parse
from meterline.notices import (
    NoticeChannel,
    NoticeKind,
    Preferences,
    cabinet_notices,
    opened_in_cabinet,
    set_preferences,
)
from meterline.settings import Settings
from tests.billing.reminders.conftest import NOON, UNREACHABLE, Rig
from tests.billing.reminders.servers import Mailbox, smtp_server
from tests.conftest import unique
from tests.factories import customer, holiday_override, notice_preferences, notice_terms
from tests.waiting import until


async def notice(conn: psycopg.AsyncConnection[Any], account_id: str, provider_id: str,
                 kind: str = "debt_notice") -> str:
    key = unique("notice")
    context = {"debt": "4321.50", "balance": "12.30", "days_left": "2", "meter_id": "M-1"}
    await make_notice(conn, key=key, kind=kind, account_id=account_id, provider_id=provider_id,
                      service="electricity", context=context, at=NOON)
    return key


async def state(conn: psycopg.AsyncConnection[Any], key: str) -> tuple[str, str | None,
                                                                      dict[str, str]]:
    """The notice's status, the channel that delivered it, and each attempt's status."""
    cur = await conn.execute(
        "SELECT id, status, delivered_by FROM notices WHERE key = %s", (key,))
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(
        "SELECT channel, status FROM notice_attempts WHERE notice_id = %s", (row[0],))
    return row[1], row[2], dict(await cur.fetchall())


async def receipts(conn: psycopg.AsyncConnection[Any], key: str) -> list[tuple[str, str, str]]:
    cur = await conn.execute(
        """SELECT r.channel, r.kind, r.proves FROM notice_receipts r
             JOIN notices n ON n.id = r.notice_id WHERE n.key = %s ORDER BY r.id""", (key,))
    return [(c, k, p) for c, k, p in await cur.fetchall()]


async def test_email_read_sms_delivered_and_a_failed_channel_gives_way_to_the_next(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    by_email = await customer(conn)
    by_sms = await customer(conn)
    unreachable = await customer(conn)
    bounced = await customer(conn)
    await notice_preferences(conn, by_email.account_id, channels=["email"],
                             email="ivan@example.org")
    await notice_preferences(conn, by_sms.account_id, channels=["sms", "email"],
                             phone="+79161234567", email="sms-first@example.org")
    await notice_preferences(conn, unreachable.account_id, channels=["sms", "phone"],
                             phone=UNREACHABLE)
    await notice_preferences(conn, bounced.account_id, channels=["email", "cabinet"],
                             email="gone@example.org")
    keys = [await notice(conn, c.account_id, c.provider_id)
            for c in (by_email, by_sms, unreachable, bounced)]
    k_email, k_sms, k_unreachable, k_bounced = keys

    done = await rig.notifier.deliver(conn, NOON)
    assert (done.sent, done.failed) == (4, 1)  # e-mail, 2 SMS, cabinet sent; 1 bounce
    assert len(rig.mailbox.messages) == 1 and len(rig.gateway.sent) == 2

    # e-mail: accepted is "sent"; the provider counts "read" (the default): still pending
    assert await state(conn, k_email) == ("pending", None, {"email": "sent"})
    # the bounced e-mail gave way to the cabinet in the same pass
    assert await state(conn, k_bounced) == ("pending", None, {"email": "failed",
                                                             "cabinet": "sent"})

    # the gateway's delivery reports come back through the notifier's callbacks
    async def reported() -> bool:
        return len(await receipts(conn, k_sms)) == 2 and \
            len(await receipts(conn, k_unreachable)) == 2
    await until(reported, what="two SMS delivery reports")
    assert await state(conn, k_sms) == ("delivered", "sms", {"sms": "delivered"})
    # (the report may come back before the gateway's answer is recorded)
    assert sorted(await receipts(conn, k_sms)) == [("sms", "gateway_accepted", "sent"),
                                                   ("sms", "sms_report", "delivered")]
    assert (await state(conn, k_unreachable))[2]["sms"] == "failed"

    # the subscriber follows the link in the e-mail: read, so delivered
    body = rig.mailbox.messages[0].get_body()
    assert body is not None
    link = next(w for w in body.get_content().split() if w.startswith(rig.callbacks))
    assert (await rig.http.get(link)).status_code == 200
    assert await state(conn, k_email) == ("delivered", "email", {"email": "delivered"})

    # the bounced one is opened in the cabinet
    (shown,) = await cabinet_notices(conn, bounced.account_id)
    assert shown.subject == "Уведомление о задолженности за электроснабжение"
    async with conn.transaction():
        await opened_in_cabinet(conn, bounced.account_id, shown.id, NOON)
    assert (await state(conn, k_bounced))[:2] == ("delivered", "cabinet")

    # the undelivered SMS gives way to a call: the autodialer takes it and reports the result
    later = NOON + timedelta(minutes=5)
    await rig.notifier.deliver(conn, later)
    calls = (await rig.http.get(f"{rig.callbacks}/calls")).text.splitlines()
    assert len(calls) == 2 and calls[1].split(";")[1] == UNREACHABLE
    assert (await rig.http.get(f"{rig.callbacks}/calls")).text.count("\n") == 1  # handed once
    call_id = calls[1].split(";")[0]
    answer = await rig.http.post(f"{rig.callbacks}/calls/result", json={
        "call_id": call_id, "status": "answered", "played_to_end": True, "duration": 41.5})
    assert answer.json() == {"recorded": "delivered"}
    assert await state(conn, k_unreachable) == ("delivered", "phone", {"sms": "failed",
                                                                       "phone": "delivered"})

    # a rerun sends nothing new on any channel
    again = await rig.notifier.deliver(conn, later + timedelta(hours=1))
    assert (again.attempts, again.sent) == (0, 0)
    assert len(rig.mailbox.messages) == 1 and len(rig.gateway.sent) == 2


async def test_each_kind_of_notice_goes_by_the_channels_chosen_for_it(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    """Debt notices by e-mail as the account says for every kind; low-balance warnings by SMS
    as it chose for that kind; tamper alerts in the cabinet only (no message at all)."""
    c = await customer(conn)
    await notice_terms(conn, c.provider_id, email_proof="sent")
    wanted = Preferences(email="kinds@example.org", phone="+79165550000",
                         channels=(NoticeChannel.EMAIL,),
                         by_kind={NoticeKind.LOW_BALANCE: (NoticeChannel.SMS,),
                                  NoticeKind.TAMPER: (NoticeChannel.CABINET,)})
    async with conn.transaction():
        await set_preferences(conn, c.account_id, wanted, user_id=None, username="test")
    debt = await notice(conn, c.account_id, c.provider_id)
    low = await notice(conn, c.account_id, c.provider_id, kind="low_balance")
    tamper = await notice(conn, c.account_id, c.provider_id, kind="tamper")
    mails, texts = len(rig.mailbox.messages), len(rig.gateway.sent)
    done = await rig.notifier.deliver(conn, NOON)
    assert done.sent == 3
    # (which channel each was tried on: the SMS delivery report may already be back)
    assert list((await state(conn, debt))[2]) == ["email"]
    assert list((await state(conn, low))[2]) == ["sms"]
    assert list((await state(conn, tamper))[2]) == ["cabinet"]
    (mail,) = rig.mailbox.messages[mails:]
    assert "kinds@example.org" in str(mail["To"])
    assert [s["to"] for s in rig.gateway.sent[texts:]] == ["+79165550000"]

    # every one proven delivered: nothing left pending for the notifier's later passes
    (shown,) = await cabinet_notices(conn, c.account_id)
    async with conn.transaction():
        await opened_in_cabinet(conn, c.account_id, shown.id, NOON)

    async def delivered() -> bool:
        return [(await state(conn, k))[0] for k in (debt, low, tamper)] == ["delivered"] * 3
    await until(delivered, what="the three notices delivered")


async def test_quiet_hours_hold_sms_until_morning_in_the_accounts_time_zone(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    night = datetime(2025, 3, 12, 20, tzinfo=UTC)  # 23:00 in Moscow
    c = await customer(conn)
    await notice_preferences(conn, c.account_id, channels=["sms"], phone="+79161230000")
    key = await notice(conn, c.account_id, c.provider_id)
    sent_before = len(rig.gateway.sent)
    await rig.notifier.deliver(conn, night)
    await rig.notifier.deliver(conn, night + timedelta(hours=8, minutes=59))  # 07:59 Moscow
    assert await state(conn, key) == ("pending", None, {"sms": "queued"})
    assert len(rig.gateway.sent) == sent_before
    cur = await conn.execute(
        """SELECT a.not_before FROM notice_attempts a JOIN notices n ON n.id = a.notice_id
            WHERE n.key = %s""", (key,))
    assert await cur.fetchone() == (datetime(2025, 3, 13, 5, tzinfo=UTC),)  # 08:00 Moscow
    morning = await rig.notifier.deliver(conn, datetime(2025, 3, 13, 5, tzinfo=UTC))
    assert morning.sent == 1 and rig.gateway.sent[-1]["to"] == "+79161230000"


async def test_a_public_holiday_keeps_the_notifier_quiet_until_nine(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    holiday = datetime(2025, 6, 12, 5, 30, tzinfo=UTC)  # Russia Day, a Thursday, 08:30 Moscow
    c = await customer(conn)
    await notice_preferences(conn, c.account_id, channels=["sms"], phone="+79161230001")
    key = await notice(conn, c.account_id, c.provider_id)
    await rig.notifier.deliver(conn, holiday)
    assert await state(conn, key) == ("pending", None, {"sms": "queued"})
    cur = await conn.execute(
        """SELECT a.not_before FROM notice_attempts a JOIN notices n ON n.id = a.notice_id
            WHERE n.key = %s""", (key,))
    assert await cur.fetchone() == (datetime(2025, 6, 12, 6, tzinfo=UTC),)  # 09:00 Moscow


async def test_a_regional_day_off_by_data_keeps_the_notifier_quiet_there_only(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    morning = datetime(2025, 9, 17, 5, 30, tzinfo=UTC)  # a Wednesday, 08:30 in Moscow
    here, elsewhere = await customer(conn), await customer(conn)
    region = unique("reg")
    await conn.execute("UPDATE addresses SET region = %s WHERE id = "
                       "(SELECT address_id FROM accounts WHERE id = %s)",
                       (region, here.account_id))
    await holiday_override(conn, region, date(2025, 9, 17), day_off=True)
    keys = []
    for c, phone in ((here, "+79161230002"), (elsewhere, "+79161230003")):
        await notice_preferences(conn, c.account_id, channels=["sms"], phone=phone)
        keys.append(await notice(conn, c.account_id, c.provider_id))
    await rig.notifier.deliver(conn, morning)
    cur = await conn.execute(
        """SELECT n.key, a.not_before FROM notice_attempts a JOIN notices n
             ON n.id = a.notice_id WHERE n.key = ANY(%s)""", (keys,))
    waits = dict(await cur.fetchall())
    assert waits[keys[0]] == datetime(2025, 9, 17, 6, tzinfo=UTC)  # 09:00: a day off there
    assert waits[keys[1]] == morning  # a working day elsewhere: at once


async def test_no_proof_in_time_tries_the_next_channel_and_no_channel_left_is_undeliverable(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    c = await customer(conn)
    await notice_terms(conn, c.provider_id, proof_wait="1 day")
    await notice_preferences(conn, c.account_id, channels=["email", "cabinet"],
                             email="silent@example.org")
    key = await notice(conn, c.account_id, c.provider_id)
    await rig.notifier.deliver(conn, NOON)
    assert (await state(conn, key))[2] == {"email": "sent"}
    await rig.notifier.deliver(conn, NOON + timedelta(hours=23))
    assert (await state(conn, key))[2] == {"email": "sent"}
    await rig.notifier.deliver(conn, NOON + timedelta(days=1))
    assert (await state(conn, key))[2] == {"email": "expired", "cabinet": "sent"}
    final = await rig.notifier.deliver(conn, NOON + timedelta(days=2))
    assert final.undeliverable == 1
    assert (await state(conn, key))[:2] == ("undeliverable", None)


async def test_a_provider_counting_the_servers_acceptance_has_it_delivered_on_sending(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    c = await customer(conn)
    await notice_terms(conn, c.provider_id, email_proof="sent")
    await notice_preferences(conn, c.account_id, channels=["email"], email="petr@example.org")
    key = await notice(conn, c.account_id, c.provider_id)
    await rig.notifier.deliver(conn, NOON)
    assert await state(conn, key) == ("delivered", "email", {"email": "delivered"})
    assert await receipts(conn, key) == [("email", "smtp_accepted", "delivered")]
    # the same notice made again (same key) is not a new notice
    await make_notice(conn, key=key, kind="debt_notice", account_id=c.account_id,
                      provider_id=c.provider_id, service="electricity", context={}, at=NOON)
    assert (await rig.notifier.deliver(conn, NOON)).attempts == 0


async def test_the_notifier_service_delivers_a_notice_as_soon_as_it_is_made(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
) -> None:
    mailbox = Mailbox()
    c = await customer(conn)
    await notice_terms(conn, c.provider_id, email_proof="sent")
    await notice_preferences(conn, c.account_id, channels=["email"], email="now@example.org")
    with smtp_server(mailbox) as smtp_port:
        settings = make_settings(smtp_port=smtp_port, notifier_port=free_port(),
                                 notifier_interval=300.0)
        service = asyncio.create_task(run(settings))
        try:
            # made after the service's first pass (it reports ready once that pass is done;
            # LISTEN was issued before it): only the notification can wake it in time
            base = f"http://127.0.0.1:{settings.notifier_port}"
            async with httpx.AsyncClient() as http:
                async def ready() -> bool:
                    try:
                        return (await http.get(f"{base}/ready")).status_code == 200
                    except httpx.TransportError:
                        return False
                await until(ready, what="the notifier's first pass")
                key = await notice(conn, c.account_id, c.provider_id)

                async def delivered() -> bool:
                    return (await state(conn, key))[0] == "delivered"
                await until(delivered, timeout=30, what="the notice delivered")
                metrics = parse((await http.get(f"{base}/metrics")).text)
            assert metrics['meterline_notifier_notices_total{channel="email",outcome="sent"}'] >= 1
        finally:
            service.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await service
    assert [m["To"] for m in mailbox.messages] == ["now@example.org"]
