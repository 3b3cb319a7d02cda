"""Who may do what, as a matrix: every caller against every endpoint, on one subscriber's
account. Another's account answers exactly like a missing one (404, nothing about it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from meterline.users import Role, Scope, create_api_key
from tests.api.checks import assert_problem, cast_of_callers, on_owner
from tests.api.conftest import Bearer
from tests.conftest import unique
from tests.factories import Customer, customer, person

CALLERS = ("anonymous", "owner", "other subscriber", "industrial", "operator", "admin",
           "industrial key (accounts:read)", "agent key (topups:write)")

# Every operation of the OpenAPI document that wants a caller, and what each caller gets on
# the owner's account and meter (in CALLERS order). An id the path needs beyond the account
# and the meter is a well-formed one that does not exist: 404 for whoever may look.
MATRIX: dict[str, tuple[int, ...]] = {
    # who is calling; API keys, for industrial customers and admins
    "GET /auth/me": (401, 200, 200, 200, 200, 200, 200, 200),
    "GET /auth/api-keys": (401, 403, 403, 200, 403, 200, 403, 403),
    "POST /auth/api-keys": (401, 403, 403, 201, 403, 201, 403, 403),
    "DELETE /auth/api-keys/{key_id}": (401, 403, 403, 404, 403, 404, 403, 403),
    # the account: its subscriber, operators and admins read it; others see nothing
    "GET /accounts/{account_id}": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /accounts/{account_id}/balances": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /accounts/{account_id}/usage": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /meters/{meter_id}": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /meters/{meter_id}/usage": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /meters/{meter_id}/peak-demand": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /meters/{meter_id}/load-profile.csv": (401, 403, 403, 404, 200, 200, 403, 403),
    "GET /meters/{meter_id}/readings": (401, 200, 404, 404, 200, 200, 404, 403),
    # money: top-ups are recorded by payment agents and admins; the subscriber pays online
    "POST /accounts/{account_id}/topups": (401, 403, 403, 403, 403, 201, 403, 201),
    # (no acquirer listens here, see tests/api/conftest.py: 502 says the caller got past the
    # guard; test_online_payments runs the whole flow against the local test acquirer)
    "POST /accounts/{account_id}/online-payments": (401, 502, 404, 404, 403, 502, 403, 403),
    "GET /accounts/{account_id}/online-payments/{payment_id}":
        (401, 404, 404, 404, 404, 404, 404, 403),
    "GET /accounts/{account_id}/online-payments/{payment_id}/qr.png":
        (401, 404, 404, 404, 404, 404, 404, 403),
    # past the guard, the rules answer: this contract gives no emergency credit (422)
    "POST /accounts/{account_id}/emergency-credit": (401, 422, 404, 404, 403, 422, 403, 403),
    "GET /accounts/{account_id}/documents/{period}": (401, 404, 404, 404, 404, 404, 404, 403),
    # what the subscriber decides: readings, plan, notices
    # a meter read through a gateway needs no reading from its subscriber (409, past the
    # guard); an operator may still enter one, as a reading taken on site
    "POST /meters/{meter_id}/readings": (401, 409, 404, 404, 201, 201, 403, 403),
    "GET /accounts/{account_id}/plans": (401, 200, 404, 404, 200, 200, 404, 403),
    # past the guard, the rules answer: no such plan among the provider's (422)
    "POST /accounts/{account_id}/plans": (401, 422, 404, 404, 422, 422, 403, 403),
    "GET /accounts/{account_id}/notice-preferences": (401, 200, 404, 404, 200, 200, 404, 403),
    "PUT /accounts/{account_id}/notice-preferences": (401, 200, 404, 404, 200, 200, 403, 403),
    "GET /accounts/{account_id}/notices": (401, 200, 404, 404, 200, 200, 404, 403),
    # only the subscriber's own opening is proof of delivery: not even an admin may say so
    "POST /accounts/{account_id}/notices/{notice_id}/opened":
        (401, 404, 404, 404, 403, 403, 404, 403),
    # the operator's desk
    "GET /desk/accounts": (401, 403, 403, 403, 200, 200, 403, 403),
    "PUT /meters/{meter_id}/readings/{register}/{ts}": (401, 403, 403, 403, 404, 404, 403, 403),
    "POST /accounts/{account_id}/adjustments": (401, 403, 403, 403, 201, 201, 403, 403),
    "POST /billruns": (401, 403, 403, 403, 202, 202, 403, 403),
    "GET /billruns": (401, 403, 403, 403, 200, 200, 403, 403),
    "GET /billruns/{run_id}": (401, 403, 403, 403, 404, 404, 403, 403),
    # tariffs are public knowledge to anyone signed in
    "GET /tariffs": (401, 200, 200, 200, 200, 200, 200, 403),
    # the phone channel: an IVR platform calls with an API key
    "POST /ivr/turns": (401, 403, 403, 403, 403, 200, 403, 403),
}
# Operations that want no caller: probes, Prometheus, logging in, the acquirer's signed webhook.
OPEN = {"GET /health", "GET /ready", "GET /metrics", "POST /auth/token", "POST /auth/revoke",
        "POST /acquirer/webhook"}

BODIES: dict[str, dict[str, Any]] = {
    "POST /auth/api-keys": {"name": "export", "scopes": ["accounts:read"]},
    "POST /accounts/{account_id}/topups": {"amount": "1.00"},
    "POST /accounts/{account_id}/online-payments": {"amount": "1.00"},
    "POST /accounts/{account_id}/emergency-credit": {},
    "POST /meters/{meter_id}/readings": {"value": "1"},
    "POST /accounts/{account_id}/plans": {"plan": "no-such-plan"},
    "PUT /accounts/{account_id}/notice-preferences": {"channels": ["cabinet"]},
    "POST /accounts/{account_id}/notices/{notice_id}/opened": {},
    "PUT /meters/{meter_id}/readings/{register}/{ts}": {"value": "1", "reason": "typed wrong"},
    "POST /accounts/{account_id}/adjustments": {"service": "electricity", "amount": "1.00",
                                                 "reason": "goodwill"},
    "POST /billruns": {"period": "2026-03", "accounts": []},
    "POST /ivr/turns": {"caller": "+79990000000", "digits": ""},
}
# path parameters beyond the account and the meter
PATH_VALUES = {"period": "2026-03", "register": "total", "ts": "2026-03-01T00:00:00Z",
               "key_id": "0123456789ab", "run_id": "999999999"}


@dataclass
class World:
    owner: Customer
    headers: dict[str, dict[str, str]]  # caller -> request headers


@pytest.fixture
async def world(conn: psycopg.AsyncConnection[Any], bearer: Bearer) -> AsyncIterator[World]:
    owner, people = await cast_of_callers(conn)
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    headers |= {name: bearer(who) for name, who in people.items()}
    plant_key = await create_api_key(conn, people["industrial"].id, Role.INDUSTRIAL, "export",
                                     [Scope.ACCOUNTS_READ])
    agent_key = await create_api_key(conn, people["admin"].id, Role.ADMIN, "payment agent",
                                     [Scope.TOPUPS])
    headers["industrial key (accounts:read)"] = {"X-API-Key": plant_key.key}
    headers["agent key (topups:write)"] = {"X-API-Key": agent_key.key}
    yield World(owner, headers)


def _request(endpoint: str, owner: Customer) -> dict[str, Any]:
    method, path = endpoint.split(" ")
    request: dict[str, Any] = {"method": method, "url": on_owner(path, owner, **PATH_VALUES),
                               "headers": {}}
    if endpoint in BODIES:
        body = dict(BODIES[endpoint])
        if "service" in body:
            body["provider_id"] = owner.provider_id
        request["json"] = body
        request["headers"]["Idempotency-Key"] = unique("key")
    return request


def test_every_operation_is_in_the_matrix(served: FastAPI) -> None:
    """A new endpoint fails here until someone decides who may call it."""
    operations = {f"{method.upper()} {path}"
                  for path, methods in served.openapi()["paths"].items() for method in methods}
    assert operations - OPEN == set(MATRIX)


@pytest.mark.parametrize("endpoint", list(MATRIX))
async def test_role_by_endpoint_matrix(
    anonymous: httpx.AsyncClient, world: World, endpoint: str
) -> None:
    got = []
    for caller in CALLERS:
        request = _request(endpoint, world.owner)
        request["headers"] |= world.headers[caller]
        response = await anonymous.request(**request)
        got.append(response.status_code)
        if response.status_code >= 400:
            assert_problem(response, response.status_code)
    assert dict(zip(CALLERS, got, strict=True)) == dict(zip(CALLERS, MATRIX[endpoint],
                                                           strict=True))


async def test_anothers_account_answers_like_a_missing_one(
    anonymous: httpx.AsyncClient, world: World, conn: psycopg.AsyncConnection[Any],
) -> None:
    stranger = world.headers["other subscriber"]
    missing = unique("A")
    for path in ("/accounts/{}", "/accounts/{}/balances", "/accounts/{}/usage"):
        theirs = await anonymous.get(path.format(world.owner.account_id), headers=stranger)
        nobodys = await anonymous.get(path.format(missing), headers=stranger)
        body, expected = assert_problem(theirs, 404), assert_problem(nobodys, 404)
        assert body["detail"].replace(world.owner.account_id, "X") == \
            expected["detail"].replace(missing, "X")
        assert set(body) == set(expected)
        for secret in ("Ivan", "Petrov", "Moscow", "Test street", world.owner.provider_id,
                       world.owner.meter_id, "100"):
            assert secret not in theirs.text, secret
    meter = await anonymous.get(f"/meters/{world.owner.meter_id}", headers=stranger)
    assert assert_problem(meter, 404)["detail"] == f"No meter {world.owner.meter_id}"
    assert world.owner.account_id not in meter.text


async def test_every_account_and_meter_endpoint_is_guarded(
    served: FastAPI, anonymous: httpx.AsyncClient, world: World
) -> None:
    """Any route naming an account or a meter, including ones added later: anonymous gets
    401, a subscriber of another account 404 or 403 — never the data, never a 422 first."""
    paths = {path: operations for path, operations in served.openapi()["paths"].items()
             if "{account_id}" in path or "{meter_id}" in path}
    assert len(paths) >= 4
    for path, operations in paths.items():
        for method in operations:
            url = on_owner(path, world.owner)
            nobody = await anonymous.request(method, url, json={})
            assert nobody.status_code == 401, (method, path)
            stranger = await anonymous.request(method, url, json={},
                                               headers=world.headers["other subscriber"])
            assert stranger.status_code in (403, 404), (method, path, stranger.text)


def test_every_protected_operation_documents_its_security(served: FastAPI) -> None:
    schema = served.openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if f"{method.upper()} {path}" in OPEN:
                assert "security" not in operation, (method, path)
                continue
            assert operation.get("security"), (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


async def test_api_key_of_a_subscriber_sees_only_its_owners_accounts(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
) -> None:
    mine, theirs = await customer(conn, "5"), await customer(conn, "6")
    plant = await person(conn, Role.INDUSTRIAL, accounts=[mine.account_id])
    key = await create_api_key(conn, plant.id, Role.INDUSTRIAL, "scada", [Scope.ACCOUNTS_READ])
    headers = {"X-API-Key": key.key}
    assert (await anonymous.get(f"/accounts/{mine.account_id}", headers=headers)).status_code \
        == 200
    assert_problem(await anonymous.get(f"/accounts/{theirs.account_id}", headers=headers), 404)

