"""The flows people go through, in Debian's chromium on a phone-sized screen."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
from playwright.async_api import Page, expect

from billing.billrun.run import bill
from meterline.bill_runs import Selection
from meterline.payments import Payment, receive
from meterline.units import Service
from meterline.users import Role
from tests.api.checks import balance_of
from tests.factories import customer, housing, person
from tests.pages.conftest import PASSWORD, Site, log_in, screenshot

OpenPage = Callable[..., Awaitable[Page]]


async def test_a_subscriber_tops_up_submits_a_reading_and_downloads_a_statement(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any], tmp_path: Path,
) -> None:
    page = await open_page()
    await log_in(page, site, site.subscriber)
    account = site.household.account_id
    await expect(page).to_have_url(f"{site.url}/cabinet/accounts/{account}")
    await expect(page.get_by_test_id("balance")).to_have_text("-2.50 ₽")
    relay = page.get_by_test_id(f"relay-{site.household.meter_id}")
    await expect(relay).to_contain_text("Supply off")
    await screenshot(page, "cabinet-account")

    # top up through the test payment provider: its page, its Pay button, back to ours
    await page.get_by_label("Amount, RUB").fill("250")
    await page.get_by_role("button", name="Pay").click()
    await page.wait_for_url(f"{site.settings.acquirer_base_url}/pay/*")
    await expect(page.get_by_text("250.00 RUB")).to_be_visible()
    await page.get_by_role("button", name="Pay").click()
    await page.wait_for_url(f"{site.url}/cabinet/accounts/{account}")
    await expect(page.get_by_test_id("balance")).to_have_text("247.50 ₽")
    await expect(relay).to_contain_text("Supply on")
    await expect(page.get_by_text("paid")).to_be_visible()

    # a reading of the water meter, then one lower than it: refused with the reason
    field = page.get_by_label(f"cold water · {site.water_meter}")
    await field.fill("12,5")
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_role("status")).to_contain_text("Reading 12.5 accepted")
    await field.fill("3")
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_role("status")).to_contain_text("lower than the last reading")
    cur = await conn.execute("SELECT value, source FROM readings WHERE meter_id = %s",
                             (site.water_meter,))
    assert await cur.fetchall() == [(Decimal("12.5"), "web")]

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Account statement (CSV)").click()
    download = await download_info.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    rows = list(csv.DictReader(saved.open()))
    # the statement is the account's side of the journal: the opening balance, then the top-up
    assert [(r["kind"], r["amount"]) for r in rows] == [("opening", "-2.50"), ("topup", "250.00")]


async def test_a_subscriber_cannot_open_anothers_account(site: Site,
                                                          open_page: OpenPage) -> None:
    page = await open_page()
    await log_in(page, site, site.subscriber)
    other = site.stranger.account_id
    reply = await page.goto(f"{site.url}/cabinet/accounts/{other}")
    assert reply is not None and reply.status == 404
    await expect(page.get_by_text(f"No account {other}")).to_be_visible()
    content = await page.content()
    assert not any(shown in content for shown in ("987654", "987,654", "987\u00a0654", "987 654"))
    desk = await page.goto(f"{site.url}/desk?account={other}")
    assert desk is not None and desk.status == 404


async def test_an_operator_finds_an_account_by_address_corrects_a_reading_and_adjusts(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    await conn.execute("INSERT INTO readings (meter_id, register, ts, value, source)"
                       " VALUES (%s, 'volume', now() - interval '1 day', 1250, 'phone')",
                       (site.water_meter,))
    page = await open_page()
    await log_in(page, site, site.operator)
    await expect(page).to_have_url(f"{site.url}/desk")
    cur = await conn.execute("SELECT full_text FROM addresses a JOIN accounts c"
                             " ON c.address_id = a.id WHERE c.id = %s",
                             (site.household.account_id,))
    row = await cur.fetchone()
    assert row is not None
    await page.get_by_label("Account number").fill(site.household.account_id)
    await page.get_by_label("Street").fill("Test street")
    await page.get_by_role("button", name="Find").click()
    await screenshot(page, "desk-search")
    await page.get_by_role("link", name=site.household.account_id).click()
    await expect(page.get_by_role("heading", name=f"Account card {site.household.account_id}"))\
        .to_be_visible()

    readings = page.get_by_role("region", name="Readings")
    await readings.get_by_label("New value").first.fill("12.5")
    await readings.get_by_label("Reason").first.fill("typed 1250 for 12.50 on the phone")
    await readings.get_by_role("button", name="Apply").first.click()
    await expect(page.get_by_role("status")).to_have_text("Reading corrected.")
    audit = page.get_by_role("region", name="Audit log")
    await expect(audit).to_contain_text("typed 1250 for 12.50 on the phone")
    await expect(audit).to_contain_text(site.operator.username)
    cur = await conn.execute("SELECT value, source FROM readings WHERE meter_id = %s",
                             (site.water_meter,))
    assert await cur.fetchall() == [(Decimal("12.5"), "operator")]

    # a manual adjustment with its reason: a ledger entry, the balance, the audit log
    adjustment = page.get_by_role("region", name="Balance adjustment")
    await adjustment.get_by_label("Amount, RUB (+ / -)").fill("100")
    await adjustment.get_by_label("Reason").fill("meter was not read in October, credit agreed")
    await adjustment.get_by_role("button", name="Apply").click()
    await expect(page.get_by_role("status")).to_have_text("Adjustment booked.")
    await expect(page.get_by_test_id(f"balance-{site.household.provider_id}"))\
        .to_have_text("97.50 ₽")
    await expect(audit).to_contain_text("meter was not read in October, credit agreed")
    await screenshot(page, "desk-card")
    cur = await conn.execute("SELECT kind, amount, entry_key FROM ledger WHERE account_id = %s",
                             (site.household.account_id,))
    rows = await cur.fetchall()
    assert [(kind, amount) for kind, amount, _ in rows if kind == "adjustment"] == [
        ("adjustment", Decimal("100"))]


async def test_the_cabinet_speaks_russian(site: Site, open_page: OpenPage) -> None:
    page = await open_page("ru-RU")
    await page.goto(f"{site.url}/login")
    assert await page.get_attribute("html", "lang") == "ru"
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "en"


async def test_messages_after_a_form_speak_russian_too(site: Site, open_page: OpenPage) -> None:
    """What a form's answer says travels in a cookie, which carries latin-1 only."""
    page = await open_page()
    await log_in(page, site, site.subscriber)
    await page.get_by_role("link", name="Русский").click()
    await page.get_by_label(f"холодная вода · {site.water_meter}").fill("7,25")
    await page.get_by_role("button", name="Отправить").click()
    await expect(page.get_by_role("status")).to_contain_text("Показания 7.25 приняты")


async def test_an_admin_gives_a_user_a_role_with_a_reason(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    admin = await person(conn, Role.ADMIN, password=PASSWORD)
    page = await open_page()
    await log_in(page, site, admin)
    await expect(page).to_have_url(f"{site.url}/admin")
    await page.get_by_label("User name or account number").fill("new-operator")
    await page.get_by_label("Password").fill("a long enough password")
    await page.locator("#new-role").select_option("operator")
    await page.locator("#new-reason").fill("joined the back office")
    await page.get_by_role("button", name="Create a user").click()
    await expect(page.get_by_role("status")).to_have_text("User created.")
    await screenshot(page, "admin")
    cur = await conn.execute("SELECT u.role, a.reason FROM users u JOIN audit_log a"
                             " ON a.subject = 'user ' || u.username WHERE u.username = %s",
                             ("new-operator",))
    assert await cur.fetchall() == [("operator", "joined the back office")]


async def test_a_postpaid_subscriber_downloads_the_bill_of_a_month_and_pays_it(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any], tmp_path: Path,
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    (flat,) = house.accounts
    await bill(conn, date(2026, 1, 1), Selection(region=house.region), "test")
    tenant = await person(conn, Role.SUBSCRIBER, accounts=[flat], password=PASSWORD)
    page = await open_page()
    await log_in(page, site, tenant)
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Payment document for 2026-01 (PDF)").click()
    download = await download_info.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF")

    # the bill through the payment provider: what is owed is offered, the month chosen
    cur = await conn.execute("SELECT -amount FROM balances WHERE account_id = %s", (flat,))
    (owed,) = [a for (a,) in await cur.fetchall()]
    assert owed > 0
    pay = page.get_by_role("region", name="Pay the bill")
    await expect(pay).to_contain_text(f"To pay: {owed:.2f} ₽.")
    await expect(pay.get_by_label("Amount, RUB")).to_have_value(f"{owed:.2f}")
    await pay.get_by_label("Month to pay first").select_option("2026-01")
    await pay.get_by_role("button", name="Pay").click()
    await page.wait_for_url(f"{site.settings.acquirer_base_url}/pay/*")
    await page.get_by_role("button", name="Pay").click()
    await page.wait_for_url(f"{site.url}/cabinet/accounts/{flat}")
    await expect(page.get_by_test_id("balance")).to_have_text("0.00 ₽")
    cur = await conn.execute("SELECT channel, amount, period FROM payments WHERE account_id = %s",
                             (flat,))
    assert await cur.fetchall() == [("online", owed, date(2026, 1, 1))]


async def test_an_operator_starts_a_bill_run_and_watches_it(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    page = await open_page()
    await log_in(page, site, site.operator)
    runs = page.get_by_role("region", name="Bill runs")
    await runs.get_by_label("Month (YYYY-MM)").fill("2026-02")
    await runs.get_by_label("Region (optional)").fill(house.region)
    await runs.get_by_role("button", name="Start a bill run").click()
    await expect(page.get_by_role("status")).to_have_text("Bill run queued.")
    cur = await conn.execute("SELECT id FROM bill_runs WHERE started_by = %s",
                             (f"desk:{site.operator.username}",))
    row = await cur.fetchone()
    assert row is not None
    run = page.get_by_test_id(f"billrun-{row[0]}")
    await expect(run).to_contain_text("2026-02: queued")
    # what the scheduler service does with the queued run; the desk refreshes itself
    await bill(conn, date(2026, 2, 1), Selection(region=house.region), "scheduler",
               queued=row[0])
    await expect(run).to_contain_text("2026-02: done, 1 of 1 accounts (100%)", timeout=15_000)


async def test_a_subscriber_sees_payments_of_every_channel(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    account = site.household.account_id
    await receive(conn, Payment(key=f"payment:cash:{uuid.uuid4()}", channel="cash",
                                account_id=account, amount=Decimal("300.00"),
                                paid_at=datetime(2026, 2, 3, 10, tzinfo=UTC),
                                provider_id=site.household.provider_id))
    page = await open_page()
    await log_in(page, site, site.subscriber)
    history = page.get_by_test_id("payment-history")
    await expect(history).to_contain_text("2026-02-03")
    await expect(history).to_contain_text("cash desk")
    await expect(history).to_contain_text("300.00")


async def test_logging_out_ends_the_pages_tokens_at_once(
    site: Site, open_page: OpenPage,
) -> None:
    page = await open_page()
    await log_in(page, site, site.subscriber)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    stolen = {"Authorization": f"Bearer {cookies['ml_access']}"}
    url = f"/accounts/{site.household.account_id}"
    async with httpx.AsyncClient(base_url=site.url) as http:
        assert (await http.get(url, headers=stolen)).status_code == 200
        await page.get_by_role("button", name=f"Log out ({site.subscriber.username})").click()
        await page.wait_for_url(f"{site.url}/login")
        assert (await http.get(url, headers=stolen)).status_code == 401
        # nor does the refresh cookie bring the login back
        refreshed = await http.post("/auth/token", data={
            "grant_type": "refresh_token", "refresh_token": cookies["ml_refresh"]})
        assert refreshed.status_code == 400


async def test_a_subscriber_whose_balance_ran_out_takes_the_emergency_credit(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    ran_out = await customer(conn, "-5", contract_type="prepay_cutoff")  # 200, 25 % repays
    who = await person(conn, Role.SUBSCRIBER, accounts=[ran_out.account_id], password=PASSWORD)
    page = await open_page()
    await log_in(page, site, who)
    await expect(page.get_by_test_id("balance")).to_have_text("-5.00 ₽")
    await page.get_by_role("button", name="Take emergency credit: 200.00 ₽").click()
    await expect(page.get_by_role("status")).to_contain_text(
        "Emergency credit of 200.00 ₽ taken; balance now 195.00 ₽")
    await expect(page.get_by_test_id("balance")).to_have_text("195.00 ₽")
    await expect(page.get_by_test_id("emergency-owed")).to_contain_text(
        "Emergency credit owed: 200.00 ₽, repaid by 25 % of each top-up")
    await expect(page.get_by_role("button", name="Take emergency credit: 200.00 ₽")) \
        .to_have_count(0)
    assert await balance_of(conn, ran_out.account_id, ran_out.provider_id) == Decimal(195)
