"""Access tokens (JWT, HS256, short-lived) and refresh tokens (opaque, stored, rotated).

An access token says who calls and what they may do: `sub` (user id), `name`, `role`,
`scope`, and `sid`, the login it belongs to (its refresh tokens' family). Its signature is
checked, then (`still_valid`, one indexed query) that its login was not logged out or
revoked and its user not disabled: logging out ends the access tokens of that login at once,
not when they expire (`access_token_ttl`, 15 minutes by default). A refresh token lives in
the database: each use
exchanges it for a new one of the same family; a used token presented again means it was
stolen or replayed, and every token of its family is revoked. Logging out revokes the family.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
import psycopg

from api.problems import ProblemError
from meterline.settings import Settings
from meterline.users import ROLE_SCOPES, SEES_EVERY_ACCOUNT, Role, Scope, User

ISSUER = "meterline"
AUDIENCE = "meterline-api"
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Caller:
    """Who is calling: a person with an access token, or a machine with an API key."""

    user_id: int
    username: str
    role: Role
    scopes: frozenset[Scope]
    via: Literal["token", "api-key"]
    session: uuid.UUID | None = None  # an access token's login (refresh-token family)

    @property
    def sees_every_account(self) -> bool:
        return self.role in SEES_EVERY_ACCOUNT


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail, slug="unauthorized", title="Not authenticated",
                        headers={"WWW-Authenticate": "Bearer"})


def invalid_grant(detail: str) -> ProblemError:
    """The OAuth2 token endpoint's refusal (RFC 6749 §5.2), as a problem with ``error``."""
    return ProblemError(400, detail, slug="invalid-grant", title="Invalid grant",
                        extra={"error": "invalid_grant"})


def access_token(settings: Settings, user: User, scopes: frozenset[Scope],
                 session: uuid.UUID | None = None) -> str:
    """A signed access token; ``session`` is the login (refresh-token family) it belongs to,
    so that logging out ends it."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": str(user.id), "name": user.username,
        "role": user.role.value, "scope": " ".join(sorted(scopes)),
        "iat": now, "exp": now + timedelta(seconds=settings.access_token_ttl),
    }
    if session is not None:
        claims["sid"] = str(session)
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def caller_of_token(settings: Settings, token: str) -> Caller:
    """The caller an access token names; 401 when it is forged, expired or malformed."""
    try:
        claims = jwt.decode(
            token, settings.jwt_secret.get_secret_value(), algorithms=[ALGORITHM],
            audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["exp", "sub", "role", "scope"]},
        )
        role = Role(claims["role"])
        scopes = frozenset(Scope(s) for s in str(claims["scope"]).split())
        session = uuid.UUID(str(claims["sid"])) if "sid" in claims else None
        return Caller(int(claims["sub"]), str(claims.get("name", "")), role,
                      scopes & ROLE_SCOPES[role], "token", session)
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("The access token has expired; refresh it.") from exc
    except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
        raise unauthorized("The access token is not valid.") from exc


_STILL_VALID = """
SELECT NOT u.disabled
       AND (%(session)s::uuid IS NULL
            OR NOT EXISTS (SELECT 1 FROM refresh_tokens r
                            WHERE r.family = %(session)s AND r.revoked_at IS NOT NULL))
  FROM users u
 WHERE u.id = %(user)s
"""


async def still_valid(conn: psycopg.AsyncConnection[Any], caller: Caller) -> bool:
    """False when the caller's login was logged out or revoked, or the user disabled or
    removed, since the access token was issued."""
    cur = await conn.execute(_STILL_VALID, {"session": caller.session, "user": caller.user_id})
    row = await cur.fetchone()
    return bool(row and row[0])


# --- refresh tokens

def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_ISSUE = """
INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at)
VALUES (%s, %s, %s, now() + make_interval(secs => %s))
"""

_TAKE = """
SELECT r.family, r.used_at, r.revoked_at, r.expires_at <= now() AS expired,
       u.id, u.username, u.role, u.display_name, u.locale, u.disabled
  FROM refresh_tokens r
  JOIN users u ON u.id = r.user_id
 WHERE r.token_hash = %s
   FOR UPDATE OF r
"""

_REVOKE_FAMILY = """
UPDATE refresh_tokens SET revoked_at = now() WHERE family = %s AND revoked_at IS NULL
"""


async def issue_refresh_token(
    conn: psycopg.AsyncConnection[Any], settings: Settings, user_id: int,
    family: uuid.UUID,
) -> str:
    """A refresh token of the login ``family`` (a new login: a new ``uuid4``)."""
    token = secrets.token_urlsafe(32)
    await conn.execute(_ISSUE, (_hash(token), family, user_id, settings.refresh_token_ttl))
    return token


async def rotate_refresh_token(
    conn: psycopg.AsyncConnection[Any], settings: Settings, token: str
) -> tuple[User, str, uuid.UUID] | str:
    """(the user, a new refresh token, its login) for a valid token, which is used up;
    otherwise why it is refused. A token used before revokes its family (the caller must
    commit that)."""
    cur = await conn.execute(_TAKE, (_hash(token),))
    row = await cur.fetchone()
    if row is None:
        return "Unknown refresh token."
    family, used_at, revoked_at, expired, user_id, username, role, name, locale, disabled = row
    if revoked_at is not None:
        return "The refresh token was revoked; log in again."
    if used_at is not None:
        await conn.execute(_REVOKE_FAMILY, (family,))
        return "The refresh token was already used; every session of that login is revoked."
    if expired:
        return "The refresh token has expired; log in again."
    if disabled:
        return "The user is disabled."
    await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = %s",
                       (_hash(token),))
    fresh = await issue_refresh_token(conn, settings, user_id, family)
    return User(user_id, username, Role(role), name, locale), fresh, family


async def revoke_refresh_token(conn: psycopg.AsyncConnection[Any], token: str) -> None:
    """Log out: revoke every token of the family this one belongs to (unknown: nothing)."""
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND family = "
        "(SELECT family FROM refresh_tokens WHERE token_hash = %s)",
        (_hash(token),),
    )
