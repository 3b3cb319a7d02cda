"""The same API with authentication taken out, for `bench.api`'s baseline only: every request
is the benchmark's subscriber (no token decoded, no scope checked); the account scoping query
still runs. Never served anywhere else."""

from __future__ import annotations

import os

from api.app import create_app
from api.auth.callers import current_caller
from api.auth.tokens import Caller
from meterline.settings import get_settings
from meterline.users import ROLE_SCOPES, Role

app = create_app(get_settings())
_CALLER = Caller(int(os.environ["BENCH_USER_ID"]), "bench", Role.SUBSCRIBER,
                 ROLE_SCOPES[Role.SUBSCRIBER], "token")


async def _fixed_caller() -> Caller:
    return _CALLER


app.dependency_overrides[current_caller] = _fixed_caller
