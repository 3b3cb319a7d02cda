from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from tests.api.checks import assert_problem
from tests.conftest import unique


async def test_meter_with_last_reading_and_last_command(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="0")
    meter = acc.meter_ids[0]
    t = datetime(2025, 5, 1, 12, tzinfo=UTC)
    # received out of order: the latest timestamp wins, not the latest arrival
    for ts, value in [
        (t, "100.5"),
        (t + timedelta(minutes=2), "100.750001"),
        (t + timedelta(minutes=1), "100.6"),
    ]:
        await conn.execute(
            "INSERT INTO readings (meter_id, register, ts, value, gateway_id)"
            " VALUES (%s, 'active_import', %s, %s, %s)",
            (meter, ts, value, acc.gateway_id),
        )
    await conn.execute(
        """
        INSERT INTO relay_commands (meter_id, action, reason, status, requested_at, sent_at,
                                    acknowledged_at)
        VALUES (%(m)s, 'disconnect', 'balance exhausted', 'acknowledged', %(t1)s, %(t1)s, %(t1)s),
               (%(m)s, 'connect', 'balance positive', 'sent', %(t2)s, %(t2)s, NULL)
        """,
        {"m": meter, "t1": t, "t2": t + timedelta(hours=1)},
    )

    response = await client.get(f"/meters/{meter}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == meter
    assert body["account_id"] == acc.account_id
    assert body["provider_id"] == acc.provider_id
    assert body["gateway_id"] == acc.gateway_id
    assert body["utility"] == "electricity"
    assert body["model"] == "SDM120"
    assert body["has_relay"] is True
    assert body["relay_state"] == "connected"
    assert body["registers"] == [
        {
            "code": "active_import",
            "unit": "kWh",
            "last_reading": {"ts": "2025-05-01T12:02:00Z", "value": "100.750001"},
        }
    ]
    command = body["last_relay_command"]
    assert command["action"] == "connect"
    assert command["status"] == "sent"
    assert command["reason"] == "balance positive"
    assert command["requested_at"] == "2025-05-01T13:00:00Z"
    assert command["acknowledged_at"] is None


async def test_meter_without_readings_or_commands(
    client: httpx.AsyncClient, seed: Callable[..., Any]
) -> None:
    acc = await seed(balance="0")
    body = (await client.get(f"/meters/{acc.meter_ids[0]}")).json()
    assert body["registers"] == [{"code": "active_import", "unit": "kWh", "last_reading": None}]
    assert body["last_relay_command"] is None


async def test_meter_shows_the_command_a_topup_wrote(
    client: httpx.AsyncClient, seed: Callable[..., Any], conn: psycopg.AsyncConnection[Any]
) -> None:
    acc = await seed(balance="-1")
    meter = acc.meter_ids[0]
    await conn.execute("UPDATE meters SET relay_state = 'disconnected' WHERE id = %s", (meter,))

    topup = await client.post(
        f"/accounts/{acc.account_id}/topups",
        json={"amount": "5"},
        headers={"Idempotency-Key": unique("key")},
    )
    assert topup.status_code == 201, topup.text
    body = (await client.get(f"/meters/{meter}")).json()

    assert body["relay_state"] == "connected"
    assert body["last_relay_command"]["action"] == "connect"
    assert body["last_relay_command"]["status"] == "requested"


async def test_unknown_meter_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/meters/{unique('nosuch')}"), 404)


async def test_malformed_meter_id_is_a_422_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/meters/bad%20id"), 422)
    assert body["errors"][0]["loc"] == ["path", "meter_id"]
