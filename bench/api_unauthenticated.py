"""The API plus one route for `bench.api`'s baseline only: ``GET /open/accounts/{id}/balances``
calls the endpoint function of ``GET /accounts/{id}/balances`` — the same statement, the
account scoped to the benchmark's subscriber — without reading a token or checking a
scope. (Overriding the dependency instead would make FastAPI rebuild it on every request,
which is slower than the authentication it replaces.) Never served anywhere else."""

from __future__ import annotations

import os

from api.accounts import Balances, get_balances
from api.app import create_app
from api.auth.tokens import Caller
from api.ids import AccountPath
from api.state import Pool
from meterline.settings import get_settings
from meterline.users import ROLE_SCOPES, Role

app = create_app(get_settings())
_CALLER = Caller(int(os.environ["BENCH_USER_ID"]), "bench", Role.SUBSCRIBER,
                 ROLE_SCOPES[Role.SUBSCRIBER], "token")


@app.get("/open/accounts/{account_id}/balances", response_model=Balances)
async def open_balances(account_id: AccountPath, pool: Pool) -> Balances:
    return await get_balances(account_id, _CALLER, pool)
