"""An industrial customer's pages in Debian's chromium: a day's quarter-hours and the month's
load profile as CSV, and API keys for their own systems that work, then stop when revoked."""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from playwright.async_api import Page, expect

from meterline.telemetry import refresh_rollups, write_readings
from meterline.users import Role
from tests.factories import customer, person, reading_columns
from tests.pages.conftest import PASSWORD, Site, log_in, screenshot

OpenPage = Callable[..., Awaitable[Page]]
MOSCOW = ZoneInfo("Europe/Moscow")


async def test_an_industrial_customer_reads_interval_data_and_exports_it(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any], tmp_path: Path,
) -> None:
    plant = await customer(conn, "1000")
    # read every 15 minutes from 00:00 to 02:00 Moscow time on 2025-03-01, 0.25 kWh apart
    start = datetime(2025, 3, 1, tzinfo=MOSCOW).astimezone(UTC)
    points = [(start + timedelta(minutes=15 * i), Decimal(100) + Decimal("0.25") * i)
              for i in range(9)]
    await write_readings(conn, reading_columns(plant.meter_id, points))
    await refresh_rollups(conn)
    who = await person(conn, Role.INDUSTRIAL, accounts=[plant.account_id], password=PASSWORD)

    page = await open_page()
    await log_in(page, site, who)
    await page.get_by_role("link", name="Interval data").click()
    await page.get_by_label("Day").fill("2025-03-01")
    await page.get_by_role("button", name="Show").click()
    rows = page.get_by_test_id("quarters").locator("tbody tr")
    await expect(rows).to_have_count(96)
    await expect(rows.nth(0)).to_contain_text("00:00\u201300:15")
    await expect(rows.nth(0)).to_contain_text("0.25")
    await expect(rows.nth(8)).to_contain_text("missing")  # 02:00-02:15: no reading after it
    await screenshot(page, "cabinet-intervals")

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download CSV · 2025-03").click()
    download = await download_info.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    lines = list(csv.DictReader(saved.open()))
    assert len(lines) == 31 * 96
    assert (lines[0]["start"], lines[0]["quantity"], lines[0]["status"]) == (
        "2025-03-01T00:00:00+03:00", "0.25", "actual")

    # a subscriber's account page offers no interval export, and the page is not theirs
    other = await open_page()
    await log_in(other, site, site.subscriber)
    reply = await other.goto(f"{site.url}/cabinet/accounts/{site.household.account_id}"
                             "/intervals")
    assert reply is not None and reply.status == 404
    reply = await other.goto(f"{site.url}/cabinet/accounts/{plant.account_id}/intervals")
    assert reply is not None and reply.status == 404


async def test_an_industrial_customer_makes_an_api_key_uses_it_and_revokes_it(
    site: Site, open_page: OpenPage, conn: psycopg.AsyncConnection[Any],
) -> None:
    plant = await customer(conn, "1000")
    who = await person(conn, Role.INDUSTRIAL, accounts=[plant.account_id], password=PASSWORD)
    page = await open_page()
    await log_in(page, site, who)
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Key name").fill("SCADA export")
    await page.get_by_label("accounts:read").check()
    await page.get_by_role("button", name="Create a key").click()
    shown = await page.get_by_test_id("new-key").inner_text()
    key = shown.rsplit(" ", 1)[-1]
    assert key.startswith("mlk_")
    await expect(page.get_by_role("row", name="SCADA export")).to_contain_text("accounts:read")

    async with httpx.AsyncClient(base_url=site.url, headers={"X-API-Key": key}) as machine:
        assert (await machine.get(f"/accounts/{plant.account_id}")).status_code == 200
        assert (await machine.get(f"/accounts/{site.stranger.account_id}")).status_code == 404
        await page.get_by_role("button", name="Revoke SCADA export").click()
        await expect(page.get_by_role("status")).to_contain_text("Key revoked")
        await expect(page.get_by_role("row", name="SCADA export")).to_contain_text("revoked")
        assert (await machine.get(f"/accounts/{plant.account_id}")).status_code == 401
    cur = await conn.execute("SELECT secret_hash FROM api_keys WHERE user_id = %s", (who.id,))
    (stored,) = await cur.fetchall()
    assert key.split("_")[2].encode() not in bytes(stored[0])  # only its hash is kept
