"""The API plus one route for `bench.api`'s baseline only: ``GET /open/accounts/{id}/balances``
does what ``GET /accounts/{id}/balances`` does — the account scoping query for the
benchmark's subscriber, then the same endpoint function — without reading a token or
checking a scope. (Overriding the dependency instead would make FastAPI rebuild it on every
request, which is slower than the authentication it replaces.) Never served anywhere else."""

from __future__ import annotations

import os

from api.accounts import Balances, get_balances
from api.app import create_app
from api.auth.access import sees_account
from api.auth.tokens import Caller
from api.ids import AccountPath
from api.state import Pool
from meterline.errors import NotFound
from meterline.settings import get_settings
from meterline.users import ROLE_SCOPES, Role

app = create_app(get_settings())
_CALLER = Caller(int(os.environ["BENCH_USER_ID"]), "bench", Role.SUBSCRIBER,
                 ROLE_SCOPES[Role.SUBSCRIBER], "token")


@app.get("/open/accounts/{account_id}/balances", response_model=Balances)
async def open_balances(account_id: AccountPath, pool: Pool) -> Balances:
    async with pool.connection() as conn:
        if not await sees_account(conn, _CALLER, account_id):
            raise NotFound(f"No account {account_id}")
    return await get_balances(account_id, pool)
