"""Online top-ups end to end over real HTTP: the API and the local test acquirer each served
on a port of their own; the acquirer calls the API's webhook as a payment provider would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from meterline.settings import Settings
from meterline.signatures import HEADER, sign
from meterline.users import Role
from simulators.acquirer import create_acquirer_app
from tests.api.checks import assert_problem, balance_of
from tests.api.conftest import Bearer
from tests.conftest import unique
from tests.factories import Customer, customer, person
from tests.http_servers import listening, serving


@dataclass
class Stack:
    api: httpx.AsyncClient  # as the subscriber who owns `account`
    acquirer: httpx.AsyncClient  # as the payer's browser, and as the shop (basic auth)
    settings: Settings
    account: Customer


@pytest.fixture
async def stack(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> AsyncIterator[Stack]:
    api_sock, acquirer_sock = listening(), listening()
    api_url = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
    acquirer_url = f"http://127.0.0.1:{acquirer_sock.getsockname()[1]}"
    settings = make_settings(public_url=api_url, acquirer_url=acquirer_url)
    account = await customer(conn, "-2.50")  # prepaid and disconnected
    await conn.execute("UPDATE meters SET relay_state = 'disconnected' WHERE id = %s",
                       (account.meter_id,))
    owner = await person(conn, Role.SUBSCRIBER, accounts=[account.account_id])
    shop = (settings.acquirer_shop_id, settings.acquirer_api_key.get_secret_value())
    headers = bearer(owner)  # the served app signs with the same development secret
    async with (
        serving(create_app(settings), api_sock),
        serving(create_acquirer_app(settings), acquirer_sock),
        httpx.AsyncClient(base_url=api_url, headers=headers) as api,
        httpx.AsyncClient(base_url=acquirer_url, auth=shop) as acquirer,
    ):
        yield Stack(api, acquirer, settings, account)


async def create(stack: Stack, amount: str = "250.00", key: str | None = None,
                 **extra: Any) -> httpx.Response:
    return await stack.api.post(
        f"/accounts/{stack.account.account_id}/online-payments",
        json={"amount": amount, **extra}, headers={"Idempotency-Key": key or unique("pay")})


async def test_paying_on_the_acquirers_page_credits_once_and_reconnects(
    stack: Stack, conn: psycopg.AsyncConnection[Any],
) -> None:
    back = f"{stack.settings.api_base_url}/cabinet/{stack.account.account_id}"
    made = await create(stack, "250.00", return_url=back)
    assert made.status_code == 201, made.text
    payment = made.json()
    assert payment["status"] == "pending" and payment["amount"] == "250.00"
    page = await stack.acquirer.get(payment["confirmation_url"])
    assert "250.00 RUB" in page.text

    paid = await stack.acquirer.post(f"{payment['confirmation_url']}/confirm")

    assert paid.status_code == 303 and paid.headers["location"] == back
    assert await balance_of(conn, stack.account.account_id, stack.account.provider_id) == \
        Decimal("247.50")
    now = (await stack.api.get(f"/accounts/{stack.account.account_id}/online-payments/"
                               f"{payment['id']}")).json()
    assert now["status"] == "succeeded" and now["paid_at"]
    cur = await conn.execute("SELECT action FROM relay_commands WHERE meter_id = %s",
                             (stack.account.meter_id,))
    assert await cur.fetchall() == [("connect",)]

    # the acquirer delivers the same event again: taken before, nothing credited
    acquirer_id = payment["confirmation_url"].rsplit("/", 1)[1]
    again = (await stack.acquirer.post(f"/v1/payments/{acquirer_id}/redeliver")).json()
    assert again["status"] == 200
    assert await balance_of(conn, stack.account.account_id, stack.account.provider_id) == \
        Decimal("247.50")
    cur = await conn.execute("SELECT count(*) FROM topups WHERE account_id = %s",
                             (stack.account.account_id,))
    assert await cur.fetchone() == (1,)


async def test_a_canceled_payment_credits_nothing(
    stack: Stack, conn: psycopg.AsyncConnection[Any],
) -> None:
    payment = (await create(stack, "10.00")).json()
    await stack.acquirer.post(f"{payment['confirmation_url']}/cancel")
    now = (await stack.api.get(f"/accounts/{stack.account.account_id}/online-payments/"
                               f"{payment['id']}")).json()
    assert now["status"] == "canceled"
    assert await balance_of(conn, stack.account.account_id, stack.account.provider_id) == \
        Decimal("-2.50")


async def test_a_retried_create_returns_the_same_payment(stack: Stack) -> None:
    key = unique("pay")
    first = await create(stack, "99.90", key)
    again = await create(stack, "99.90", key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["confirmation_url"] == first.json()["confirmation_url"]
    assert_problem(await create(stack, "99.91", key), 409)


async def test_return_urls_stay_on_our_site(stack: Stack) -> None:
    body = assert_problem(await create(stack, return_url="https://elsewhere.example/x"), 422)
    assert body["errors"][0]["loc"] == ["body", "return_url"]


async def _webhook(stack: Stack, event: dict[str, Any], secret: str | None = None,
                   at: int | None = None) -> httpx.Response:
    body = json.dumps(event).encode()
    key = secret or stack.settings.acquirer_webhook_secret.get_secret_value()
    return await stack.api.post("/acquirer/webhook", content=body,
                                headers={HEADER: sign(key, body, at),
                                         "Content-Type": "application/json"})


async def test_forged_stale_and_unsigned_webhooks_are_refused(
    stack: Stack, conn: psycopg.AsyncConnection[Any],
) -> None:
    payment = (await create(stack, "500.00")).json()
    acquirer_id = payment["confirmation_url"].rsplit("/", 1)[1]
    event = {"id": unique("evt"), "type": "payment.succeeded",
             "payment": {"id": acquirer_id, "status": "succeeded", "amount": "500.00"}}

    forged = assert_problem(await _webhook(stack, event, "not the shared secret"), 401)
    assert forged["type"] == "urn:meterline:problem:bad-signature"
    stale = assert_problem(await _webhook(stack, event, at=int(time.time()) - 3600), 401)
    assert stale["type"] == "urn:meterline:problem:stale-signature"
    unsigned = await stack.api.post("/acquirer/webhook", json=event)
    assert_problem(unsigned, 401)
    assert await balance_of(conn, stack.account.account_id, stack.account.provider_id) == \
        Decimal("-2.50")

    taken = await _webhook(stack, event)
    assert taken.json() == {"event_id": event["id"], "taken": True,
                            "payment_status": "succeeded"}
    replayed = await _webhook(stack, event)  # the same event id, freshly signed
    assert replayed.json()["taken"] is False
    other_event = await _webhook(stack, {**event, "id": unique("evt")})  # same payment again
    assert other_event.json()["taken"] is True
    assert await balance_of(conn, stack.account.account_id, stack.account.provider_id) == \
        Decimal("497.50")


async def test_the_payment_qr_holds_the_confirmation_url(stack: Stack, tmp_path: Path) -> None:
    payment = (await create(stack, "12.34")).json()
    png = await stack.api.get(payment["qr_url"])
    assert png.headers["content-type"] == "image/png"
    (tmp_path / "qr.png").write_bytes(png.content)
    decoded = (await asyncio.to_thread(
        subprocess.run, ["zbarimg", "--quiet", "--raw", str(tmp_path / "qr.png")],
        capture_output=True, text=True, check=True)).stdout.strip()
    assert decoded == payment["confirmation_url"]


async def test_an_unreachable_acquirer_is_a_502_and_the_same_key_goes_on_later(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    acquirer_sock = listening()
    acquirer_url = f"http://127.0.0.1:{acquirer_sock.getsockname()[1]}"
    dead = make_settings(acquirer_url="http://127.0.0.1:9")  # nothing listens on discard
    alive = make_settings(acquirer_url=acquirer_url)
    account = await customer(conn, "0")
    owner = await person(conn, Role.SUBSCRIBER, accounts=[account.account_id])
    url, key = f"/accounts/{account.account_id}/online-payments", unique("k")
    for settings, expected in ((dead, 502), (alive, 200)):
        app = create_app(settings)
        async with (
            serving(create_acquirer_app(alive), acquirer_sock) if expected == 200
            else _nothing(),
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                              base_url="http://meterline.test", headers=bearer(owner)) as api,
        ):
            reply = await api.post(url, json={"amount": "5.00"},
                                   headers={"Idempotency-Key": key})
            assert reply.status_code == expected, reply.text
    assert reply.json()["confirmation_url"].startswith(acquirer_url)


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield
