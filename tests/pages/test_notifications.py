"""The cabinet's notifications in Debian's chromium: a notice the notifier put in the cabinet
is opened there (proof of delivery), and the subscriber chooses channels per kind of notice,
which the notifier then reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from playwright.async_api import Page, expect

from billing.reminders.delivery import Notifier, make_notice
from meterline.notices import reach
from tests.conftest import unique
from tests.pages.conftest import Site, log_in, screenshot

OpenPage = Callable[..., Awaitable[Page]]


async def test_a_subscriber_opens_a_notice_and_chooses_how_to_be_told(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    account = site.household.account_id
    key = unique("notice")
    now = datetime.now(UTC)
    await make_notice(conn, key=key, kind="debt_notice", account_id=account,
                      provider_id=site.household.provider_id, service="electricity",
                      context={"debt": "4321.50"}, at=now)
    async with httpx.AsyncClient() as http:  # no preferences yet: the cabinet only
        done = await Notifier(site.settings, http).deliver(conn, now)
    assert done.sent >= 1

    page = await open_page()
    await log_in(page, site, site.subscriber)
    await page.get_by_role("link", name="Notifications (1)").click()
    notice = page.get_by_test_id("notice")
    await expect(notice).to_contain_text("new")
    await notice.get_by_role("link").click()
    await expect(page.get_by_test_id("notice-text")).to_contain_text("4 321,50")
    cur = await conn.execute("SELECT status, delivered_by FROM notices WHERE key = %s", (key,))
    assert await cur.fetchone() == ("delivered", "cabinet")

    await page.get_by_role("link", name="Notifications").click()
    await expect(notice).not_to_contain_text("new")
    await page.get_by_role("textbox", name="E-mail").fill("ivan@example.org")
    await page.get_by_role("group", name="Channels for every notice").get_by_label(
        "E-mail").check()
    await page.get_by_label("Low balance: SMS").check()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("phone number")
    # refused: nothing was stored
    assert (await reach(conn, [(account, "low_balance")]))[account, "low_balance"].email \
        is None

    await page.get_by_role("textbox", name="E-mail").fill("ivan@example.org")
    await page.get_by_label("Phone (+7…)").fill("+7 916 123-45-67")
    await page.get_by_role("group", name="Channels for every notice").get_by_label(
        "E-mail").check()
    await page.get_by_label("Low balance: SMS").check()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Preferences saved")
    await screenshot(page, "cabinet-notifications")
    got = await reach(conn, [(account, "low_balance"), (account, "debt_notice")])
    assert got[account, "debt_notice"].channels == ("cabinet", "email")
    assert got[account, "low_balance"].channels == ("cabinet", "sms")  # as its row shows
    assert got[account, "low_balance"].phone == "+79161234567"
    await expect(page.get_by_label("Low balance: SMS")).to_be_checked()
    await expect(page.get_by_label("Debt notice: SMS")).not_to_be_checked()


async def test_the_operator_sees_how_far_each_notice_got(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    account = site.household.account_id
    now = datetime.now(UTC)
    await make_notice(conn, key=unique("notice"), kind="low_balance", account_id=account,
                      provider_id=site.household.provider_id, service=None,
                      context={"balance": "-2.50", "days_left": "0"}, at=now)
    async with httpx.AsyncClient() as http:
        await Notifier(site.settings, http).deliver(conn, now)
    page = await open_page()
    await log_in(page, site, site.operator)
    await page.goto(f"{site.url}/desk/accounts/{account}")
    notices = page.get_by_test_id("card-notices")
    await expect(notices).to_contain_text("Low balance")
    await expect(notices).to_contain_text("pending")
    await expect(notices).to_contain_text("cabinet: sent")
