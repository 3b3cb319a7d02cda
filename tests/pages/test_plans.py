"""Choosing a tariff plan in the cabinet, in Debian's chromium: among the provider's plans,
from the next billing period in the account's time zone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from playwright.async_api import Page, expect

from meterline.tariffs.choices import account_plans
from meterline.users import Role
from tests.factories import book_customer, person
from tests.pages.conftest import PASSWORD, Site, log_in, screenshot

OpenPage = Callable[..., Awaitable[Page]]


def next_month_in_moscow() -> str:
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Moscow")).date()
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return f"{year}-{month:02d}-01"


async def test_a_subscriber_chooses_a_plan_from_the_next_period(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    who = await person(conn, Role.SUBSCRIBER, accounts=[made.account_id], password=PASSWORD)
    page = await open_page()
    await log_in(page, site, who)
    await page.get_by_role("link", name="Tariff plans").click()
    now = page.get_by_test_id(f"plan-now-{made.provider_id}-electricity")
    await expect(now).to_contain_text("Households, one rate")
    await page.get_by_label("Households, peak, semi-peak and night").check()
    await page.get_by_label("Consumer group").select_option("electric_stove")
    await page.get_by_role("button", name="Choose a plan").click()
    await expect(page.get_by_role("status")).to_contain_text(
        f"Plan Households, peak, semi-peak and night chosen from {next_month_in_moscow()}")
    # in force now: the old plan; from the next period: the chosen one
    await expect(now).to_contain_text("Households, one rate")
    await expect(page.get_by_test_id(f"plan-next-{made.provider_id}-electricity")) \
        .to_contain_text("Households, peak, semi-peak and night (electric_stove)")
    await screenshot(page, "cabinet-plans")
    current, pending = await account_plans(conn, made.account_id)
    assert [p.plan_code for p in current] == ["household-flat"]
    assert [(p.plan_code, p.consumer_group, p.since.isoformat() if p.since else None)
            for p in pending] == [("household-3zone", "electric_stove", next_month_in_moscow())]
