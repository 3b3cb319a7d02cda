"""A reminder run against the local SMTP server, SMS gateway and the notifier's callbacks: the
right debtors are notified once, proofs are stored, quiet hours respected, a household is
never restricted before its notice period ran out, and a rerun sends nothing new."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from billing.penalties.rules import load_rules
from billing.reminders.debtors import DebtorRule
from billing.reminders.run import run_reminders
from meterline.events import Event, EventKind, emit
from meterline.payments import Payment, receive
from tests.billing.reminders.conftest import Rig
from tests.conftest import unique
from tests.factories import (
    charge_month,
    customer,
    housing_account,
    instalment_agreement,
    notice_preferences,
)
from tests.waiting import until

RULES = load_rules()
D = Decimal
NIGHT = datetime(2025, 5, 20, 20, tzinfo=UTC)  # 23:00 in Moscow, a Tuesday
MONTHS = [date(2025, m, 1) for m in range(1, 5)]  # January..April, all overdue on 20 May


async def stage(conn: psycopg.AsyncConnection[Any], account: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        """SELECT p.service, p.stage, n.kind, n.status FROM debt_procedures p
             JOIN notices n ON n.key = p.notice_key WHERE p.account_id = %s
            ORDER BY p.service""", (account,))
    return await cur.fetchall()


async def test_a_reminder_run_from_notice_to_suspension(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    uk = unique("uk")
    rule = DebtorRule(provider=uk)
    # a household four months behind on electricity: a debtor (4,000.00 > 2 × 1,000.00)
    owing = await housing_account(conn, {"electricity": uk, "heating": uk})
    for month in MONTHS:
        await charge_month(conn, owing, month, {"electricity": "1000.00", "heating": "900.00"})
    await notice_preferences(conn, owing.account_id, channels=["email", "sms"],
                             email="owing@example.org", phone="+79161110000")
    # one month behind: not a debtor
    late = await housing_account(conn, {"maintenance": uk})
    for month in MONTHS:
        await charge_month(conn, late, month, {"maintenance": "1000.00"})
    await receive(conn, Payment(unique("payment:cash"), "cash", late.account_id,
                                D("3000.00"), NIGHT - timedelta(days=30)))
    # behind, but keeping a repayment agreement: no reminder
    agreed = await housing_account(conn, {"maintenance": uk})
    for month in MONTHS:
        await charge_month(conn, agreed, month, {"maintenance": "1000.00"})
    await instalment_agreement(conn, agreed.account_id, uk, "4000.00",
                               signed_on=date(2025, 5, 1))
    # SMS only, at night: the notice waits for the morning
    by_sms = await housing_account(conn, {"electricity": uk})
    for month in MONTHS:
        await charge_month(conn, by_sms, month, {"electricity": "500.00"})
    await notice_preferences(conn, by_sms.account_id, channels=["sms"], phone="+79162220000")

    first = await run_reminders(conn, NIGHT, RULES, rule)
    assert first.started == 3  # owing: electricity and heating; by_sms: electricity
    assert await stage(conn, owing.account_id) == [
        ("electricity", "notice", "debt_notice", "pending"),
        ("heating", "notice", "debt_reminder", "pending")]  # heating: never restricted
    assert await stage(conn, late.account_id) == [] == await stage(conn, agreed.account_id)

    sent = len(rig.mailbox.messages)
    rig.now = NIGHT
    await rig.notifier.deliver(conn, NIGHT)
    assert len(rig.mailbox.messages) == sent + 2  # e-mail is not held by quiet hours
    assert not [m for m in rig.gateway.sent if m["to"] == "+79162220000"]
    morning = NIGHT + timedelta(hours=9)  # 08:00 in Moscow
    rig.now = morning
    await rig.notifier.deliver(conn, morning)
    assert [m["to"] for m in rig.gateway.sent].count("+79162220000") == 1

    async def reported() -> bool:  # the gateway's delivery report, recorded at 08:00
        return bool((await stage(conn, by_sms.account_id))[0][3] == "delivered")
    await until(reported, what="the SMS delivery report")

    # the subscriber follows the link of the electricity notice the next day at 10:00
    delivered = datetime(2025, 5, 21, 7, tzinfo=UTC)
    rig.now = delivered
    notice_mail = next(m for m in rig.mailbox.messages[sent:]
                       if "Уведомление о задолженности" in m["Subject"])
    link = next(w for w in notice_mail.get_body().get_content().split()  # type: ignore[union-attr]
                if w.startswith(rig.callbacks))
    assert (await rig.http.get(link)).status_code == 200
    cur = await conn.execute(
        """SELECT r.kind, r.proves FROM notice_receipts r JOIN debt_procedures p
             ON p.notice_key = (SELECT key FROM notices WHERE id = r.notice_id)
            WHERE p.account_id = %s AND p.service = 'electricity' ORDER BY r.id""",
        (owing.account_id,))
    assert await cur.fetchall() == [("smtp_accepted", "sent"), ("link_followed", "delivered")]

    # a rerun the next morning starts nothing and sends nothing new
    again = await run_reminders(conn, morning, RULES, rule)
    assert (again.started, again.restricted) == (0, 0)
    before = (len(rig.mailbox.messages), len(rig.gateway.sent))
    await rig.notifier.deliver(conn, morning + timedelta(minutes=1))
    assert (len(rig.mailbox.messages), len(rig.gateway.sent)) == before

    # 20 days run from delivery, not a second earlier: the SMS notice was delivered at 08:00
    # on 21 May, the e-mail one when its link was followed at 10:00
    await run_reminders(conn, morning + timedelta(days=20, seconds=-1), RULES, rule)
    assert (await stage(conn, by_sms.account_id))[0][1] == "notice"
    await run_reminders(conn, delivered + timedelta(days=20, seconds=-1), RULES, rule)
    assert (await stage(conn, by_sms.account_id))[0][1] == "restricted"
    assert [s[:2] for s in await stage(conn, owing.account_id)] == [
        ("electricity", "notice"), ("heating", "notice")]
    due = await run_reminders(conn, delivered + timedelta(days=20), RULES, rule)
    assert due.restricted == 1  # electricity only: heating is never restricted
    assert [s[:2] for s in await stage(conn, owing.account_id)] == [
        ("electricity", "restricted"), ("heating", "notice")]
    cur = await conn.execute("SELECT kind FROM events WHERE account_id = %s",
                             (owing.account_id,))
    assert await cur.fetchall() == [("restriction_due",)]
    # suspension 10 days after the restriction, the debt still unpaid
    suspended = await run_reminders(conn, delivered + timedelta(days=30), RULES, rule)
    assert suspended.suspended == 2  # by_sms too, restricted two hours earlier
    # paid in full: the sequences close
    await receive(conn, Payment(unique("payment:online"), "online", owing.account_id,
                                D("7600.00"), delivered + timedelta(days=31)))
    closed = await run_reminders(conn, delivered + timedelta(days=31, hours=1), RULES, rule)
    assert closed.closed == 2  # owing's electricity and heating; by_sms still owes
    assert [s[:2] for s in await stage(conn, by_sms.account_id)] == [
        ("electricity", "suspended")]


async def test_events_of_rating_become_notices_once(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    c = await customer(conn, "12.00")
    await notice_preferences(conn, c.account_id, channels=["email"], email="low@example.org")
    async with conn.transaction():
        await emit(conn, [Event(EventKind.LOW_BALANCE, c.account_id, c.provider_id,
                                payload={"balance": D("12.00"), "days_left": 3},
                                key=unique("low"))])
    done = await run_reminders(conn, NIGHT, RULES, DebtorRule(provider=unique("nobody")))
    assert done.events >= 1
    again = await run_reminders(conn, NIGHT, RULES, DebtorRule(provider=unique("nobody")))
    assert again.events == 0
    cur = await conn.execute("SELECT kind, context->>'days_left' FROM notices "
                             "WHERE account_id = %s", (c.account_id,))
    assert await cur.fetchall() == [("low_balance", "3")]
    await rig.notifier.deliver(conn, NIGHT)
    mail = next(m for m in rig.mailbox.messages if m["To"] == "low@example.org")
    assert "примерно на 3 дн." in mail.get_body().get_content()  # type: ignore[union-attr]
