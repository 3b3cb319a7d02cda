from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from tests.api.checks import assert_problem, balance_of, ledger_sum
from tests.conftest import unique


def topup_url(account_id: str) -> str:
    return f"/accounts/{account_id}/topups"


async def test_topup_credits_the_balance_and_the_ledger(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="10.000000000001", billing_mode="postpaid")
    key = unique("key")
    ledger_before = await ledger_sum(conn, acc.account_id, acc.provider_id)

    response = await client.post(
        topup_url(acc.account_id), json={"amount": "100.5"}, headers={"Idempotency-Key": key}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["account_id"] == acc.account_id
    assert body["provider_id"] == acc.provider_id
    assert body["amount"] == "100.50"
    assert body["idempotency_key"] == key
    assert body["balance"] == "110.500000000001"
    assert body["balance_kopecks"] == "110.50"
    assert body["received_at"].endswith("Z")
    assert "Idempotent-Replayed" not in response.headers
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("110.500000000001")
    assert await ledger_sum(conn, acc.account_id, acc.provider_id) - ledger_before == Decimal(
        "100.5"
    )
    cur = await conn.execute(
        "SELECT id::text, amount FROM topups WHERE idempotency_key = %s", (key,)
    )
    assert await cur.fetchall() == [(body["id"], Decimal("100.5"))]


async def test_json_number_amount_is_taken_exactly(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    response = await client.post(
        topup_url(acc.account_id),
        content=b'{"amount": 999999.99}',
        headers={"Idempotency-Key": unique("key"), "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("999999.99")


async def test_same_key_twice_credits_once(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    headers = {"Idempotency-Key": unique("key")}

    first = await client.post(topup_url(acc.account_id), json={"amount": "50"}, headers=headers)
    # the same top-up, spelt differently: same amount, provider named explicitly
    again = await client.post(
        topup_url(acc.account_id),
        json={"amount": 50.00, "provider_id": acc.provider_id},
        headers=headers,
    )

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["received_at"] == first.json()["received_at"]
    assert again.json()["balance"] == "50"
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("50")
    assert await ledger_sum(conn, acc.account_id, acc.provider_id) == Decimal("50")


async def test_same_key_sent_concurrently_credits_once(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="1")
    headers = {"Idempotency-Key": unique("key")}

    responses = await asyncio.gather(
        *(
            client.post(topup_url(acc.account_id), json={"amount": "25.25"}, headers=headers)
            for _ in range(8)
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("26.25")
    assert await ledger_sum(conn, acc.account_id, acc.provider_id) == Decimal("26.25")


async def test_different_keys_sent_concurrently_all_credit(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")

    responses = await asyncio.gather(
        *(
            client.post(
                topup_url(acc.account_id),
                json={"amount": "0.01"},
                headers={"Idempotency-Key": unique("key")},
            )
            for _ in range(10)
        )
    )

    assert [r.status_code for r in responses] == [201] * 10
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("0.10")
    assert await ledger_sum(conn, acc.account_id, acc.provider_id) == Decimal("0.10")


async def test_reused_key_with_another_amount_or_provider_is_a_409(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    other = await seed(balance="0", account_id=acc.account_id)
    headers = {"Idempotency-Key": unique("key")}
    first = await client.post(
        topup_url(acc.account_id),
        json={"amount": "10", "provider_id": acc.provider_id},
        headers=headers,
    )
    assert first.status_code == 201, first.text

    other_amount = await client.post(
        topup_url(acc.account_id),
        json={"amount": "10.01", "provider_id": acc.provider_id},
        headers=headers,
    )
    other_provider = await client.post(
        topup_url(acc.account_id),
        json={"amount": "10", "provider_id": other.provider_id},
        headers=headers,
    )

    for response in (other_amount, other_provider):
        body = assert_problem(response, 409)
        assert body["type"] == "urn:meterline:problem:idempotency-key-reused"
        assert headers["Idempotency-Key"] in body["detail"]
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("10")
    assert await balance_of(conn, acc.account_id, other.provider_id) == Decimal("0")
    assert await ledger_sum(conn, acc.account_id, other.provider_id) == Decimal("0")


async def test_keys_are_scoped_to_the_account(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    one, two = await seed(balance="0"), await seed(balance="0")
    headers = {"Idempotency-Key": "order-1"}
    for acc in (one, two):
        response = await client.post(
            topup_url(acc.account_id), json={"amount": "7"}, headers=headers
        )
        assert response.status_code == 201, response.text
        assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("7")


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        ({"amount": "0"}, "greater_than"),
        ({"amount": "-5"}, "greater_than"),
        ({"amount": 0}, "greater_than"),
        ({"amount": "abc"}, "decimal_parsing"),
        ({"amount": "1,50"}, "decimal_parsing"),
        ({"amount": "NaN"}, "finite_number"),
        ({"amount": True}, "decimal_type"),
        ({"amount": None}, "decimal_type"),
        ({"amount": "10.001"}, "decimal_max_places"),
        ({"amount": "0.001"}, "decimal_max_places"),
        ({"amount": "1000000.01"}, "less_than_equal"),
        ({"amount": "1e9"}, "less_than_equal"),
        ({}, "missing"),
        ({"amount": "10", "note": "x"}, "extra_forbidden"),
        ({"amount": "10", "provider_id": "no spaces allowed"}, "string_pattern_mismatch"),
    ],
)
async def test_bad_amounts_are_422_problems_and_change_nothing(
    client: httpx.AsyncClient,
    seed: Callable[..., Any],
    conn: psycopg.AsyncConnection[Any],
    payload: dict[str, Any],
    error_type: str,
) -> None:
    acc = await seed(balance="3")

    response = await client.post(
        topup_url(acc.account_id), json=payload, headers={"Idempotency-Key": unique("key")}
    )

    body = assert_problem(response, 422)
    assert body["type"] == "urn:meterline:problem:validation-error"
    assert [e["type"] for e in body["errors"]] == [error_type], body
    assert body["errors"][0]["loc"][0] == "body"
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("3")
    assert await ledger_sum(conn, acc.account_id, acc.provider_id) == Decimal("3")


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b'{"amount": 100.005}', b'{"amount": NaN}', b'["100"]', b'"100"'],
)
async def test_unparseable_or_inexact_bodies_are_422_problems(
    client: httpx.AsyncClient,
    seed: Callable[..., Any],
    conn: psycopg.AsyncConnection[Any],
    raw: bytes,
) -> None:
    acc = await seed(balance="0")
    response = await client.post(
        topup_url(acc.account_id),
        content=raw,
        headers={"Idempotency-Key": unique("key"), "Content-Type": "application/json"},
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"][0] == "body"
    assert await ledger_sum(conn, acc.account_id, acc.provider_id) == Decimal("0")


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": ""}, {"Idempotency-Key": "k" * 256}])
async def test_missing_or_bad_idempotency_key_is_a_422(
    client: httpx.AsyncClient,
    seed: Callable[..., Any],
    conn: psycopg.AsyncConnection[Any],
    headers: dict[str, str],
) -> None:
    acc = await seed(balance="0")
    response = await client.post(topup_url(acc.account_id), json={"amount": "5"}, headers=headers)
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("0")


async def test_longest_idempotency_key_is_accepted(
    client: httpx.AsyncClient, seed: Callable[..., Any]
) -> None:
    acc = await seed(balance="0")
    response = await client.post(
        topup_url(acc.account_id), json={"amount": "5"}, headers={"Idempotency-Key": "k" * 255}
    )
    assert response.status_code == 201, response.text


async def test_largest_topup_is_accepted(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    response = await client.post(
        topup_url(acc.account_id),
        json={"amount": "1000000.00"},
        headers={"Idempotency-Key": unique("key")},
    )
    assert response.status_code == 201, response.text
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("1000000")


async def test_unknown_account_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        topup_url(unique("nobody")), json={"amount": "5"}, headers={"Idempotency-Key": "k"}
    )
    assert assert_problem(response, 404)["type"] == "urn:meterline:problem:not-found"


async def test_provider_must_be_named_when_the_account_has_several(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    first = await seed(balance="0")
    second = await seed(balance="0", account_id=first.account_id)

    unnamed = await client.post(
        topup_url(first.account_id), json={"amount": "5"}, headers={"Idempotency-Key": "a"}
    )
    named = await client.post(
        topup_url(first.account_id),
        json={"amount": "5", "provider_id": second.provider_id},
        headers={"Idempotency-Key": "b"},
    )

    body = assert_problem(unnamed, 422)
    assert body["errors"][0]["loc"] == ["body", "provider_id"]
    assert named.status_code == 201, named.text
    assert await balance_of(conn, first.account_id, first.provider_id) == Decimal("0")
    assert await balance_of(conn, first.account_id, second.provider_id) == Decimal("5")


async def test_provider_the_account_does_not_buy_from_is_a_422(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    stranger = await seed(balance="0")  # a provider that exists, but not on this account

    response = await client.post(
        topup_url(acc.account_id),
        json={"amount": "5", "provider_id": stranger.provider_id},
        headers={"Idempotency-Key": unique("key")},
    )

    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["body", "provider_id"]
    assert await ledger_sum(conn, acc.account_id, acc.provider_id) == Decimal("0")


async def test_topup_reconnects_a_disconnected_prepaid_meter(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="-20")
    meter = acc.meter_ids[0]
    await conn.execute("UPDATE meters SET relay_state = 'disconnected' WHERE id = %s", (meter,))

    # still not positive: no command
    short = await client.post(
        topup_url(acc.account_id), json={"amount": "20"}, headers={"Idempotency-Key": "k1"}
    )
    assert short.json()["balance"] == "0"
    cur = await conn.execute("SELECT count(*) FROM relay_commands WHERE meter_id = %s", (meter,))
    assert await cur.fetchone() == (0,)

    enough = await client.post(
        topup_url(acc.account_id), json={"amount": "0.01"}, headers={"Idempotency-Key": "k2"}
    )
    assert enough.status_code == 201, enough.text
    assert enough.json()["balance"] == "0.01"
    cur = await conn.execute(
        "SELECT action, status FROM relay_commands WHERE meter_id = %s", (meter,)
    )
    assert await cur.fetchall() == [("connect", "requested")]
    cur = await conn.execute("SELECT relay_state FROM meters WHERE id = %s", (meter,))
    assert await cur.fetchone() == ("connected",)

    # replaying the key moves no money and writes no second command
    again = await client.post(
        topup_url(acc.account_id), json={"amount": "0.01"}, headers={"Idempotency-Key": "k2"}
    )
    assert again.status_code == 200
    cur = await conn.execute("SELECT count(*) FROM relay_commands WHERE meter_id = %s", (meter,))
    assert await cur.fetchone() == (1,)
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("0.01")
    assert await ledger_sum(conn, acc.account_id, acc.provider_id) == Decimal("0.01")
