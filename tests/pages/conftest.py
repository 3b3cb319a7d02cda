"""The web pages in a real browser: Debian's chromium driven by Playwright (its async API, in
the tests' event loop, where the API and the test acquirer are served on real ports).

`make test` installs chromium with apt when it is missing; there is no browser download."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from api.app import create_app
from meterline.settings import Settings
from meterline.users import Role
from simulators.acquirer import create_acquirer_app
from tests.factories import Customer, Person, customer, meter_read_by_people, person
from tests.http_servers import listening, serving, url_of

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "page-test-password"
PHONE: ViewportSize = {"width": 390, "height": 844}  # a phone-sized screen
# set to a folder to keep the pages' screenshots (the README's come from there)
SCREENSHOTS = os.environ.get("METERLINE_SCREENSHOT_DIR")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per session
        pytest.fail(f"no {CHROMIUM}: `make test` installs it (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                    args=["--no-sandbox"])
        yield launched
        await launched.close()


@dataclass
class Site:
    url: str
    settings: Settings
    household: Customer  # prepaid, in debt, supply off, with a meter people read
    water_meter: str
    subscriber: Person
    operator: Person
    stranger: Customer  # another subscriber's account


@pytest.fixture
async def site(make_settings: Callable[..., Settings],
               conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[Site]:
    api_sock, acquirer_sock = listening(), listening()
    settings = make_settings(public_url=url_of(api_sock), acquirer_url=url_of(acquirer_sock))
    household = await customer(conn, "-2.50")
    await conn.execute("UPDATE meters SET relay_state = 'disconnected' WHERE id = %s",
                       (household.meter_id,))
    water = await meter_read_by_people(conn, household)
    subscriber = await person(conn, Role.SUBSCRIBER, accounts=[household.account_id],
                              password=PASSWORD)
    operator = await person(conn, Role.OPERATOR, password=PASSWORD)
    stranger = await customer(conn, "987654.32")  # a balance no page of ours may show
    async with (serving(create_app(settings), api_sock),
                serving(create_acquirer_app(settings), acquirer_sock)):
        yield Site(url_of(api_sock), settings, household, water, subscriber, operator,
                   stranger)


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    """Fresh browser contexts (no cookies) on a phone-sized screen, in ``locale``."""
    contexts: list[BrowserContext] = []

    async def make(locale: str = "en-US") -> Page:
        context = await browser.new_context(viewport=PHONE, locale=locale,
                                            accept_downloads=True)
        contexts.append(context)
        return await context.new_page()

    yield make
    for context in contexts:
        await context.close()


async def log_in(page: Page, site: Site, who: Person) -> None:
    await page.goto(f"{site.url}/login")
    await page.get_by_label("User name or account number").fill(who.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(lambda url: "/login" not in url)


async def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:  # Playwright makes the folder
        await page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"))
