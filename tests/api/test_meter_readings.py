"""Readings by web and app, and by phone through the IVR contract."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from api.texts import catalogue, roubles
from meterline.users import Role, Scope, create_api_key
from tests.api.checks import assert_problem
from tests.api.conftest import Bearer
from tests.conftest import unique
from tests.factories import Customer, customer, meter_read_by_people, person


@pytest.fixture
async def household(conn: psycopg.AsyncConnection[Any]) -> tuple[Customer, str]:
    acc = await customer(conn, "123.45")
    return acc, await meter_read_by_people(conn, acc)


async def test_a_subscriber_submits_readings_and_is_told_why_one_is_refused(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
    household: tuple[Customer, str],
) -> None:
    acc, meter = household
    me = bearer(await person(conn, Role.SUBSCRIBER, accounts=[acc.account_id]))

    first = await anonymous.post(f"/meters/{meter}/readings", headers=me,
                                 json={"value": "10.5", "channel": "app"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["value"], body["unit"], body["source"], body["previous_value"]) == \
        ("10.5", "m3", "app", None)
    assert body["message"].startswith("Reading accepted")
    assert body["counts_for"].endswith("-01")

    lower = assert_problem(await anonymous.post(f"/meters/{meter}/readings", headers=me,
                                                json={"value": 3}), 422)
    assert lower["type"] == "urn:meterline:problem:reading-lower"
    assert "lower than the last reading, 10.5 m3" in lower["detail"]

    history = (await anonymous.get(f"/meters/{meter}/readings", headers=me)).json()
    assert [(r["value"], r["source"]) for r in history] == [("10.5", "app")]


async def test_readings_of_smart_meters_and_of_others_meters_are_refused(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
    household: tuple[Customer, str],
) -> None:
    acc, meter = household
    stranger = bearer(await person(conn, Role.SUBSCRIBER))
    assert_problem(await anonymous.post(f"/meters/{meter}/readings", headers=stranger,
                                        json={"value": "1"}), 404)
    owner = bearer(await person(conn, Role.SUBSCRIBER, accounts=[acc.account_id]))
    smart = assert_problem(await anonymous.post(f"/meters/{acc.meter_id}/readings",
                                                headers=owner, json={"value": "1"}), 409)
    assert smart["type"] == "urn:meterline:problem:meter-read-automatically"


async def test_an_operators_reading_is_an_operator_reading(
    client: httpx.AsyncClient, household: tuple[Customer, str],
) -> None:
    _, meter = household
    reply = await client.post(f"/meters/{meter}/readings", json={"value": "7"})
    assert reply.status_code == 201 and reply.json()["source"] == "operator"


@pytest.fixture
async def phone_line(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    admin = await person(conn, Role.ADMIN)
    key = await create_api_key(conn, admin.id, Role.ADMIN, "IVR platform", [Scope.IVR])
    return {"X-API-Key": key.key}


async def test_a_caller_hears_the_balance_and_submits_a_reading_by_phone(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
    household: tuple[Customer, str], phone_line: dict[str, str],
) -> None:
    acc, meter = household
    number = f"+7916{unique('')[-7:].translate(str.maketrans('abcdef', '123456'))}"
    await conn.execute("INSERT INTO phone_numbers (phone, account_id) VALUES (%s, %s)",
                       (number, acc.account_id))

    async def turn(digits: str, lang: str = "en") -> dict[str, Any]:
        reply = await anonymous.post("/ivr/turns", headers=phone_line,
                                     json={"caller": number, "digits": digits, "lang": lang})
        assert reply.status_code == 200, reply.text
        answer: dict[str, Any] = reply.json()
        assert answer["account_id"] == acc.account_id
        return answer

    assert "press 1" in (await turn(""))["say"]
    assert f"Provider {acc.provider_id}: 123 roubles 45 kopecks" in (await turn("1"))["say"]
    assert roubles(Decimal("123.45"), "ru") in (await turn("1", "ru"))["say"]
    assert f"Meter 1: cold water, serial {meter}, last reading none" in (await turn("2"))["say"]

    accepted = await turn("21*42*5#")
    assert accepted["say"].startswith("Reading 42.5 accepted") and accepted["hangup"]
    refused = await turn("21*40#", "ru")
    ru = catalogue("ru")
    assert refused["say"] == ru["ivr"]["refused"].format(reason=ru["refusal"]["reading-lower"])
    assert "There is no meter 7" in (await turn("27*1#"))["say"]
    cur = await conn.execute("SELECT value, source FROM readings WHERE meter_id = %s", (meter,))
    assert await cur.fetchall() == [(Decimal("42.5"), "phone")]


async def test_an_unknown_number_and_a_caller_without_the_scope(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
    phone_line: dict[str, str],
) -> None:
    reply = await anonymous.post("/ivr/turns", headers=phone_line,
                                 json={"caller": "+70000000000", "digits": "1"})
    assert reply.json()["account_id"] is None and reply.json()["hangup"]
    subscriber = bearer(await person(conn, Role.SUBSCRIBER))
    assert_problem(await anonymous.post("/ivr/turns", headers=subscriber,
                                        json={"caller": "+70000000000"}), 403)
