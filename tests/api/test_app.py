"""The app as a whole: health, docs, and problem answers for what no endpoint handles."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api import health
from api.app import create_app
from meterline.errors import Conflict, DomainError, Invalid, NotFound
from meterline.kafka import free_port
from meterline.settings import Settings
from tests.api.checks import assert_problem
from tests.api.conftest import BASE_URL


async def test_health_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_openapi_docs(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = (await client.get("/openapi.json")).json()
    assert {
        "/health",
        "/accounts/{account_id}",
        "/accounts/{account_id}/usage",
        "/accounts/{account_id}/topups",
        "/meters/{meter_id}",
    } <= set(schema["paths"])
    topup = schema["paths"]["/accounts/{account_id}/topups"]["post"]
    assert "application/problem+json" in topup["responses"]["409"]["content"]
    assert topup["requestBody"]["content"]["application/json"]["schema"]["required"] == ["amount"]


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no/such/thing"), 404)
    assert body["type"] == "about:blank"
    assert body["title"] == "Not Found"
    assert body["instance"] == "/no/such/thing"


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/accounts/A-1")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"


async def test_unexpected_error_is_a_500_problem_without_traceback(app: FastAPI) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/explode", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http,
    ):
        response = await http.get("/explode")
    body = assert_problem(response, 500)
    assert "secret internals" not in response.text
    assert body["type"] == "urn:meterline:problem:internal-error"


async def test_health_is_a_503_problem_when_the_database_does_not_answer(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "DATABASE_TIMEOUT", 0.3)
    app = create_app(make_settings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http,
    ):
        response = await http.get("/health")
    body = assert_problem(response, 503)
    assert body["type"] == "urn:meterline:problem:database-unavailable"


@pytest.mark.parametrize(
    ("error", "status", "problem"),
    [
        (NotFound("No account A-9"), 404, "not-found"),
        (Conflict("Period 2026-10 is closed", code="period-closed"), 409, "period-closed"),
        (Invalid("amount too large", field=["body", "amount"]), 422, "validation-error"),
    ],
)
async def test_domain_errors_become_problems(
    app: FastAPI, error: DomainError, status: int, problem: str
) -> None:
    async def refuse() -> None:
        raise error

    app.add_api_route("/refuse", refuse)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http,
    ):
        body = assert_problem(await http.get("/refuse"), status)
    assert body["type"] == f"urn:meterline:problem:{problem}"
    assert body["detail"] == error.detail
    if isinstance(error, Invalid):
        assert body["errors"] == [{"loc": ["body", "amount"], "type": "value_error",
                                   "msg": "amount too large"}]


async def test_openapi_states_the_limits_the_api_enforces(client: httpx.AsyncClient) -> None:
    """The two limits a schema-driven fuzzer found unstated: top-up amounts in whole kopecks
    up to the maximum top-up, and how many buckets a usage answer may hold."""
    schema = (await client.get("/openapi.json")).json()
    topup = schema["paths"]["/accounts/{account_id}/topups"]["post"]
    amount = topup["requestBody"]["content"]["application/json"]["schema"]["properties"]["amount"]
    text, number = amount["anyOf"]
    assert number == {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000.0,
                      "multipleOf": 0.01}
    pattern = re.compile(text["pattern"])
    assert [v for v in ("0.01", "7", "100.5", "999999.99") if not pattern.match(v)] == []
    assert [v for v in ("0", "0.00", "1.005", "-1", "01", "1e3") if pattern.match(v)] == []
    usage = schema["paths"]["/accounts/{account_id}/usage"]["get"]["parameters"]
    (bucket,) = [p for p in usage if p["name"] == "bucket"]
    assert bucket["schema"]["x-max-buckets"] == {"15m": 3000, "1h": 9000, "1d": 3700,
                                                 "1mo": 240}
    assert "answered 400" in bucket["description"]


async def test_every_amount_the_schema_admits_is_accepted(
    client: httpx.AsyncClient, seed: Callable[..., Any],
) -> None:
    acc = await seed(balance="0")
    for amount in ("0.01", "999999.99", 0.07, 1000000):
        response = await client.post(f"/accounts/{acc.account_id}/topups",
                                     json={"amount": amount},
                                     headers={"Idempotency-Key": f"limit-{amount}"})
        assert response.status_code == 201, (amount, response.text)
