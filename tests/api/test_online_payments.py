"""Online payments end to end over real HTTP: the API and the local test acquirer each served
on a port of their own; the acquirer calls the API's webhook as a payment provider would.
A prepaid account tops up a provider's balance; a postpaid account's payment is received and
split over its bill (DOMAIN §2)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from meterline.ledger import check
from meterline.settings import Settings
from meterline.signatures import HEADER, sign
from meterline.users import Role
from simulators.acquirer import create_acquirer_app
from tests.api.checks import assert_problem, balance_of
from tests.api.conftest import Bearer
from tests.conftest import unique
from tests.factories import Customer, charge_month, customer, housing_account, person
from tests.http_servers import listening, serving


@dataclass
class Stack:
    api: httpx.AsyncClient  # as the subscriber who owns `account`
    acquirer: httpx.AsyncClient  # as the payer's browser, and as the shop (basic auth)
    settings: Settings
    account: Customer
    bearer: Bearer


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
        yield Stack(api, acquirer, settings, account, bearer)


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


# --- postpaid accounts: the payment is received and split over the bill

JAN, FEB = date(2025, 1, 1), date(2025, 2, 1)


async def _subscriber_of(stack: Stack, conn: psycopg.AsyncConnection[Any],
                         account_id: str) -> dict[str, str]:
    owner = await person(conn, Role.SUBSCRIBER, accounts=[account_id])
    return stack.bearer(owner)


async def _pay(stack: Stack, account_id: str, headers: dict[str, str],
               **body: Any) -> dict[str, Any]:
    """Create the payment, pay it on the acquirer's page; the payment as the API shows it."""
    made = await stack.api.post(f"/accounts/{account_id}/online-payments", json=body,
                                headers={**headers, "Idempotency-Key": unique("pay")})
    assert made.status_code == 201, made.text
    await stack.acquirer.post(f"{made.json()['confirmation_url']}/confirm")
    paid = await stack.api.get(f"/accounts/{account_id}/online-payments/{made.json()['id']}",
                               headers=headers)
    result: dict[str, Any] = paid.json()
    return result


async def test_a_postpaid_payment_is_split_over_the_bill_earliest_month_first(
    stack: Stack, conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await housing_account(conn)
    await charge_month(conn, a, JAN, {"maintenance": "500.00", "electricity": "300.00",
                                      "cold_water": "200.00"})
    await charge_month(conn, a, FEB, {"maintenance": "500.00", "electricity": "250.00",
                                      "cold_water": "250.00"})
    headers = await _subscriber_of(stack, conn, a.account_id)

    paid = await _pay(stack, a.account_id, headers, amount="1500.00")

    # January whole, then 500.00 of February in proportion 500 : 250 : 250
    assert paid["status"] == "succeeded" and paid["provider_id"] is None
    uk, sbyt, voda = (a.provider(s) for s in ("maintenance", "electricity", "cold_water"))
    assert {(s["provider_id"], s["service"], s["period"], s["amount"])
            for s in paid["shares"]} == {
        (uk, "maintenance", "2025-01", "500.00"), (sbyt, "electricity", "2025-01", "300.00"),
        (voda, "cold_water", "2025-01", "200.00"), (uk, "maintenance", "2025-02", "250.00"),
        (sbyt, "electricity", "2025-02", "125.00"), (voda, "cold_water", "2025-02", "125.00"),
    }
    assert await balance_of(conn, a.account_id, uk) == Decimal("-250.00")
    cur = await conn.execute("SELECT channel, amount FROM payments WHERE account_id = %s",
                             (a.account_id,))
    assert await cur.fetchall() == [("online", Decimal("1500.00"))]
    assert await check(conn, a.account_id) == []

    # the acquirer delivers the event again: received once
    acquirer_id = paid["confirmation_url"].rsplit("/", 1)[1]
    again = (await stack.acquirer.post(f"/v1/payments/{acquirer_id}/redeliver")).json()
    assert again["status"] == 200
    cur = await conn.execute("SELECT count(*) FROM payments WHERE account_id = %s",
                             (a.account_id,))
    assert await cur.fetchone() == (1,)
    assert await balance_of(conn, a.account_id, uk) == Decimal("-250.00")


async def test_a_postpaid_payment_naming_a_month_pays_that_month_first(
    stack: Stack, conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await housing_account(conn)
    await charge_month(conn, a, JAN, {"maintenance": "100.00", "electricity": "100.00"})
    await charge_month(conn, a, FEB, {"maintenance": "300.00", "electricity": "100.00"})
    headers = await _subscriber_of(stack, conn, a.account_id)

    paid = await _pay(stack, a.account_id, headers, amount="200.00", period="2025-02")

    assert paid["period"] == "2025-02"
    assert {(s["service"], s["period"], s["amount"]) for s in paid["shares"]} == {
        ("maintenance", "2025-02", "150.00"), ("electricity", "2025-02", "50.00")}


async def test_each_billing_mode_refuses_what_it_does_not_take(
    stack: Stack, conn: psycopg.AsyncConnection[Any],
) -> None:
    a = await housing_account(conn)
    headers = await _subscriber_of(stack, conn, a.account_id)
    postpaid = await stack.api.post(
        f"/accounts/{a.account_id}/online-payments",
        json={"amount": "10.00", "provider_id": a.provider("electricity")},
        headers={**headers, "Idempotency-Key": unique("pay")})
    assert assert_problem(postpaid, 422)["errors"][0]["loc"] == ["body", "provider_id"]
    prepaid = await create(stack, "10.00", period="2025-01")
    assert assert_problem(prepaid, 422)["errors"][0]["loc"] == ["body", "period"]
    cur = await conn.execute("SELECT count(*) FROM online_payments WHERE account_id = ANY(%s)",
                             ([a.account_id, stack.account.account_id],))
    assert await cur.fetchone() == (0,)
