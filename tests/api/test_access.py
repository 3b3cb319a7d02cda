"""Who may do what, as a matrix: every caller against every endpoint, on one subscriber's
account. Another's account answers exactly like a missing one (404, nothing about it)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from meterline.users import Role, Scope, create_api_key
from tests.api.checks import assert_problem
from tests.api.conftest import Bearer
from tests.conftest import unique
from tests.factories import Customer, customer, person

CALLERS = ("anonymous", "owner", "other subscriber", "industrial", "operator", "admin",
           "industrial key (accounts:read)", "agent key (topups:write)")

# endpoint -> expected status per caller (in CALLERS order), on the owner's account and meter
MATRIX: dict[str, tuple[int, ...]] = {
    "GET /accounts/{account_id}": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /accounts/{account_id}/balances": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /accounts/{account_id}/usage": (401, 200, 404, 404, 200, 200, 404, 403),
    "POST /accounts/{account_id}/topups": (401, 403, 403, 403, 403, 201, 403, 201),
    "GET /meters/{meter_id}": (401, 200, 404, 404, 200, 200, 404, 403),
    "GET /auth/me": (401, 200, 200, 200, 200, 200, 200, 200),
    "GET /auth/api-keys": (401, 403, 403, 200, 403, 200, 403, 403),
    "GET /accounts/{account_id}/notice-preferences": (401, 200, 404, 404, 200, 200, 404, 403),
    "PUT /accounts/{account_id}/notice-preferences": (401, 200, 404, 404, 200, 200, 403, 403),
    "GET /accounts/{account_id}/notices": (401, 200, 404, 404, 200, 200, 404, 403),
}

BODIES: dict[str, dict[str, Any]] = {
    "POST": {"amount": "1.00"},
    "PUT": {"channels": ["cabinet"]},
}


@dataclass
class World:
    owner: Customer
    headers: dict[str, dict[str, str]]  # caller -> request headers


@pytest.fixture
async def world(conn: psycopg.AsyncConnection[Any], bearer: Bearer) -> AsyncIterator[World]:
    owner, other, plant = [await customer(conn, "100") for _ in range(3)]
    people = {
        "owner": await person(conn, Role.SUBSCRIBER, accounts=[owner.account_id]),
        "other subscriber": await person(conn, Role.SUBSCRIBER, accounts=[other.account_id]),
        "industrial": await person(conn, Role.INDUSTRIAL, accounts=[plant.account_id]),
        "operator": await person(conn, Role.OPERATOR),
        "admin": await person(conn, Role.ADMIN),
    }
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
    url = path.format(account_id=owner.account_id, meter_id=owner.meter_id)
    request: dict[str, Any] = {"method": method, "url": url, "headers": {}}
    if method in BODIES:
        request["json"] = BODIES[method]
        request["headers"]["Idempotency-Key"] = unique("key")
    return request


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
            url = path.format_map(defaultdict(
                lambda: str(uuid.uuid4()),  # any other id in the path: well-formed, unknown
                account_id=world.owner.account_id, meter_id=world.owner.meter_id))
            nobody = await anonymous.request(method, url, json={})
            assert nobody.status_code == 401, (method, path)
            stranger = await anonymous.request(method, url, json={},
                                               headers=world.headers["other subscriber"])
            assert stranger.status_code in (403, 404), (method, path, stranger.text)


def test_every_protected_operation_documents_its_security(served: FastAPI) -> None:
    schema = served.openapi()
    # open: health and readiness probes, Prometheus, logging in, the acquirer (signed)
    open_paths = {"/health", "/ready", "/metrics", "/auth/token", "/auth/revoke",
                  "/acquirer/webhook"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path in open_paths:
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

