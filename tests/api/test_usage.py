from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from tests.api.checks import assert_problem
from tests.conftest import unique
from tests.factories import charge

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
async def metered(seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]) -> Any:
    """An account with two meters and charges around the window [T0, T0 + 2 days]."""
    acc = await seed(balance="0", meters=2)
    a, b = acc.meter_ids
    await charge(conn, a, T0 - hours(0.5), T0, "9", "49.5")  # ends on `from`: left out
    await charge(conn, a, T0, T0 + hours(0.5), "1.25", "6.875000000001")
    await charge(conn, a, T0 + hours(0.5), T0 + hours(1), "0.75", "4.125")  # ends on 01:00
    await charge(conn, a, T0 + hours(1), T0 + hours(1.25), "0.5", "2.75")
    await charge(conn, a, T0 + hours(34), T0 + hours(34.1), "0.000001", "0.000005500000")
    await charge(conn, a, T0 + hours(47.5), T0 + hours(48), "2", "11")  # ends on `to`: counted
    await charge(conn, a, T0 + hours(48), T0 + hours(48.5), "7", "38.5")  # after `to`
    await charge(conn, b, T0 + hours(3), T0 + hours(3.5), "10.123456", "55.679008")
    other = await seed(balance="0")  # someone else's consumption never shows
    await charge(conn, other.meter_ids[0], T0, T0 + hours(1), "100", "550")
    return acc


async def test_hourly_buckets_sum_quantities_and_exact_amounts(
    client: httpx.AsyncClient, metered: Any
) -> None:
    a, b = metered.meter_ids
    response = await client.get(
        f"/accounts/{metered.account_id}/usage",
        params={"from": "2025-03-01T00:00:00Z", "to": "2025-03-03T00:00:00Z"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"] == "2025-03-01T00:00:00Z"
    assert body["to"] == "2025-03-03T00:00:00Z"
    assert body["granularity"] == "hour"
    assert body["time_zone"] == "UTC"
    series = {m["meter_id"]: m for m in body["meters"]}
    assert set(series) == {a, b}
    assert series[a]["buckets"] == [
        {
            "start": "2025-03-01T00:00:00Z",
            "quantity": "2",
            "unit": "kWh",
            "amount": "11.000000000001",
        },
        {"start": "2025-03-01T01:00:00Z", "quantity": "0.5", "unit": "kWh", "amount": "2.75"},
        {
            "start": "2025-03-02T10:00:00Z",
            "quantity": "0.000001",
            "unit": "kWh",
            "amount": "0.0000055",
        },
        {"start": "2025-03-02T23:00:00Z", "quantity": "2", "unit": "kWh", "amount": "11"},
    ]
    assert series[a]["register"] == "active_import"
    assert series[a]["utility"] == "electricity"
    assert series[a]["total_quantity"] == "4.500001"
    assert series[a]["total_amount"] == "24.750005500001"
    assert series[a]["total_amount_kopecks"] == "24.75"
    assert series[b]["buckets"] == [
        {
            "start": "2025-03-01T03:00:00Z",
            "quantity": "10.123456",
            "unit": "kWh",
            "amount": "55.679008",
        },
    ]
    assert body["total_amount"] == "80.429013500001"
    assert body["total_amount_kopecks"] == "80.43"


async def test_daily_buckets(client: httpx.AsyncClient, metered: Any) -> None:
    a, b = metered.meter_ids
    response = await client.get(
        f"/accounts/{metered.account_id}/usage",
        params={
            "from": "2025-03-01T03:00:00+03:00",  # = T0, given with an offset
            "to": "2025-03-03T00:00:00Z",
            "granularity": "day",
        },
    )

    assert response.status_code == 200, response.text
    series = {m["meter_id"]: m for m in response.json()["meters"]}
    assert [(x["start"], x["quantity"], x["amount"]) for x in series[a]["buckets"]] == [
        ("2025-03-01T00:00:00Z", "2.5", "13.750000000001"),
        ("2025-03-02T00:00:00Z", "2.000001", "11.0000055"),
    ]
    assert [(x["start"], x["amount"]) for x in series[b]["buckets"]] == [
        ("2025-03-01T00:00:00Z", "55.679008"),
    ]


async def test_default_window_is_the_last_24_hours(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    meter = acc.meter_ids[0]
    now = datetime.now(UTC)
    await charge(conn, meter, now - hours(2), now - hours(1), "1.5", "8.25")
    await charge(conn, meter, now - hours(26), now - hours(25), "4", "22")

    body = (await client.get(f"/accounts/{acc.account_id}/usage")).json()

    window = datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"])
    assert window == timedelta(hours=24)
    [series] = body["meters"]
    assert series["total_quantity"] == "1.5"
    assert series["total_amount"] == "8.25"


async def test_meters_without_charges_show_empty_series(
    client: httpx.AsyncClient, seed: Callable[..., Any]
) -> None:
    acc = await seed(balance="0")
    body = (await client.get(f"/accounts/{acc.account_id}/usage")).json()
    assert body["meters"] == [
        {
            "meter_id": acc.meter_ids[0],
            "utility": "electricity",
            "register": "active_import",
            "unit": "kWh",
            "buckets": [],
            "total_quantity": "0",
            "total_amount": "0",
            "total_amount_kopecks": "0.00",
        }
    ]
    assert body["total_amount"] == "0"


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, ["query", "from"]),
        ({"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, ["query", "from"]),
        ({"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:01Z"}, ["query", "to"]),
        ({"from": "2025-03-01T00:00:00"}, ["query", "from"]),  # no time zone
        ({"to": "yesterday"}, ["query", "to"]),
        ({"granularity": "week"}, ["query", "granularity"]),
    ],
)
async def test_bad_windows_are_422_problems(
    client: httpx.AsyncClient, seed: Callable[..., Any], params: dict[str, str], loc: list[str]
) -> None:
    acc = await seed(balance="0")
    response = await client.get(f"/accounts/{acc.account_id}/usage", params=params)
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == loc


async def test_a_window_of_366_days_is_allowed(
    client: httpx.AsyncClient, seed: Callable[..., Any]
) -> None:
    acc = await seed(balance="0")
    response = await client.get(
        f"/accounts/{acc.account_id}/usage",
        params={"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z", "granularity": "day"},
    )
    assert response.status_code == 200, response.text


async def test_unknown_account_is_a_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/accounts/{unique('nobody')}/usage"), 404)


async def test_amounts_match_the_ledger(
    client: httpx.AsyncClient, metered: Any, conn: psycopg.AsyncConnection[Any]
) -> None:
    body = (
        await client.get(
            f"/accounts/{metered.account_id}/usage",
            params={"from": "2025-02-01T00:00:00Z", "to": "2025-04-01T00:00:00Z"},
        )
    ).json()
    cur = await conn.execute(
        "SELECT -sum(amount) FROM ledger WHERE account_id = %s AND kind = 'usage'",
        (metered.account_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    assert Decimal(body["total_amount"]) == row[0]
