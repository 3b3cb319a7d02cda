"""Users, their roles and scopes, passwords and API keys: who may do what.

Four roles. A subscriber and an industrial customer act on the personal accounts granted to
them; an operator and an admin see every account. What a caller may do is a set of scopes:
a person gets the scopes of their role, an API key the scopes it was created with (never
more than its owner's). The API checks scopes; which accounts a caller sees is decided in
one place (`api.auth.access`).

Passwords are hashed with argon2id at OWASP's recommended cost (19 MiB, 2 passes, 1 lane:
about 70 ms here); a hash made with other parameters is still verified.
API keys are `mlk_<id>_<secret>` with a 256-bit random secret stored as SHA-256: a key is not
a password a person chose, so a fast hash is enough, and checking it costs microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from meterline.errors import Invalid, NotFound


class Role(StrEnum):
    SUBSCRIBER = "subscriber"
    INDUSTRIAL = "industrial"  # an industrial customer: interval data, CSV, API keys
    OPERATOR = "operator"  # back-office staff at the operator's desk
    ADMIN = "admin"  # providers, tariffs, users and roles


class Scope(StrEnum):
    """What a caller may do. The OpenAPI document names the scope each endpoint needs."""

    ACCOUNTS_READ = "accounts:read"  # balances, meters, usage, events of visible accounts
    PAYMENTS = "payments:create"  # top up through the payment provider
    READINGS = "readings:submit"  # submit meter readings
    USAGE_EXPORT = "usage:export"  # interval data and CSV export
    KEYS = "keys:manage"  # create and revoke one's own API keys
    DESK = "desk"  # operator's desk: search, account card, adjustments, corrections
    TOPUPS = "topups:write"  # record money received by a payment agent (direct top-up)
    PLANS = "plans:choose"  # choose an account's tariff plan for the next billing period
    PREFERENCES = "preferences:write"  # how an account hears from its providers (consents)
    ADMIN = "admin"  # providers, tariffs, users and roles
    IVR = "ivr"  # the phone line's platform: answers callers by their number


_PERSON = {Scope.ACCOUNTS_READ, Scope.PAYMENTS, Scope.READINGS, Scope.PLANS,
           Scope.PREFERENCES}

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.SUBSCRIBER: frozenset(_PERSON),
    Role.INDUSTRIAL: frozenset(_PERSON | {Scope.USAGE_EXPORT, Scope.KEYS}),
    Role.OPERATOR: frozenset({Scope.ACCOUNTS_READ, Scope.READINGS, Scope.USAGE_EXPORT,
                              Scope.DESK, Scope.PLANS, Scope.PREFERENCES}),
    Role.ADMIN: frozenset(Scope),
}

# roles that see every account; the others see the accounts granted to them
SEES_EVERY_ACCOUNT = frozenset({Role.OPERATOR, Role.ADMIN})

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# verified against when the user name is unknown, so the answer takes as long as for a
# known one and tells nothing about which names exist
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"a password needs at least {MIN_PASSWORD} characters",
                      field=["body", "password"])
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """True when ``password`` is the one hashed; a missing hash wastes the same time."""
    try:
        return _hasher.verify(password_hash or _UNKNOWN_USER_HASH, password) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    display_name: str
    locale: str


_INSERT_USER = """
INSERT INTO users (username, role, password_hash, display_name, locale)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (lower(username)) DO NOTHING
RETURNING id
"""

_GRANT = """
INSERT INTO user_accounts (user_id, account_id)
SELECT %s, unnest(%s::text[])
ON CONFLICT DO NOTHING
"""


async def create_user(
    conn: psycopg.AsyncConnection[Any],
    username: str,
    password: str | None,
    role: Role,
    *,
    display_name: str = "",
    locale: str = "ru",
    accounts: Collection[str] = (),
) -> int | None:
    """A new user with access to ``accounts``; None if the name is taken (nothing changes)."""
    password_hash = hash_password(password) if password is not None else None
    cur = await conn.execute(_INSERT_USER, (username, role, password_hash, display_name, locale))
    row = await cur.fetchone()
    if row is None:
        return None
    user_id: int = row[0]
    await grant_accounts(conn, user_id, accounts)
    return user_id


async def grant_accounts(
    conn: psycopg.AsyncConnection[Any], user_id: int, accounts: Collection[str]
) -> None:
    """Let the user see and act on these personal accounts."""
    if accounts:
        await conn.execute(_GRANT, (user_id, list(accounts)))


async def find_user(conn: psycopg.AsyncConnection[Any], username: str) -> User | None:
    cur = await conn.execute(
        "SELECT id, username, role, display_name, locale FROM users "
        "WHERE lower(username) = lower(%s) AND NOT disabled",
        (username,),
    )
    row = await cur.fetchone()
    return None if row is None else User(row[0], row[1], Role(row[2]), row[3], row[4])


# --- API keys

KEY_PREFIX = "mlk"


@dataclass(frozen=True)
class NewApiKey:
    id: str
    key: str  # shown once; only its hash is stored
    scopes: tuple[Scope, ...]


def _secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def split_key(key: str) -> tuple[str, bytes] | None:
    """(key id, hash of its secret), or None when ``key`` is not shaped like an API key."""
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1], _secret_hash(parts[2])


def same_secret(stored: bytes, presented: bytes) -> bool:
    return hmac.compare_digest(stored, presented)


async def create_api_key(
    conn: psycopg.AsyncConnection[Any], user_id: int, role: Role, name: str,
    scopes: Iterable[Scope],
) -> NewApiKey:
    """A key acting as the user with ``scopes``, which must be among the role's."""
    wanted = tuple(sorted(set(scopes)))
    beyond = [s for s in wanted if s not in ROLE_SCOPES[role]]
    if not wanted:
        raise Invalid("an API key needs at least one scope", field=["body", "scopes"])
    if beyond:
        raise Invalid(f"a {role} cannot give a key {', '.join(beyond)}",
                      field=["body", "scopes"], error_type="scope_not_allowed")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32).replace("_", "-")
    await conn.execute(
        "INSERT INTO api_keys (id, user_id, name, secret_hash, scopes) VALUES (%s, %s, %s, %s, %s)",
        (key_id, user_id, name, _secret_hash(secret), list(wanted)),
    )
    return NewApiKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", wanted)


@dataclass(frozen=True)
class StoredApiKey:
    id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None


_KEYS = """
SELECT id, name, scopes, created_at, revoked_at FROM api_keys
 WHERE user_id = %s ORDER BY created_at, id
"""


async def api_keys(conn: psycopg.AsyncConnection[Any], user_id: int) -> list[StoredApiKey]:
    """The user's keys, revoked ones too (never their secrets)."""
    cur = await conn.execute(_KEYS, (user_id,))
    return [StoredApiKey(i, n, tuple(Scope(s) for s in sc), c, r)
            for i, n, sc, c, r in await cur.fetchall()]


async def revoke_api_key(conn: psycopg.AsyncConnection[Any], user_id: int, key_id: str) -> None:
    """The key stops working at once; another user's key, or none, is not found."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
        "WHERE id = %s AND user_id = %s RETURNING id", (key_id, user_id))
    if await cur.fetchone() is None:
        raise NotFound(f"No API key {key_id}")
