"""Logging in and out, who am I, and API keys.

- ``POST /auth/token``: OAuth2 token endpoint (form-encoded). ``grant_type=password`` with
  ``username`` and ``password``; ``grant_type=refresh_token`` with ``refresh_token``. Answers
  an access token (JWT), its lifetime and a new refresh token. Too many failed logins for a
  user name lock it for a while (429 with Retry-After), known name or not; so do too many
  from one client address, whatever names it tries.
- ``POST /auth/revoke``: log out (RFC 7009): the refresh token's whole family is revoked.
- ``GET /auth/me``: the caller, their scopes and the accounts they see.
- ``/auth/api-keys``: an industrial customer's (or admin's) keys for their own systems.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Form, Path, Request, Response
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.auth.access import granted_accounts
from api.auth.callers import AnyCaller, KeyManager
from api.auth.tokens import (
    access_token,
    invalid_grant,
    issue_refresh_token,
    revoke_refresh_token,
    rotate_refresh_token,
)
from api.ids import PRINTABLE
from api.problems import ProblemError, problem_responses
from api.state import AppSettings, Pool
from meterline.contracts import Timestamp
from meterline.settings import Settings
from meterline.users import (
    ROLE_SCOPES,
    Role,
    Scope,
    User,
    api_keys,
    create_api_key,
    password_matches,
    revoke_api_key,
)

router = APIRouter(prefix="/auth", tags=["auth"])

Username = Annotated[
    str | None, Form(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@+-]+$")
]


class TokenAnswer(BaseModel):
    access_token: str = Field(description="JWT to send as `Authorization: Bearer …`.")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid.", examples=[900])
    refresh_token: str = Field(description="Exchange it at this endpoint for new tokens "
                               "(`grant_type=refresh_token`); each one works once.")
    scope: str = Field(description="Scopes granted, space-separated.",
                       examples=["accounts:read payments:create readings:submit"])


# --- login failures and lockout: by user name, and by client address

_LOCK = """
SELECT count(*), min(failed_at) + make_interval(secs => %(lockout)s) - now()
  FROM (SELECT failed_at FROM login_failures
         WHERE username = %(name)s AND failed_at > now() - make_interval(secs => %(lockout)s)
         ORDER BY failed_at DESC
         LIMIT %(max)s) recent
"""

_ADDRESS_LOCK = """
SELECT count(*), min(failed_at) + make_interval(secs => %(lockout)s) - now()
  FROM (SELECT failed_at FROM login_failures
         WHERE client_address = %(address)s
           AND failed_at > now() - make_interval(secs => %(lockout)s)
         ORDER BY failed_at DESC
         LIMIT %(max)s) recent
"""


async def _locked(conn: psycopg.AsyncConnection[Any], query: str, params: dict[str, Any],
                  limit: int) -> int | None:
    """Seconds still locked when the last ``limit`` failures all fall in the window."""
    cur = await conn.execute(query, {**params, "max": limit})
    row = await cur.fetchone()
    assert row is not None
    failures, left = row
    if failures < limit:
        return None
    return max(1, int(left.total_seconds()) + 1)


async def _locked_for(conn: psycopg.AsyncConnection[Any], settings: Settings, name: str,
                      address: str | None) -> tuple[int, str] | None:
    """(seconds locked, why) when this name, or this client address, may not try now."""
    locked = await _locked(conn, _LOCK, {"name": name, "lockout": settings.login_lockout},
                           settings.login_max_failures)
    if locked is not None:
        return locked, f"Too many failed logins for {name}"
    if address is None:
        return None
    locked = await _locked(conn, _ADDRESS_LOCK,
                           {"address": address, "lockout": settings.login_lockout},
                           settings.login_max_failures_per_address)
    if locked is not None:
        return locked, "Too many failed logins from your address"
    return None


_FORGET_OLD_FAILURES = """
DELETE FROM login_failures
 WHERE (username = %(name)s OR client_address = %(address)s)
   AND failed_at < now() - make_interval(secs => %(lockout)s)
"""

_USER = """
SELECT id, username, role, display_name, locale, password_hash
  FROM users
 WHERE lower(username) = %s AND NOT disabled
"""


def _address(client: str | None) -> str | None:
    """The client's address as PostgreSQL's inet takes it; None when there is none (a test
    client, a Unix socket)."""
    if client is None:
        return None
    try:
        return str(ipaddress.ip_address(client))
    except ValueError:
        return None


async def authenticate(pool: Pool, settings: Settings, username: str, password: str,
                       client: str | None = None) -> User:
    """The user with this name and password; a problem (400 invalid_grant, 429 locked)
    otherwise. ``client`` is the caller's address: failures are counted by it too. The token
    endpoint and the web login both use it."""
    name = username.lower()
    address = _address(client)
    async with pool.connection() as conn:
        locked = await _locked_for(conn, settings, name, address)
        if locked is not None:
            seconds, why = locked
            raise ProblemError(
                429, f"{why}; try again in {seconds} s.",
                slug="login-locked", title="Login locked",
                headers={"Retry-After": str(seconds)},
            )
        cur = await conn.execute(_USER, (name,))
        row = await cur.fetchone()
        # an unknown name costs one argon2 verification too: timing tells nothing
        matches = await asyncio.to_thread(password_matches, row[5] if row else None, password)
        if not matches or row is None:
            await conn.execute(_FORGET_OLD_FAILURES, {"name": name, "address": address,
                                                      "lockout": settings.login_lockout})
            await conn.execute(
                "INSERT INTO login_failures (username, client_address) VALUES (%s, %s)",
                (name, address))
            await conn.commit()
            raise invalid_grant("Unknown user name or wrong password.")
        # a success forgives the name's failures, not the address's: one valid account must
        # not reset the count of an address trying many names
        await conn.execute("DELETE FROM login_failures WHERE username = %s", (name,))
    return User(row[0], row[1], Role(row[2]), row[3], row[4])


def _scopes(user: User, wanted: str) -> frozenset[Scope]:
    allowed = ROLE_SCOPES[user.role]
    if not wanted.strip():
        return allowed
    asked = set(wanted.split())
    unknown = asked - {s.value for s in allowed}
    if unknown:
        raise ProblemError(400, f"Scopes not available to a {user.role}: "
                           f"{', '.join(sorted(unknown))}.", slug="invalid-scope",
                           title="Invalid scope", extra={"error": "invalid_scope"})
    return frozenset(Scope(s) for s in asked)


@router.post(
    "/token",
    response_model=TokenAnswer,
    summary="Log in, or refresh tokens (OAuth2 token endpoint)",
    responses=problem_responses(400, 422, 429),
)
async def token(
    request: Request,
    pool: Pool,
    settings: AppSettings,
    response: Response,
    grant_type: Annotated[Literal["password", "refresh_token"], Form()],
    username: Username = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    refresh_token: Annotated[str | None, Form(max_length=256)] = None,
    scope: Annotated[str, Form(max_length=512, description="Narrow the granted scopes "
                               "(space-separated); default: all of the role's.")] = "",
) -> TokenAnswer:
    """OAuth2 password flow (RFC 6749 §4.3) and refresh (§6).

    - `grant_type=password`: `username`, `password` → tokens. 400 `invalid_grant` for an
      unknown name or a wrong password; after `login_max_failures` failures within
      `login_lockout` seconds the name is locked: 429 with `Retry-After`; likewise after
      `login_max_failures_per_address` failures from the caller's address, any names.
    - `grant_type=refresh_token`: `refresh_token` → new tokens; the one sent is used up.
      A used refresh token sent again revokes every token of that login (400).
    """
    response.headers["Cache-Control"] = "no-store"
    if grant_type == "password":
        if not username or password is None:
            raise invalid_grant("grant_type=password needs username and password.")
        user = await authenticate(pool, settings, username, password,
                                  request.client.host if request.client else None)
        granted = _scopes(user, scope)
        session = uuid.uuid4()
        async with pool.connection() as conn:
            refresh = await issue_refresh_token(conn, settings, user.id, session)
    else:
        if not refresh_token:
            raise invalid_grant("grant_type=refresh_token needs refresh_token.")
        async with pool.connection() as conn:
            rotated = await rotate_refresh_token(conn, settings, refresh_token)
            await conn.commit()  # a revocation on reuse must stay
        if isinstance(rotated, str):
            raise invalid_grant(rotated)
        user, refresh, session = rotated
        granted = _scopes(user, scope)
    return TokenAnswer(
        access_token=access_token(settings, user, granted, session),
        expires_in=settings.access_token_ttl, refresh_token=refresh,
        scope=" ".join(sorted(granted)),
    )


@router.post("/revoke", status_code=200, summary="Log out: revoke a refresh token",
             responses=problem_responses(422))
async def revoke(pool: Pool, token: Annotated[str, Form(min_length=1, max_length=256)]) -> None:
    """Revokes the refresh token and every other token of the same login, access tokens
    included: they are refused from now on. Answers 200 for an unknown token too (RFC 7009
    §2.2)."""
    async with pool.connection() as conn:
        await revoke_refresh_token(conn, token)


class Me(BaseModel):
    user_id: int
    username: str
    role: Role
    scopes: list[Scope]
    via: Literal["token", "api-key"]
    accounts: list[str] | None = Field(
        description="Accounts granted to the caller; null for a caller who sees every account."
    )


@router.get("/me", response_model=Me, summary="Who is calling",
            responses=problem_responses(401))
async def me(caller: AnyCaller, pool: Pool) -> Me:
    async with pool.connection() as conn:
        accounts = await granted_accounts(conn, caller)
    return Me(user_id=caller.user_id, username=caller.username, role=caller.role,
              scopes=sorted(caller.scopes), via=caller.via, accounts=accounts)


# --- API keys

class ApiKeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=PRINTABLE,
                      examples=["meter data export"])
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope),
                                description="Among your own scopes.",
                                examples=[["accounts:read", "usage:export"]])


class ApiKey(BaseModel):
    id: str = Field(examples=["3f9a1c0b7d2e"])
    name: str
    scopes: list[Scope]
    created_at: Timestamp
    revoked_at: Timestamp | None


class NewApiKeyAnswer(ApiKey):
    key: str = Field(description="The key itself, shown only now: send it as `X-API-Key`.")


def _person(caller: AnyCaller) -> None:
    if caller.via != "token":
        raise ProblemError(403, "API keys are managed by a person who logged in, not by a key.",
                           slug="forbidden", title="Forbidden")


@router.post("/api-keys", status_code=201, response_model=NewApiKeyAnswer,
             summary="Create an API key", responses=problem_responses(401, 403, 422))
async def create_key(body: ApiKeyRequest, caller: KeyManager, pool: Pool) -> NewApiKeyAnswer:
    """A key for your own systems, acting as you within `scopes` (which must be among
    yours). The key is in this answer only; keep it safe."""
    _person(caller)
    async with pool.connection() as conn:
        new = await create_api_key(conn, caller.user_id, caller.role, body.name, body.scopes)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT created_at FROM api_keys WHERE id = %s", (new.id,))
        row = await cur.fetchone()
    assert row is not None
    return NewApiKeyAnswer(id=new.id, name=body.name, scopes=list(new.scopes),
                           created_at=row["created_at"], revoked_at=None, key=new.key)


@router.get("/api-keys", response_model=list[ApiKey], summary="Your API keys",
            responses=problem_responses(401, 403))
async def list_keys(caller: KeyManager, pool: Pool) -> list[ApiKey]:
    async with pool.connection() as conn:
        return [ApiKey(id=k.id, name=k.name, scopes=list(k.scopes), created_at=k.created_at,
                       revoked_at=k.revoked_at) for k in await api_keys(conn, caller.user_id)]


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key",
               responses=problem_responses(401, 403, 404, 422))
async def revoke_key(
    key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")], caller: KeyManager, pool: Pool
) -> None:
    """The key stops working at once."""
    _person(caller)
    async with pool.connection() as conn:
        await revoke_api_key(conn, caller.user_id, key_id)
