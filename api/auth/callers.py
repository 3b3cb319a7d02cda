"""Who is calling, and may they do this: FastAPI dependencies every protected endpoint uses.

A request authenticates with ``Authorization: Bearer <access token>`` (a person, after the
OAuth2 password flow at ``POST /auth/token``) or ``X-API-Key: mlk_…`` (a machine). Without
either it is answered 401; with a caller lacking the endpoint's scope, 403. Which accounts a
caller sees is `api.auth.access`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, SecurityScopes

from api.auth.tokens import Caller, caller_of_token, still_valid, unauthorized
from api.problems import ProblemError
from api.state import AppSettings, Pool, one_statement
from meterline.users import ROLE_SCOPES, Role, Scope, same_secret, split_key

SCOPE_DESCRIPTIONS = {
    Scope.ACCOUNTS_READ: "Read the accounts you may see: balances, meters, usage, events.",
    Scope.PAYMENTS: "Top up through the payment provider.",
    Scope.READINGS: "Submit meter readings.",
    Scope.USAGE_EXPORT: "Interval data and CSV export.",
    Scope.KEYS: "Create and revoke your own API keys.",
    Scope.DESK: "The operator's desk: search, account card, adjustments, corrections.",
    Scope.TOPUPS: "Record money a payment agent received (direct top-up).",
    Scope.PLANS: "Choose an account's tariff plan for the next billing period.",
    Scope.PREFERENCES: "Choose how an account hears from its providers (consents).",
    Scope.ADMIN: "Providers, tariffs, users and roles.",
    Scope.IVR: "The phone line's platform: balances and readings by the caller's number.",
}

bearer = OAuth2PasswordBearer(
    tokenUrl="/auth/token", scopes={s.value: d for s, d in SCOPE_DESCRIPTIONS.items()},
    auto_error=False, description="People: OAuth2 password flow, short-lived JWT.",
)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False,
    description="Machines: an API key `mlk_<id>_<secret>` acting as its owner within its "
    "scopes.",
)

_KEY = """
SELECT k.secret_hash, k.scopes, u.id, u.username, u.role
  FROM api_keys k
  JOIN users u ON u.id = k.user_id
 WHERE k.id = %s AND k.revoked_at IS NULL AND NOT u.disabled
"""


async def _caller_of_key(pool: Pool, key: str) -> Caller:
    parts = split_key(key)
    if parts is None:
        raise unauthorized("The API key is not valid.")
    key_id, presented = parts
    async with one_statement(pool) as conn:
        cur = await conn.execute(_KEY, (key_id,))
        row = await cur.fetchone()
    if row is None or not same_secret(row[0], presented):
        raise unauthorized("The API key is not valid.")
    role = Role(row[4])
    scopes = frozenset(Scope(s) for s in row[1]) & ROLE_SCOPES[role]
    return Caller(row[2], row[3], role, scopes, "api-key")


async def identify(
    security: SecurityScopes,
    settings: AppSettings,
    pool: Pool,
    token: Annotated[str | None, Depends(bearer)],
    key: Annotated[str | None, Depends(api_key_header)],
) -> Caller:
    """The caller the request names, holding every scope the endpoint declares — its
    access token not yet checked against logouts: `current_caller` does that, or
    `api.auth.access` in the same query that scopes the account (one round trip)."""
    if token and key:
        raise unauthorized("Send a bearer token or an API key, not both.")
    if token:
        caller = caller_of_token(settings, token)
    elif key:
        caller = await _caller_of_key(pool, key)
    else:
        raise unauthorized("Log in (POST /auth/token) or send an API key (X-API-Key).")
    missing = [s for s in security.scopes if s not in caller.scopes]
    if missing:
        raise ProblemError(403, f"This needs the scope {', '.join(missing)}.", slug="forbidden",
                           title="Forbidden")
    return caller


ENDED = "The login this token belongs to has ended; log in again."


async def current_caller(
    caller: Annotated[Caller, Security(identify)], pool: Pool,
) -> Caller:
    """The authenticated caller, holding every scope the endpoint declares, whose login was
    not logged out or revoked (nor the user disabled) since the token was issued."""
    if caller.via == "token":
        async with one_statement(pool) as conn:
            if not await still_valid(conn, caller):
                raise unauthorized(ENDED)
    return caller


def document_refusals(openapi: dict[str, Any]) -> dict[str, Any]:
    """In the OpenAPI document, every operation that needs a caller answers 401 and 403."""
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("security"):
                responses = operation.setdefault("responses", {})
                responses.setdefault("401", {"description": "Not authenticated",
                                             "content": problem})
                responses.setdefault("403", {"description": "Without the scope this needs",
                                             "content": problem})
    return openapi


AnyCaller = Annotated[Caller, Security(current_caller)]
Desk = Annotated[Caller, Security(current_caller, scopes=[Scope.DESK])]
Admin = Annotated[Caller, Security(current_caller, scopes=[Scope.ADMIN])]
KeyManager = Annotated[Caller, Security(current_caller, scopes=[Scope.KEYS])]
