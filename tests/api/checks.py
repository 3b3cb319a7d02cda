"""What the API tests check against: the books in the database, and problem answers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import psycopg


async def balance_of(conn: psycopg.AsyncConnection[Any], account: str, provider: str) -> Decimal:
    cur = await conn.execute(
        "SELECT amount FROM balances WHERE account_id = %s AND provider_id = %s",
        (account, provider),
    )
    row = await cur.fetchone()
    assert row is not None
    amount: Decimal = row[0]
    return amount


async def ledger_sum(conn: psycopg.AsyncConnection[Any], account: str, provider: str) -> Decimal:
    cur = await conn.execute(
        "SELECT coalesce(sum(amount), 0) FROM ledger WHERE account_id = %s AND provider_id = %s",
        (account, provider),
    )
    row = await cur.fetchone()
    assert row is not None
    total: Decimal = row[0]
    return total


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    assert "traceback" not in response.text.lower()
    return body
