from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from tests.api.checks import assert_problem
from tests.conftest import unique
from tests.factories import set_balance


async def test_account_with_balance_and_meters(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="1234.5678", meters=2)
    await conn.execute(
        "UPDATE meters SET relay_state = 'disconnected' WHERE id = %s", (acc.meter_ids[1],)
    )

    response = await client.get(f"/accounts/{acc.account_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == acc.account_id
    assert body["holder_name"] == "Ivan Petrov"
    assert body["billing_mode"] == "prepaid"
    assert body["address"] == "Moscow, Test street 1, apt 1"
    assert body["region"] == "77"
    assert body["balances"] == [
        {
            "provider_id": acc.provider_id,
            "provider_name": "Provider " + acc.provider_id,
            "amount": "1234.5678",
            "amount_kopecks": "1234.57",
            "updated_at": body["balances"][0]["updated_at"],
        }
    ]
    assert body["balances"][0]["updated_at"].endswith("Z")
    meters = {m["id"]: m for m in body["meters"]}
    assert set(meters) == set(acc.meter_ids)
    assert meters[acc.meter_ids[0]] == {
        "id": acc.meter_ids[0],
        "utility": "electricity",
        "model": "SDM120",
        "has_relay": True,
        "relay_state": "connected",
    }
    assert meters[acc.meter_ids[1]]["relay_state"] == "disconnected"


async def test_amounts_are_exact_strings_and_kopecks_round_half_up(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    cases = {
        "-0.005000000001": ("-0.005000000001", "-0.01"),
        "-0.004999999999": ("-0.004999999999", "0.00"),
        "0.005": ("0.005", "0.01"),
        "1000000000000000.000000000001": ("1000000000000000.000000000001", "1000000000000000.00"),
        "100.000000000000": ("100", "100.00"),
        "0": ("0", "0.00"),
    }
    for stored, (exact, rounded) in cases.items():
        await set_balance(conn, acc.account_id, acc.provider_id, stored)
        body = (await client.get(f"/accounts/{acc.account_id}")).json()
        assert body["balances"][0]["amount"] == exact, stored
        assert body["balances"][0]["amount_kopecks"] == rounded, stored


async def test_account_with_several_providers(
    client: httpx.AsyncClient, seed: Callable[..., Any]
) -> None:
    first = await seed(balance="10")
    second = await seed(balance="-3.25", account_id=first.account_id)

    body = (await client.get(f"/accounts/{first.account_id}")).json()

    amounts = {b["provider_id"]: b["amount"] for b in body["balances"]}
    assert amounts == {first.provider_id: "10", second.provider_id: "-3.25"}
    assert {m["id"] for m in body["meters"]} == {*first.meter_ids, *second.meter_ids}


async def test_balances_alone_are_the_account_cards_in_provider_order(
    client: httpx.AsyncClient, seed: Callable[..., Any]
) -> None:
    first = await seed(balance="10")
    second = await seed(balance="-3.25", account_id=first.account_id)

    card = (await client.get(f"/accounts/{first.account_id}")).json()
    response = await client.get(f"/accounts/{first.account_id}/balances")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"account_id": first.account_id,
                    "balances": sorted(card["balances"], key=lambda b: b["provider_id"])}
    assert {b["provider_id"] for b in body["balances"]} == {first.provider_id,
                                                             second.provider_id}
    missing = unique("nobody")
    assert assert_problem(await client.get(f"/accounts/{missing}/balances"), 404)["detail"] \
        == f"No account {missing}"


async def test_unknown_account_is_a_404_problem(client: httpx.AsyncClient) -> None:
    missing = unique("nobody")
    body = assert_problem(await client.get(f"/accounts/{missing}"), 404)
    assert missing in body["detail"]
    assert body["instance"] == f"/accounts/{missing}"


async def test_malformed_account_id_is_a_422_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/accounts/not_allowed!"), 422)
    assert body["errors"][0]["loc"] == ["path", "account_id"]
    assert_problem(await client.get("/accounts/" + "a" * 33), 422)
