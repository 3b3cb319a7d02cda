"""Notification preferences and the cabinet's notices over the API: the same kernel the
notifier reads (meterline.notices), with versions (ETag / If-Match) and proof of opening."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from billing.reminders.delivery import make_notice
from meterline.notices import reach
from meterline.users import Role, Scope, create_api_key
from tests.api.checks import assert_problem
from tests.api.conftest import Bearer
from tests.conftest import unique
from tests.factories import customer, person

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


async def test_a_subscriber_chooses_channels_per_kind_and_the_notifier_reads_them(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    c = await customer(conn)
    me = bearer(await person(conn, Role.SUBSCRIBER, accounts=[c.account_id]))
    url = f"/accounts/{c.account_id}/notice-preferences"
    first = await anonymous.get(url, headers=me)
    assert first.status_code == 200
    assert first.json() == {"email": None, "phone": None, "channels": ["cabinet"],
                            "by_kind": {}}
    wanted = {"email": "ivan@example.org", "phone": "+79161234567",
              "channels": ["email", "cabinet"], "by_kind": {"low_balance": ["sms", "email"]}}
    saved = await anonymous.put(url, json=wanted,
                                headers={**me, "If-Match": first.headers["etag"]})
    assert saved.status_code == 200, saved.text
    assert saved.json() == wanted
    assert saved.headers["etag"] != first.headers["etag"]
    got = await reach(conn, [(c.account_id, "low_balance"), (c.account_id, "debt_notice")])
    assert got[c.account_id, "low_balance"].channels == ("sms", "email")
    assert got[c.account_id, "debt_notice"].channels == ("email", "cabinet")

    # a change made against the version read before is refused; nothing changes
    stale = await anonymous.put(url, json={"channels": ["cabinet"]},
                                headers={**me, "If-Match": first.headers["etag"]})
    assert assert_problem(stale, 412)["type"] == "urn:meterline:problem:preferences-changed"
    assert (await anonymous.get(url, headers=me)).json() == wanted


async def test_channels_without_an_address_are_refused_with_the_reason(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    c = await customer(conn)
    me = bearer(await person(conn, Role.SUBSCRIBER, accounts=[c.account_id]))
    url = f"/accounts/{c.account_id}/notice-preferences"
    refused = await anonymous.put(url, json={"channels": ["sms", "cabinet"]}, headers=me)
    assert "phone number" in assert_problem(refused, 422)["detail"]
    twice = await anonymous.put(url, json={"channels": ["cabinet", "cabinet"]}, headers=me)
    assert_problem(twice, 422)
    assert (await anonymous.get(url, headers=me)).json()["channels"] == ["cabinet"]


async def test_only_the_accounts_subscriber_opening_a_notice_delivers_it(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    c = await customer(conn)
    owner = await person(conn, Role.SUBSCRIBER, accounts=[c.account_id])
    await make_notice(conn, key=unique("notice"), kind="debt_notice", account_id=c.account_id,
                      provider_id=c.provider_id, service="electricity",
                      context={"debt": "100"}, at=NOW)
    cur = await conn.execute("SELECT id FROM notices WHERE account_id = %s", (c.account_id,))
    row = await cur.fetchone()
    assert row is not None
    notice_id = row[0]
    # the notifier shows it in the cabinet (what its cabinet channel records)
    await conn.execute(
        "INSERT INTO notice_attempts (notice_id, channel, token, status, sent_at) "
        "VALUES (%s, 'cabinet', %s, 'sent', %s)", (notice_id, unique("t"), NOW))
    listed = await anonymous.get(f"/accounts/{c.account_id}/notices", headers=bearer(owner))
    assert [(n["id"], n["opened_at"]) for n in listed.json()] == [(str(notice_id), None)]

    opened = f"/accounts/{c.account_id}/notices/{notice_id}/opened"
    operator = bearer(await person(conn, Role.OPERATOR))
    assert_problem(await anonymous.post(opened, headers=operator), 403)
    key = await create_api_key(conn, owner.id, Role.SUBSCRIBER, "app", [Scope.ACCOUNTS_READ])
    assert_problem(await anonymous.post(opened, headers={"X-API-Key": key.key}), 403)
    cur = await conn.execute("SELECT status FROM notices WHERE id = %s", (notice_id,))
    assert await cur.fetchone() == ("pending",)

    done = await anonymous.post(opened, headers=bearer(owner))
    assert done.json() == {"notice_id": str(notice_id), "delivered_now": True}
    cur = await conn.execute("SELECT status, delivered_by FROM notices WHERE id = %s",
                             (notice_id,))
    assert await cur.fetchone() == ("delivered", "cabinet")
    again = await anonymous.post(opened, headers=bearer(owner))
    assert again.json()["delivered_now"] is False
    listed = await anonymous.get(f"/accounts/{c.account_id}/notices", headers=bearer(owner))
    assert listed.json()[0]["opened_at"] is not None
