"""What the API tests check against: the books in the database, and problem answers; and
the cast of callers the access matrices try every route with."""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from meterline.users import Role
from tests.factories import Customer, Person, customer, person


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


async def cast_of_callers(conn: psycopg.AsyncConnection[Any]) -> tuple[Customer, dict[str, Person]]:
    """A subscriber's account (the owner's) and one person of every kind, by name: the owner,
    a subscriber of another account, an industrial customer of a third, an operator, an admin."""
    owner, other, plant = [await customer(conn, "100") for _ in range(3)]
    return owner, {
        "owner": await person(conn, Role.SUBSCRIBER, accounts=[owner.account_id]),
        "other subscriber": await person(conn, Role.SUBSCRIBER, accounts=[other.account_id]),
        "industrial": await person(conn, Role.INDUSTRIAL, accounts=[plant.account_id]),
        "operator": await person(conn, Role.OPERATOR),
        "admin": await person(conn, Role.ADMIN),
    }


def on_owner(path: str, owner: Customer, **values: str) -> str:
    """``path`` with the owner's account and meter; any other id in it is well-formed and
    unknown, unless ``values`` names it."""
    return path.format_map(defaultdict(lambda: str(uuid.uuid4()), account_id=owner.account_id,
                                       meter_id=owner.meter_id, **values))
