"""GET /accounts/{account_id}: a personal account, its balance with each provider, its meters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Security
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.amounts import Exact, Kopecks
from api.auth.access import ReadableAccount, read_visible
from api.auth.callers import identify
from api.auth.tokens import Caller
from api.ids import AccountPath
from api.problems import not_found, problem_responses
from api.state import Pool, read_snapshot
from meterline.contracts import Timestamp
from meterline.users import Scope

router = APIRouter(prefix="/accounts", tags=["accounts"])


class Balance(BaseModel):
    provider_id: str
    provider_name: str
    amount: Exact = Field(description="Balance with the provider; positive means credit.")
    amount_kopecks: Kopecks = Field(description="The same balance rounded to kopecks, half-up.")
    updated_at: Timestamp


class AccountMeter(BaseModel):
    id: str
    utility: str
    model: str
    has_relay: bool
    relay_state: Literal["connected", "disconnected"]


class Account(BaseModel):
    id: str
    holder_name: str
    billing_mode: Literal["prepaid", "postpaid"]
    address: str
    region: str
    time_zone: str
    opened_at: Timestamp
    balances: list[Balance]
    meters: list[AccountMeter]


_ACCOUNT = """
SELECT a.id, a.holder_name, a.billing_mode, a.opened_at,
       ad.full_text AS address, ad.region, ad.time_zone
  FROM accounts a
  JOIN addresses ad ON ad.id = a.address_id
 WHERE a.id = %s
"""

# an account's balances, as `read_visible` takes a read: of the account %(id)s
_BALANCES_OF = """
SELECT b.provider_id, p.name AS provider_name, b.amount, b.amount AS amount_kopecks,
       b.updated_at
  FROM balances b
  JOIN providers p ON p.id = b.provider_id
 WHERE b.account_id = %(id)s
"""

_BALANCES = _BALANCES_OF + " ORDER BY b.provider_id"

_METERS = """
SELECT id, utility, model, has_relay, relay_state
  FROM meters
 WHERE account_id = %s
 ORDER BY id
"""


async def load_account(conn: psycopg.AsyncConnection[Any], account_id: str) -> Account | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_ACCOUNT, (account_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    await cur.execute(_BALANCES, {"id": account_id})
    balances = [Balance.model_validate(r) for r in await cur.fetchall()]
    await cur.execute(_METERS, (account_id,))
    meters = [AccountMeter.model_validate(r) for r in await cur.fetchall()]
    return Account.model_validate({**row, "balances": balances, "meters": meters})


@router.get(
    "/{account_id}",
    response_model=Account,
    responses=problem_responses(401, 403, 404, 422),
    summary="An account with its balances and meters",
)
async def get_account(account_id: ReadableAccount, pool: Pool) -> Account:
    """The account, its balance with each provider it buys from (exact, and rounded to
    kopecks), and its meters with the relay state meterline last commanded."""
    async with pool.connection() as conn, conn.transaction():
        await read_snapshot(conn)
        account = await load_account(conn, account_id)
    if account is None:
        raise not_found(f"No account {account_id}")
    return account


class Balances(BaseModel):
    account_id: str
    balances: list[Balance]


@router.get(
    "/{account_id}/balances",
    response_model=Balances,
    responses=problem_responses(401, 403, 404, 422),
    summary="An account's balance with each provider",
)
async def get_balances(
    account_id: AccountPath,
    caller: Annotated[Caller, Security(identify, scopes=[Scope.ACCOUNTS_READ])],
    pool: Pool,
) -> Balances:
    """Just the balances (exact, and rounded to kopecks): the cheap read an app polls. The
    account is checked as every account endpoint checks it, in the statement that reads the
    balances (one round trip)."""
    rows = await read_visible(pool, caller, account_id, _BALANCES_OF, "r.provider_id")
    return Balances(account_id=account_id, balances=[Balance.model_validate(r) for r in rows])

