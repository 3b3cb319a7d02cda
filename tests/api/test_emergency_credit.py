"""POST /accounts/{id}/emergency-credit: the subscriber's own account, once while owed, with
clear refusals as problem+json."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import psycopg

from meterline.users import Role
from tests.api.checks import assert_problem, balance_of
from tests.api.conftest import Bearer
from tests.conftest import unique
from tests.factories import customer, person


def url(account_id: str) -> str:
    return f"/accounts/{account_id}/emergency-credit"


async def test_a_subscriber_takes_emergency_credit_once(
        client: httpx.AsyncClient, anonymous: httpx.AsyncClient, bearer: Bearer,
        conn: psycopg.AsyncConnection[Any]) -> None:
    own = await customer(conn, "-5", contract_type="prepay_cutoff")
    other = await customer(conn, "-5", contract_type="prepay_cutoff")
    who = bearer(await person(conn, Role.SUBSCRIBER, accounts=[own.account_id]))

    taken = await anonymous.post(url(own.account_id), headers=who)
    assert taken.status_code == 201, taken.text
    body = taken.json()
    assert (body["amount"], body["balance"], body["owed"]) == ("200.00", "195", "200.00")
    assert await balance_of(conn, own.account_id, own.provider_id) == Decimal(195)

    again = assert_problem(await anonymous.post(url(own.account_id), headers=who), 409)
    assert again["type"] == "urn:meterline:problem:emergency-credit-taken"
    assert "still owed" in again["detail"]
    assert await balance_of(conn, own.account_id, own.provider_id) == Decimal(195)

    # another's account is not the caller's to see
    assert_problem(await anonymous.post(url(other.account_id), headers=who), 404)
    assert_problem(await anonymous.post(url(own.account_id)), 401)

    # a top-up by a payment agent repays a quarter of itself
    paid = await client.post(f"/accounts/{own.account_id}/topups", json={"amount": "40"},
                             headers={"Idempotency-Key": unique("key")})
    assert paid.status_code == 201, paid.text
    assert paid.json()["balance"] == "225"


async def test_emergency_credit_refusals_are_clear(
        client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any]) -> None:
    rich = await customer(conn, "50", contract_type="prepay_cutoff")
    refused = assert_problem(await client.post(url(rich.account_id)), 422)
    assert refused["type"] == "urn:meterline:problem:emergency-credit-refused"
    assert "has run out" in refused["detail"]
    unknown = assert_problem(await client.post(url(rich.account_id),
                                               json={"provider_id": "nobody"}), 422)
    assert unknown["errors"][0]["loc"] == ["body", "provider_id"]
    assert_problem(await client.post(url(unique("A"))), 404)
