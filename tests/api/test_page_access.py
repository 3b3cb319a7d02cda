"""Who may open which page, as a matrix: every caller against every page and form of the
cabinet, the desk and administration, on one subscriber's account (the browser tests in
tests/pages walk the flows; this proves the guard on each route, including ones added later).

Pages answer a caller who is not logged in with a redirect to /login (303); another person's
account, and a page of another role, answer like a missing page (404)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.pages import MODULES
from api.pages.session import ACCESS, CSRF
from tests.api.checks import cast_of_callers, on_owner
from tests.api.conftest import BASE_URL, Bearer
from tests.factories import Customer

CALLERS = ("anonymous", "owner", "other subscriber", "industrial", "operator", "admin")

# route -> status per caller (in CALLERS order), on the owner's account and meter; an id the
# path needs beyond those is a well-formed one that does not exist
MATRIX: dict[str, tuple[int, ...]] = {
    # home: each to the page of their role (303), the cabinet's account pages to their owner
    "GET /cabinet": (303, 303, 303, 303, 303, 303),
    "GET /cabinet/accounts/{account_id}": (303, 200, 404, 404, 200, 200),
    "GET /cabinet/accounts/{account_id}/statement.csv": (303, 200, 404, 404, 200, 200),
    "GET /cabinet/accounts/{account_id}/documents/{period}.pdf": (303, 404, 404, 404, 404, 404),
    "GET /cabinet/accounts/{account_id}/notifications": (303, 200, 404, 404, 200, 200),
    "GET /cabinet/accounts/{account_id}/notices/{notice_id}": (303, 404, 404, 404, 404, 404),
    "GET /cabinet/accounts/{account_id}/plans": (303, 200, 404, 404, 200, 200),
    # what the subscriber does (a form answers by a redirect back with what happened); paying
    # goes to the acquirer, which does not listen in this test (502 says the guard let it by)
    "POST /cabinet/accounts/{account_id}/topup": (303, 502, 404, 404, 404, 502),
    "POST /cabinet/accounts/{account_id}/emergency-credit": (303, 303, 404, 404, 404, 303),
    "POST /cabinet/accounts/{account_id}/readings": (303, 303, 404, 404, 303, 303),
    "POST /cabinet/accounts/{account_id}/notifications": (303, 303, 404, 404, 303, 303),
    "POST /cabinet/accounts/{account_id}/plans": (303, 303, 404, 404, 303, 303),
    # interval data and API keys: industrial customers (the owner here is a household)
    "GET /cabinet/accounts/{account_id}/intervals": (303, 404, 404, 404, 200, 200),
    "GET /cabinet/accounts/{account_id}/meters/{meter_id}/load-profile.csv":
        (303, 404, 404, 404, 200, 200),
    "GET /cabinet/keys": (303, 404, 404, 200, 404, 200),
    "POST /cabinet/keys": (303, 404, 404, 201, 404, 201),
    "POST /cabinet/keys/{key_id}/revoke": (303, 404, 404, 303, 404, 303),
    # the operator's desk
    "GET /desk": (303, 404, 404, 404, 200, 200),
    "POST /desk/billruns": (303, 404, 404, 404, 303, 303),
    "GET /desk/accounts/{account_id}": (303, 404, 404, 404, 200, 200),
    "POST /desk/accounts/{account_id}/corrections": (303, 404, 404, 404, 303, 303),
    "POST /desk/accounts/{account_id}/adjustments": (303, 404, 404, 404, 303, 303),
    # administration
    "GET /admin": (303, 404, 404, 404, 404, 200),
    "POST /admin/users": (303, 404, 404, 404, 404, 303),
    "POST /admin/users/{user_id}/role": (303, 404, 404, 404, 404, 404),
}
# pages for everyone: the front door and logging in and out
OPEN = {"GET /", "GET /login", "POST /login", "POST /logout"}

FORMS: dict[str, dict[str, str]] = {
    "POST /cabinet/accounts/{account_id}/topup": {"amount": "1.00",
                                                  "provider_id": "{provider_id}"},
    "POST /cabinet/accounts/{account_id}/emergency-credit": {"provider_id": "{provider_id}"},
    "POST /cabinet/accounts/{account_id}/readings": {"meter_id": "{meter_id}", "value": "1"},
    "POST /cabinet/accounts/{account_id}/notifications": {"channels": "cabinet"},
    "POST /cabinet/accounts/{account_id}/plans": {"provider_id": "{provider_id}",
                                                  "plan": "no-such-plan"},
    "POST /cabinet/keys": {"name": "export", "scopes": "accounts:read"},
    "POST /desk/billruns": {"period": "2026-03", "region": "Nowhere"},
    "POST /desk/accounts/{account_id}/corrections": {
        "meter_id": "{meter_id}", "reading_register": "total", "ts": "2026-03-01T00:00:00Z",
        "version": "0", "value": "1", "reason": "typed wrong"},
    "POST /desk/accounts/{account_id}/adjustments": {
        "adjustment_id": "{new_id}", "provider_id": "{provider_id}", "service": "electricity",
        "amount": "1.00", "reason": "goodwill"},
    "POST /admin/users": {"username": "{new_id}", "password": "a long enough password",
                          "role": "operator", "reason": "a new colleague"},
    "POST /admin/users/{user_id}/role": {"role": "operator", "reason": "moved to the desk"},
}
PATH_VALUES = {"period": "2026-03", "key_id": "0123456789ab", "user_id": "999999999"}
TOKEN = "csrf-token-of-the-test"


@dataclass
class World:
    owner: Customer
    cookies: dict[str, dict[str, str]]  # caller -> cookies of a logged-in browser


@pytest.fixture
async def world(served: FastAPI, conn: psycopg.AsyncConnection[Any],
                bearer: Bearer) -> AsyncIterator[World]:
    owner, people = await cast_of_callers(conn)
    cookies = {"anonymous": {CSRF: TOKEN}}
    for name, who in people.items():  # the access token an API caller sends, in its cookie
        token = bearer(who)["Authorization"].removeprefix("Bearer ")
        cookies[name] = {CSRF: TOKEN, ACCESS: token}
    yield World(owner, cookies)


def _routes() -> set[str]:
    return {f"{method} {route.path}" for module in MODULES for route in module.router.routes
            if isinstance(route, APIRoute) for method in route.methods or ()}


def _request(route: str, owner: Customer) -> dict[str, Any]:
    method, path = route.split(" ")
    request: dict[str, Any] = {"method": method, "url": on_owner(path, owner, **PATH_VALUES)}
    if method == "POST":
        form = {name: value.format(provider_id=owner.provider_id, meter_id=owner.meter_id,
                                   new_id=uuid.uuid4().hex[:12])
                for name, value in FORMS.get(route, {}).items()}
        request["data"] = {"csrf": TOKEN, **form}
    return request


def test_every_page_is_in_the_matrix() -> None:
    """A new page fails here until someone decides who may open it."""
    assert _routes() - OPEN == set(MATRIX)


@pytest.mark.parametrize("route", sorted(MATRIX))
async def test_page_by_role_matrix(served: FastAPI, world: World, route: str) -> None:
    got = []
    for caller in CALLERS:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served),
                                     base_url=BASE_URL, cookies=world.cookies[caller]) as browser:
            response = await browser.request(**_request(route, world.owner))
        got.append(response.status_code)
        if response.status_code == 303 and caller == "anonymous":
            assert response.headers["location"] == "/login"
    assert dict(zip(CALLERS, got, strict=True)) == dict(zip(CALLERS, MATRIX[route], strict=True))
