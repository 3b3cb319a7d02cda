"""GET /tariffs and an account's plans (GET and POST /accounts/{id}/plans)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg

from meterline.users import Role, Scope
from tests.api.checks import assert_problem
from tests.api.conftest import Bearer
from tests.factories import book_customer, example_book, person, provider, stored_book


def next_month_in_moscow() -> str:
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Moscow")).date()
    return (date(today.year + 1, 1, 1) if today.month == 12
            else date(today.year, today.month + 1, 1)).isoformat()


async def test_tariffs_list_plans_with_versions_zones_bands_and_prices(
    client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    ids = await stored_book(conn, example_book("energosbyt", seller))
    response = await client.get("/tariffs", params={"provider_id": seller.id})
    assert response.status_code == 200, response.text
    plans = {p["code"]: p for p in response.json()}
    assert set(plans) == {"household-flat", "household-2zone", "household-3zone",
                          "household-social-norm", "business-tiers"}
    three = plans["household-3zone"]
    assert {k: three[k] for k in ("id", "provider_id", "service", "utility", "basis", "unit",
                                  "default", "derived_from")} == {
        "id": ids["household-3zone"], "provider_id": seller.id, "service": "electricity",
        "utility": "electricity", "basis": "kWh", "unit": "kWh", "default": False,
        "derived_from": []}
    first, second = three["versions"]
    assert (first["valid_from"], first["valid_to"]) == ("2025-07-01", "2026-07-01")
    assert (second["valid_from"], second["valid_to"]) == ("2026-07-01", None)
    assert second["zones"] == [
        {"name": "peak", "windows": ["07:00-10:00", "17:00-21:00"]},
        {"name": "semi_peak", "windows": ["10:00-17:00", "21:00-23:00"]},
        {"name": "night", "windows": ["23:00-07:00"]}]
    assert second["bands"] == [{"band": 0, "from": "0", "to": "3900"},
                               {"band": 1, "from": "3900", "to": "6000"},
                               {"band": 2, "from": "6000", "to": None}]
    assert second["group_coefficients"] == {"urban": "1", "rural": "0.7",
                                            "electric_stove": "0.7"}
    assert (second["standing_charge"], second["negative_limit"]) == ("0", "-300")
    prices = {(p["zone"], p["band"], p["consumer_group"]): p["price"] for p in second["prices"]}
    assert len(prices) == 3 * 3 * 3
    assert prices[("night", 2, "urban")] == "4.65"
    assert prices[("night", 2, "rural")] == "3.255"
    social = plans["household-social-norm"]["versions"][0]
    assert (social["bands"], social["social_norm"]) == ([], ["90", "140", "170"])


async def test_tariffs_filter_by_utility_and_service(
    client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await stored_book(conn, example_book("vodokanal", seller))
    hot = await client.get("/tariffs", params={"provider_id": seller.id, "utility": "hot_water"})
    assert [p["code"] for p in hot.json()] == ["hot-water", "sewerage"]
    sewerage = await client.get("/tariffs",
                                params={"provider_id": seller.id, "service": "sewerage"})
    (plan,) = sewerage.json()
    assert (plan["unit"], plan["derived_from"]) == ("m3", ["cold_water", "hot_water"])
    assert_problem(await client.get("/tariffs", params={"utility": "steam"}), 422)


async def test_an_account_chooses_a_plan_from_its_next_period(
    client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    url = f"/accounts/{made.account_id}/plans"

    before = await client.get(url)
    assert before.status_code == 200, before.text
    assert before.json() == {"account_id": made.account_id, "pending": [], "plans": [{
        "provider_id": made.provider_id, "service": "electricity", "plan": "household-flat",
        "plan_name": "Households, one rate", "consumer_group": "urban", "since": None,
        "chosen": False}]}

    chosen = await client.post(url, json={"plan": "household-3zone",
                                          "consumer_group": "electric_stove"})
    assert chosen.status_code == 200, chosen.text
    body = chosen.json()
    assert (body["plan"]["plan"], body["plan"]["since"], body["plan"]["consumer_group"]) == (
        "household-3zone", next_month_in_moscow(), "electric_stove")
    assert body["previous"]["plan"] == "household-flat"
    after = (await client.get(url)).json()
    assert [p["plan"] for p in after["plans"]] == ["household-flat"]
    assert [(p["plan"], p["since"]) for p in after["pending"]] == [
        ("household-3zone", next_month_in_moscow())]


async def test_a_plan_choice_that_cannot_be_made_is_a_problem(
    client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await book_customer(conn)
    url = f"/accounts/{made.account_id}/plans"
    unknown = assert_problem(await client.post(url, json={"plan": "night-owl"}), 422)
    assert unknown["errors"][0]["loc"] == ["body", "plan"]
    assert unknown["type"] == "urn:meterline:problem:validation-error"
    assert_problem(await client.post(url, json={"plan": "household-3zone", "colour": "red"}),
                   422)
    assert_problem(await client.post("/accounts/NO-SUCH/plans", json={"plan": "x"}), 404)
    assert_problem(await client.get("/accounts/NO-SUCH/plans"), 404)


async def test_a_subscriber_chooses_for_their_own_account_and_tariffs_need_a_login(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    made = await book_customer(conn)
    owner = await person(conn, Role.SUBSCRIBER, accounts=[made.account_id])
    assert_problem(await anonymous.get("/tariffs"), 401)
    listed = await anonymous.get("/tariffs", params={"provider_id": made.provider_id},
                                 headers=bearer(owner))
    # the book's five plans, and the flat rate the account's registration gave its provider
    assert {(p["code"], p["default"]) for p in listed.json()} >= {
        ("household-flat", True), ("flat-electricity", False)}
    assert len(listed.json()) == 6
    chosen = await anonymous.post(f"/accounts/{made.account_id}/plans", headers=bearer(owner),
                                  json={"plan": "household-2zone"})
    assert chosen.status_code == 200, chosen.text
    reader = bearer(owner, frozenset({Scope.ACCOUNTS_READ}))
    refused = await anonymous.post(f"/accounts/{made.account_id}/plans", headers=reader,
                                   json={"plan": "household-2zone"})
    assert_problem(refused, 403)
