"""Logging in (OAuth2 password flow), refresh rotation, logout, lockout, tokens, API keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.auth.tokens import ALGORITHM, AUDIENCE, ISSUER
from meterline.settings import Settings
from meterline.users import Role
from tests.api.checks import assert_problem
from tests.api.conftest import BASE_URL, calling_from, unique_address
from tests.conftest import unique
from tests.factories import Person, customer, person

PASSWORD = "correct horse battery"
MAX_FAILURES = 3
MAX_PER_ADDRESS = 5


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> FastAPI:
    return create_app(make_settings(login_max_failures=MAX_FAILURES, login_lockout=600,
                                    login_max_failures_per_address=MAX_PER_ADDRESS))


async def login(http: httpx.AsyncClient, username: str, password: str,
                **extra: str) -> httpx.Response:
    return await http.post("/auth/token", data={"grant_type": "password", "username": username,
                                                "password": password, **extra})


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/auth/token", data={"grant_type": "refresh_token",
                                                "refresh_token": token})


def bearer_of(answer: httpx.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
async def subscriber(conn: psycopg.AsyncConnection[Any]) -> tuple[Person, str]:
    acc = await customer(conn, "10")
    who = await person(conn, Role.SUBSCRIBER, accounts=[acc.account_id], password=PASSWORD)
    return who, acc.account_id


async def test_password_login_gives_tokens_that_work(
    anonymous: httpx.AsyncClient, subscriber: tuple[Person, str], app: FastAPI,
) -> None:
    who, account = subscriber
    answer = await login(anonymous, who.username.upper(), PASSWORD)  # names ignore case
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == app.state.settings.access_token_ttl
    assert body["scope"] == ("accounts:read payments:create plans:choose preferences:write "
                             "readings:submit")
    me = await anonymous.get("/auth/me", headers=bearer_of(answer))
    assert me.json() == {
        "user_id": who.id, "username": who.username, "role": "subscriber", "via": "token",
        "scopes": ["accounts:read", "payments:create", "plans:choose", "preferences:write",
                   "readings:submit"],
        "accounts": [account],
    }
    own = await anonymous.get(f"/accounts/{account}", headers=bearer_of(answer))
    assert own.status_code == 200


async def test_passwords_are_stored_as_argon2id(
    conn: psycopg.AsyncConnection[Any], subscriber: tuple[Person, str],
) -> None:
    cur = await conn.execute("SELECT password_hash FROM users WHERE id = %s",
                             (subscriber[0].id,))
    row = await cur.fetchone()
    assert row is not None and row[0].startswith("$argon2id$") and PASSWORD not in row[0]


async def test_wrong_password_and_unknown_user_answer_alike(
    anonymous: httpx.AsyncClient, subscriber: tuple[Person, str],
) -> None:
    wrong = assert_problem(await login(anonymous, subscriber[0].username, "not it at all"), 400)
    unknown = assert_problem(await login(anonymous, unique("nobody"), PASSWORD), 400)
    assert wrong == {**unknown, "instance": wrong["instance"]}
    assert wrong["error"] == "invalid_grant"
    assert wrong["type"] == "urn:meterline:problem:invalid-grant"


async def test_repeated_failures_lock_the_name_even_for_the_right_password(
    anonymous: httpx.AsyncClient, subscriber: tuple[Person, str],
) -> None:
    name = subscriber[0].username
    for _ in range(MAX_FAILURES - 1):
        assert (await login(anonymous, name, "wrong password")).status_code == 400
    assert (await login(anonymous, name, PASSWORD)).status_code == 200  # a success forgives
    for _ in range(MAX_FAILURES):
        assert (await login(anonymous, name, "wrong password")).status_code == 400
    locked = await login(anonymous, name, PASSWORD)
    body = assert_problem(locked, 429)
    assert body["type"] == "urn:meterline:problem:login-locked"
    assert 1 <= int(locked.headers["retry-after"]) <= 600


async def test_unknown_names_lock_too(anonymous: httpx.AsyncClient) -> None:
    name = unique("guess")
    for _ in range(MAX_FAILURES):
        assert_problem(await login(anonymous, name, "whatever-password"), 400)
    assert_problem(await login(anonymous, name, "whatever-password"), 429)


async def test_one_address_trying_many_names_is_locked_out_and_others_are_not(
    served: FastAPI, subscriber: tuple[Person, str],
) -> None:
    """Password spraying: every name fails once only, but the address is counted."""
    sprayer, neighbour = unique_address(), unique_address()
    async with (httpx.AsyncClient(transport=calling_from(served, sprayer),
                                  base_url=BASE_URL) as spraying,
                httpx.AsyncClient(transport=calling_from(served, neighbour),
                                  base_url=BASE_URL) as elsewhere):
        for _ in range(MAX_PER_ADDRESS):
            assert_problem(await login(spraying, unique("guess"), "password1"), 400)
        locked = await login(spraying, subscriber[0].username, PASSWORD)
        body = assert_problem(locked, 429)
        assert "from your address" in body["detail"]
        assert 1 <= int(locked.headers["retry-after"]) <= 600
        # the right password from another address still works: the name is not locked
        assert (await login(elsewhere, subscriber[0].username, PASSWORD)).status_code == 200
        # and a success elsewhere does not unlock the spraying address
        assert_problem(await login(spraying, subscriber[0].username, PASSWORD), 429)


async def test_refresh_rotates_and_a_reused_token_revokes_the_login(
    anonymous: httpx.AsyncClient, subscriber: tuple[Person, str],
) -> None:
    first = (await login(anonymous, subscriber[0].username, PASSWORD)).json()["refresh_token"]
    rotated = await refresh(anonymous, first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    assert (await anonymous.get("/auth/me", headers=bearer_of(rotated))).status_code == 200

    stolen = assert_problem(await refresh(anonymous, first), 400)  # replayed
    assert "already used" in stolen["detail"]
    assert "revoked" in assert_problem(await refresh(anonymous, second), 400)["detail"]


async def test_logout_ends_that_login_access_tokens_included(
    anonymous: httpx.AsyncClient, subscriber: tuple[Person, str],
) -> None:
    who, account = subscriber
    phone = await login(anonymous, who.username, PASSWORD)
    laptop = await login(anonymous, who.username, PASSWORD)  # another login of the same user
    rotated = await refresh(anonymous, phone.json()["refresh_token"])
    assert (await anonymous.get(f"/accounts/{account}", headers=bearer_of(phone))).status_code \
        == 200
    token = rotated.json()["refresh_token"]
    assert (await anonymous.post("/auth/revoke", data={"token": token})).status_code == 200
    assert_problem(await refresh(anonymous, token), 400)
    # every access token of that login is refused at once, the first and the refreshed one
    for answer in (phone, rotated):
        for path in (f"/accounts/{account}", f"/accounts/{account}/balances"):
            ended = assert_problem(await anonymous.get(path, headers=bearer_of(answer)), 401)
            assert "log in again" in ended["detail"]
    assert (await anonymous.get(f"/accounts/{account}", headers=bearer_of(laptop))) \
        .status_code == 200
    assert (await anonymous.post("/auth/revoke", data={"token": "unknown"})).status_code == 200


async def test_scopes_can_be_narrowed_not_widened(
    anonymous: httpx.AsyncClient, subscriber: tuple[Person, str],
) -> None:
    who, account = subscriber
    narrow = await login(anonymous, who.username, PASSWORD, scope="accounts:read")
    assert narrow.json()["scope"] == "accounts:read"
    assert (await anonymous.get(f"/accounts/{account}", headers=bearer_of(narrow))).status_code \
        == 200
    wide = assert_problem(await login(anonymous, who.username, PASSWORD, scope="desk"), 400)
    assert wide["error"] == "invalid_scope"


async def test_disabled_users_cannot_log_in(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
    subscriber: tuple[Person, str],
) -> None:
    who = subscriber[0]
    answer = await login(anonymous, who.username, PASSWORD)
    refresh_token = answer.json()["refresh_token"]
    await conn.execute("UPDATE users SET disabled = true WHERE id = %s", (who.id,))
    assert_problem(await login(anonymous, who.username, PASSWORD), 400)
    assert_problem(await refresh(anonymous, refresh_token), 400)
    # and the access token already issued stops working at once
    assert_problem(await anonymous.get("/auth/me", headers=bearer_of(answer)), 401)


def _token(secret: str, **claims: Any) -> dict[str, str]:
    now = datetime.now(UTC)
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "1", "role": "admin",
               "scope": "accounts:read desk admin", "iat": now,
               "exp": now + timedelta(minutes=5), **claims}
    return {"Authorization": f"Bearer {jwt.encode(payload, secret, algorithm=ALGORITHM)}"}


async def test_forged_expired_and_malformed_tokens_are_401(
    anonymous: httpx.AsyncClient, app: FastAPI,
) -> None:
    secret = app.state.settings.jwt_secret.get_secret_value()
    cases = {
        "forged": _token("another secret, at least 32 characters long"),
        "expired": _token(secret, exp=datetime.now(UTC) - timedelta(seconds=1)),
        "other audience": _token(secret, aud="someone-else"),
        "unknown role": _token(secret, role="superuser"),
        "not a JWT": {"Authorization": "Bearer not-a-token"},
        "bad API key": {"X-API-Key": "mlk_000000000000_nope"},
    }
    for case, headers in cases.items():
        response = await anonymous.get("/auth/me", headers=headers)
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer", case
        assert body["type"] == "urn:meterline:problem:unauthorized", case
    expired = await anonymous.get("/auth/me", headers=cases["expired"])
    assert "expired" in expired.json()["detail"]


async def test_a_token_carries_no_more_than_its_role_allows(
    anonymous: httpx.AsyncClient, app: FastAPI, subscriber: tuple[Person, str],
) -> None:
    who, _ = subscriber
    secret = app.state.settings.jwt_secret.get_secret_value()
    headers = _token(secret, sub=str(who.id), role="subscriber", scope="accounts:read admin")
    me = (await anonymous.get("/auth/me", headers=headers)).json()
    assert me["scopes"] == ["accounts:read"]


# --- API keys

async def test_an_industrial_customer_manages_keys_for_its_systems(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any],
) -> None:
    plant = await customer(conn, "1000")
    who = await person(conn, Role.INDUSTRIAL, accounts=[plant.account_id], password=PASSWORD)
    person_headers = bearer_of(await login(anonymous, who.username, PASSWORD))

    made = await anonymous.post("/auth/api-keys", headers=person_headers,
                                json={"name": "SCADA", "scopes": ["accounts:read"]})
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"].startswith(f"mlk_{key['id']}_")
    machine = {"X-API-Key": key["key"]}
    me = (await anonymous.get("/auth/me", headers=machine)).json()
    assert (me["via"], me["scopes"], me["accounts"]) == ("api-key", ["accounts:read"],
                                                        [plant.account_id])
    assert (await anonymous.get(f"/accounts/{plant.account_id}", headers=machine)).status_code \
        == 200

    listed = (await anonymous.get("/auth/api-keys", headers=person_headers)).json()
    assert [(k["id"], k["name"], k["revoked_at"]) for k in listed] == [(key["id"], "SCADA", None)]
    assert "key" not in listed[0]
    cur = await conn.execute("SELECT secret_hash FROM api_keys WHERE id = %s", (key["id"],))
    row = await cur.fetchone()
    assert row is not None and key["key"].split("_")[2].encode() not in bytes(row[0])

    beyond = await anonymous.post("/auth/api-keys", headers=person_headers,
                                  json={"name": "too much", "scopes": ["desk"]})
    assert assert_problem(beyond, 422)["errors"][0]["type"] == "scope_not_allowed"

    revoked = await anonymous.delete(f"/auth/api-keys/{key['id']}", headers=person_headers)
    assert revoked.status_code == 204
    assert_problem(await anonymous.get("/auth/me", headers=machine), 401)
    assert_problem(await anonymous.delete(f"/auth/api-keys/{'0' * 12}",
                                          headers=person_headers), 404)


async def test_a_key_cannot_make_keys(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Callable[..., Any],
) -> None:
    who = await person(conn, Role.INDUSTRIAL)
    made = await anonymous.post("/auth/api-keys", headers=bearer(who),
                                json={"name": "keys", "scopes": ["keys:manage"]})
    machine = {"X-API-Key": made.json()["key"]}
    again = await anonymous.post("/auth/api-keys", headers=machine,
                                 json={"name": "more", "scopes": ["keys:manage"]})
    assert_problem(again, 403)
