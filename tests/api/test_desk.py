"""The operator's desk API: search, manual adjustments and reading corrections, each with a
reason in the audit log."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from meterline.users import Role
from tests.api.checks import assert_problem, balance_of
from tests.api.conftest import Bearer
from tests.factories import customer, meter_read_by_people, person


async def test_search_needs_every_part_given_to_match(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    acc = await customer(conn, "0")
    desk = bearer(await person(conn, Role.OPERATOR))
    found = await anonymous.get("/desk/accounts", headers=desk,
                                params={"street": "test STREET", "account": acc.account_id})
    assert [a["id"] for a in found.json()] == [acc.account_id]
    assert found.json()[0]["meters"] == [acc.meter_id]
    none = await anonymous.get("/desk/accounts", headers=desk,
                               params={"street": "Nowhere lane", "account": acc.account_id})
    assert none.json() == []
    assert (await anonymous.get("/desk/accounts", headers=desk)).json() == []
    subscriber = bearer(await person(conn, Role.SUBSCRIBER, accounts=[acc.account_id]))
    assert_problem(await anonymous.get("/desk/accounts", headers=subscriber,
                                       params={"account": acc.account_id}), 403)


async def test_an_adjustment_is_a_ledger_entry_with_its_reason_booked_once(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    acc = await customer(conn, "10")
    operator = await person(conn, Role.OPERATOR)
    body = {"id": str(uuid.uuid4()), "provider_id": acc.provider_id, "service": "electricity",
            "amount": "-3.25", "reason": "double counted October"}
    url = f"/accounts/{acc.account_id}/adjustments"
    made = await anonymous.post(url, headers=bearer(operator), json=body)
    assert made.status_code == 201, made.text
    assert (made.json()["balance_before"], made.json()["balance_after"]) == ("10", "6.75")
    again = await anonymous.post(url, headers=bearer(operator), json=body)
    assert again.json()["audit_id"] is None
    assert await balance_of(conn, acc.account_id, acc.provider_id) == Decimal("6.75")
    cur = await conn.execute("SELECT username, reason, before, after FROM audit_log"
                             " WHERE account_id = %s", (acc.account_id,))
    [(who, why, before, after)] = await cur.fetchall()
    assert (who, why, before["balance"]) == (operator.username, "double counted October",
                                             "10.000000000000")
    assert after["amount"] == "-3.25"
    cur = await conn.execute("SELECT kind, amount FROM ledger WHERE account_id = %s"
                             " AND kind = 'adjustment'", (acc.account_id,))
    assert await cur.fetchall() == [("adjustment", Decimal("-3.25"))]

    no_reason = await anonymous.post(url, headers=bearer(operator),
                                     json={**body, "id": str(uuid.uuid4()), "reason": " "})
    assert_problem(no_reason, 422)
    subscriber = bearer(await person(conn, Role.SUBSCRIBER, accounts=[acc.account_id]))
    assert_problem(await anonymous.post(url, headers=subscriber, json=body), 403)


async def test_a_reading_correction_keeps_before_and_after(
    client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
) -> None:
    acc = await customer(conn, "0")
    meter = await meter_read_by_people(conn, acc)
    first = (await client.post(f"/meters/{meter}/readings", json={"value": "100"})).json()
    fixed = await client.put(f"/meters/{meter}/readings/volume/{first['submitted_at']}",
                             json={"value": "10", "reason": "one zero too many"})
    assert fixed.status_code == 200, fixed.text
    assert (fixed.json()["before"], fixed.json()["after"]) == ("100", "10")
    gateway = await client.put(
        f"/meters/{acc.meter_id}/readings/active_import/{first['submitted_at']}",
        json={"value": "1", "reason": "x"})
    assert_problem(gateway, 404)


async def test_two_operators_cannot_overwrite_each_others_correction(
    client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
) -> None:
    meter = await meter_read_by_people(conn, await customer(conn, "0"))
    await client.post(f"/meters/{meter}/readings", json={"value": "100"})
    (seen,) = (await client.get(f"/meters/{meter}/readings")).json()
    url = f"/meters/{meter}/readings/volume/{seen['ts']}"
    first = await client.put(url, json={"value": "10", "reason": "a zero too many"},
                             headers={"If-Match": seen["etag"]})
    assert first.status_code == 200, first.text
    late = await client.put(url, json={"value": "1", "reason": "two zeros too many"},
                            headers={"If-Match": seen["etag"]})
    body = assert_problem(late, 412)
    assert "now 10 (operator)" in body["detail"]
    (now,) = (await client.get(f"/meters/{meter}/readings")).json()
    assert (now["value"], now["etag"] != seen["etag"]) == ("10", True)

