"""Restriction and suspension carried out (decree 354 pp. 117-120): a relay meter is
disconnected through the relay outbox, a service without one gets a technician's work order
an operator marks done; never heating, nor cold water in an apartment building; everything
lifted when the debt is paid."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from billing.penalties.rules import load_rules
from billing.reminders.debtors import DebtorRule
from billing.reminders.run import run_reminders
from meterline.errors import Conflict, Invalid
from meterline.notices import cabinet_notices, opened_in_cabinet
from meterline.payments import Payment, receive
from meterline.restrictions import Action, complete, order_step, work_orders
from meterline.units import Service
from tests.billing.reminders.conftest import Rig
from tests.conftest import unique
from tests.factories import (
    HousingAccount,
    charge_month,
    housing,
    housing_account,
    relay_meter,
)

RULES = load_rules()
MONTHS = [date(2025, m, 1) for m in range(1, 5)]  # January..April, all overdue on 20 May
START = datetime(2025, 5, 20, 9, tzinfo=UTC)  # 12:00 in Moscow, a Tuesday
OPENED = START + timedelta(hours=1)  # the notices opened in the cabinet


async def deliver_in_cabinet(rig: Rig, conn: psycopg.AsyncConnection[Any],
                             account: str) -> None:
    """The notifier puts the notices in the cabinet; the subscriber opens every one."""
    await rig.notifier.deliver(conn, START)
    notices = await cabinet_notices(conn, account)
    assert notices
    for n in notices:
        await opened_in_cabinet(conn, account, n.id, OPENED)


async def commands(conn: psycopg.AsyncConnection[Any], meter: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute("SELECT action, status, reason LIKE 'debt%%' FROM relay_commands "
                             "WHERE meter_id = %s ORDER BY seq", (meter,))
    return await cur.fetchall()


async def relay_state(conn: psycopg.AsyncConnection[Any], meter: str) -> str:
    cur = await conn.execute("SELECT relay_state FROM meters WHERE id = %s", (meter,))
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def orders(conn: psycopg.AsyncConnection[Any], account: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute("SELECT service, action, via, status FROM work_orders "
                             "WHERE account_id = %s ORDER BY id", (account,))
    return await cur.fetchall()


async def test_a_relay_meter_is_cut_and_a_technician_sent_then_both_lifted_when_paid(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = unique("energo")
    rule = DebtorRule(provider=seller)
    acc = await housing_account(conn, {"electricity": seller, "gas": seller})
    meter = await relay_meter(conn, acc.account_id, seller, "electricity")
    for month in MONTHS:
        await charge_month(conn, acc, month, {"electricity": "1000.00", "gas": "500.00"})
    assert (await run_reminders(conn, START, RULES, rule)).started == 2
    await deliver_in_cabinet(rig, conn, acc.account_id)

    # not a second before the 20 days from delivery: nothing cut, nothing ordered
    early = await run_reminders(conn, OPENED + timedelta(days=20, seconds=-1), RULES, rule)
    assert (early.restricted, early.relay_commands, early.work_orders) == (0, 0, 0)
    assert await commands(conn, meter) == []
    assert await orders(conn, acc.account_id) == []

    restricted = await run_reminders(conn, OPENED + timedelta(days=20), RULES, rule)
    assert (restricted.restricted, restricted.relay_commands, restricted.work_orders) == (2, 1, 1)
    assert await commands(conn, meter) == [("disconnect", "requested", True)]
    assert await relay_state(conn, meter) == "disconnected"
    assert await orders(conn, acc.account_id) == [
        ("electricity", "restrict", "relay", "done"),
        ("gas", "restrict", "technician", "open")]
    cur = await conn.execute("SELECT payload->'relay_meters', payload->'work_orders' != '[]' "
                             "FROM events WHERE account_id = %s AND kind = 'restriction_due' "
                             "ORDER BY payload->>'service'", (acc.account_id,))
    assert await cur.fetchall() == [([meter], False), ([], True)]

    # the operator's list: the gas restriction, with the address to go to
    (job,) = [o for o in await work_orders(conn, provider=seller)
              if o["account_id"] == acc.account_id]
    assert (job["service"], job["action"]) == ("gas", "restrict")
    assert job["address"].startswith("Москва, ул. Тестовая, д. 1, кв. ")
    await complete(conn, job["id"], OPENED + timedelta(days=21), by="Сидоров")
    with pytest.raises(Conflict, match="already done"):
        await complete(conn, job["id"], OPENED + timedelta(days=21), by="Сидоров")

    # suspension: the relay is already open (p. 119 в); the technician goes again for gas
    suspended = await run_reminders(conn, OPENED + timedelta(days=30), RULES, rule)
    assert (suspended.suspended, suspended.relay_commands, suspended.work_orders) == (2, 0, 1)
    assert len(await commands(conn, meter)) == 1
    again = await run_reminders(conn, OPENED + timedelta(days=30, hours=1), RULES, rule)
    assert (again.suspended, again.relay_commands, again.work_orders) == (0, 0, 0)

    # paid in full: the relay reconnected, the suspension not yet carried out cancelled, and
    # the technician sent to undo the restriction he did
    await receive(conn, Payment(unique("payment:cash"), "cash", acc.account_id,
                                Decimal("6000.00"), OPENED + timedelta(days=31)))
    lifted = await run_reminders(conn, OPENED + timedelta(days=31, hours=1), RULES, rule)
    assert (lifted.closed, lifted.relay_commands, lifted.work_orders) == (2, 1, 1)
    assert [c[0] for c in await commands(conn, meter)] == ["disconnect", "connect"]
    assert await relay_state(conn, meter) == "connected"
    assert await orders(conn, acc.account_id) == [
        ("electricity", "restrict", "relay", "done"),
        ("gas", "restrict", "technician", "done"),
        ("gas", "suspend", "technician", "cancelled"),
        ("electricity", "lift", "relay", "done"),
        ("gas", "lift", "technician", "open")]
    relay_order = (await work_orders(conn, provider=seller, via="relay", status=None))[0]
    with pytest.raises(Conflict, match="relay"):
        await complete(conn, relay_order["id"], OPENED + timedelta(days=32), by="Сидоров")


async def test_a_technician_not_yet_sent_is_simply_cancelled_when_paid(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = unique("vodokanal")
    rule = DebtorRule(provider=seller)
    acc = await housing_account(conn, {"hot_water": seller})
    await relay_meter(conn, acc.account_id, seller, "hot_water", relay=False)  # no relay
    for month in MONTHS:
        await charge_month(conn, acc, month, {"hot_water": "800.00"})
    await run_reminders(conn, START, RULES, rule)
    await deliver_in_cabinet(rig, conn, acc.account_id)
    await run_reminders(conn, OPENED + timedelta(days=20), RULES, rule)
    assert await orders(conn, acc.account_id) == [
        ("hot_water", "restrict", "technician", "open")]
    await receive(conn, Payment(unique("payment:cash"), "cash", acc.account_id,
                                Decimal("3200.00"), OPENED + timedelta(days=22)))
    lifted = await run_reminders(conn, OPENED + timedelta(days=22, hours=1), RULES, rule)
    assert (lifted.closed, lifted.work_orders) == (1, 0)  # nothing was done: nothing to undo
    assert await orders(conn, acc.account_id) == [
        ("hot_water", "restrict", "technician", "cancelled")]


async def test_a_business_contract_is_restricted_after_its_own_notice_days(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = unique("energo")
    rule = DebtorRule(provider=seller)
    shop = await housing_account(conn, {"electricity": seller}, payer_group="other")
    await conn.execute("UPDATE accounts SET contract_type = 'business' WHERE id = %s",
                       (shop.account_id,))
    meter = await relay_meter(conn, shop.account_id, seller, "electricity")
    for month in MONTHS:
        await charge_month(conn, shop, month, {"electricity": "5000.00"})
    await run_reminders(conn, START, RULES, rule)
    await deliver_in_cabinet(rig, conn, shop.account_id)
    # the business policy's 10 days (data), not a household's 20
    early = await run_reminders(conn, OPENED + timedelta(days=10, seconds=-1), RULES, rule)
    assert early.restricted == 0
    due = await run_reminders(conn, OPENED + timedelta(days=10), RULES, rule)
    assert (due.restricted, due.relay_commands) == (1, 1)
    assert await commands(conn, meter) == [("disconnect", "requested", True)]
    # no suspension step for a business
    later = await run_reminders(conn, OPENED + timedelta(days=60), RULES, rule)
    assert later.suspended == 0


async def test_heating_cold_water_in_apartment_buildings_and_maintenance_are_never_cut(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, flats=[("50", 2)], metered=())
    flat = house.accounts[0]
    services = [Service.HEATING, Service.COLD_WATER, Service.MAINTENANCE]
    acc = HousingAccount(flat, {s.value: house.providers[s] for s in services})
    await relay_meter(conn, flat, house.providers[Service.COLD_WATER], "cold_water")
    for month in MONTHS:
        await charge_month(conn, acc, month, {s.value: "900.00" for s in services})
    rules = [DebtorRule(provider=p) for p in sorted(set(acc.providers.values()))]
    for rule in rules:
        await run_reminders(conn, START, RULES, rule)
    cur = await conn.execute("SELECT p.service, n.kind FROM debt_procedures p JOIN notices n "
                             "ON n.key = p.notice_key WHERE p.account_id = %s "
                             "ORDER BY p.service", (flat,))
    assert await cur.fetchall() == [("cold_water", "debt_reminder"),
                                    ("heating", "debt_reminder"),
                                    ("maintenance", "debt_reminder")]
    await deliver_in_cabinet(rig, conn, flat)
    for days in (20, 30, 60):
        for rule in rules:
            await run_reminders(conn, OPENED + timedelta(days=days), RULES, rule)
    assert await orders(conn, flat) == []
    cur = await conn.execute("SELECT count(*) FROM relay_commands c JOIN meters m "
                             "ON m.id = c.meter_id WHERE m.account_id = %s", (flat,))
    assert await cur.fetchone() == (0,)
    cur = await conn.execute("SELECT id FROM debt_procedures WHERE account_id = %s", (flat,))
    for (procedure,) in await cur.fetchall():
        with pytest.raises(Invalid, match="never restricted"):
            await order_step(conn, procedure, Action.RESTRICT, OPENED + timedelta(days=60))
