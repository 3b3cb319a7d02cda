"""Which accounts a caller sees: the one place where every account read is scoped to the caller.

Subscribers and industrial customers see the accounts granted to them (`user_accounts`);
operators and admins see every account. Every endpoint under ``/accounts/{account_id}`` takes
its account through `account_with` (`ReadableAccount`, ...), every endpoint naming a meter
through `meter_with`: the caller is authenticated (401), holds the scope (403), then sees the
account (404). A read that apps poll (the balances) makes the same checks with
`read_visible`, in the statement that reads: one round trip to the database. An account the
caller may not see is answered exactly like one that does not exist — ``404 No account X``
— so the answer tells nothing about it, not even that it exists.
"""

# no `from __future__ import annotations`: the dependencies below annotate with a local scope

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Security

from api.auth.callers import ENDED, identify
from api.auth.tokens import Caller, unauthorized
from api.ids import AccountPath, MeterPath
from api.state import Pool, one_statement
from meterline.errors import NotFound
from meterline.users import Scope

_GRANTED = """
EXISTS (SELECT 1 FROM user_accounts g
         WHERE g.user_id = %(user)s AND g.account_id = {account})
"""

_ACCOUNT = """
SELECT 1 FROM accounts a
 WHERE a.id = %(id)s AND (%(every)s OR """ + _GRANTED.format(account="a.id") + ")"

# the caller's login still valid (as `api.auth.tokens.still_valid`), and the account or meter
# visible to it: one round trip per request
_VALID = """
SELECT NOT u.disabled
       AND (%(session)s::uuid IS NULL
            OR NOT EXISTS (SELECT 1 FROM refresh_tokens r
                            WHERE r.family = %(session)s AND r.revoked_at IS NOT NULL))
  FROM users u WHERE u.id = %(user)s
"""

_ACCOUNT_FOR = """
SELECT (""" + _VALID + """) AS valid, EXISTS (""" + _ACCOUNT + ") AS visible"

_METER_FOR = """
SELECT (""" + _VALID + """), EXISTS (
SELECT 1 FROM meters m
 WHERE m.id = %(id)s AND (%(every)s OR """ + _GRANTED.format(account="m.account_id") + "))"

_GRANTED_ACCOUNTS = """
SELECT account_id FROM user_accounts WHERE user_id = %s ORDER BY account_id
"""


def _params(caller: Caller, id_: str) -> dict[str, Any]:
    return {"id": id_, "every": caller.sees_every_account, "user": caller.user_id,
            "session": caller.session}


async def _valid_and_visible(pool: Any, query: str, caller: Caller, id_: str) -> bool:
    """Whether the caller sees the account or meter; 401 when its login has ended."""
    async with one_statement(pool) as conn:
        cur = await conn.execute(query, _params(caller, id_))
        row = await cur.fetchone()
    valid, visible = row if row else (False, False)
    if not valid:
        raise unauthorized(ENDED)
    return bool(visible)


def _reading(read: str, order_by: str) -> str:
    return f"""
SELECT access.valid, access.visible, r.*
  FROM ({_ACCOUNT_FOR}) access
  LEFT JOIN LATERAL ({read}) r ON access.valid AND access.visible
 ORDER BY {order_by}
"""


async def read_visible(pool: Any, caller: Caller, account_id: str, read: str,
                       order_by: str) -> list[dict[str, Any]]:
    """The rows of ``read``, a query of the account ``%(id)s`` whose first column is never
    NULL, once the caller's login is found valid (else 401) and the account visible to it
    (else 404, as `account_with`), in one statement: ``read`` yields nothing to a caller
    who may not see the account."""
    async with one_statement(pool) as conn:
        cur = await conn.execute(_reading(read, order_by), _params(caller, account_id))
        rows = await cur.fetchall()
        names = [column.name for column in cur.description or ()][2:]
    if not rows or not rows[0][0]:
        raise unauthorized(ENDED)
    if not rows[0][1]:
        raise NotFound(f"No account {account_id}")
    return [dict(zip(names, row[2:], strict=True)) for row in rows if row[2] is not None]


async def sees_account(conn: psycopg.AsyncConnection[Any], caller: Caller, account_id: str) -> bool:
    cur = await conn.execute(_ACCOUNT, _params(caller, account_id))
    return await cur.fetchone() is not None


async def granted_accounts(conn: psycopg.AsyncConnection[Any], caller: Caller) -> list[str] | None:
    """The accounts granted to the caller; None for a caller who sees every account."""
    if caller.sees_every_account:
        return None
    cur = await conn.execute(_GRANTED_ACCOUNTS, (caller.user_id,))
    return [account for (account,) in await cur.fetchall()]


def account_with(scope: Scope) -> Callable[..., Awaitable[str]]:
    """A dependency: the path's account id, once the caller holds ``scope`` and sees it."""

    async def account(
        account_id: AccountPath,
        caller: Annotated[Caller, Security(identify, scopes=[scope])],
        pool: Pool,
    ) -> str:
        if not await _valid_and_visible(pool, _ACCOUNT_FOR, caller, account_id):
            raise NotFound(f"No account {account_id}")
        return account_id

    return account


def meter_with(scope: Scope) -> Callable[..., Awaitable[str]]:
    """A dependency: the path's meter id, once the caller holds ``scope`` and sees its account."""

    async def meter(
        meter_id: MeterPath,
        caller: Annotated[Caller, Security(identify, scopes=[scope])],
        pool: Pool,
    ) -> str:
        if not await _valid_and_visible(pool, _METER_FOR, caller, meter_id):
            raise NotFound(f"No meter {meter_id}")
        return meter_id

    return meter


ReadableAccount = Annotated[str, Depends(account_with(Scope.ACCOUNTS_READ))]
TopupAccount = Annotated[str, Depends(account_with(Scope.TOPUPS))]
ReadableMeter = Annotated[str, Depends(meter_with(Scope.ACCOUNTS_READ))]
