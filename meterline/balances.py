"""An account's balances with its providers: which one a movement of money names."""

from __future__ import annotations

from typing import Any

import psycopg

from meterline.errors import Invalid, NotFound

# the account, and the providers it has a balance with (no row: no such account)
_PROVIDERS = """
SELECT array(SELECT b.provider_id FROM balances b WHERE b.account_id = a.id
              ORDER BY b.provider_id)
  FROM accounts a
 WHERE a.id = %s
"""


async def resolve_provider(conn: psycopg.AsyncConnection[Any], account_id: str,
                           wanted: str | None) -> str:
    """The provider whose balance a movement of money names: the one the caller named, or the
    account's only one. ``NotFound`` when there is no such account."""
    cur = await conn.execute(_PROVIDERS, (account_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No account {account_id}")
    providers: list[str] = row[0]
    field = ["body", "provider_id"]
    if wanted is not None:
        if wanted not in providers:
            raise Invalid(f"account {account_id} has no balance with provider {wanted}"
                          f" (it has: {', '.join(providers) or 'none'})",
                          field=field, error_type="unknown_provider")
        return wanted
    if len(providers) == 1:
        return providers[0]
    if not providers:
        raise Invalid(f"account {account_id} has no provider balance to credit",
                      field=field, error_type="unknown_provider")
    raise Invalid(f"provider_id is required: account {account_id} buys from "
                  f"{', '.join(providers)}", field=field, error_type="missing")
