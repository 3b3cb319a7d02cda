"""The audit log: what staff changed by hand — who, what, when, before, after, and why.

Written in the same transaction as the change it describes (`record`), append-only (the
database refuses updates and deletes). A change without a reason is refused.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from meterline.errors import Invalid

MAX_REASON = 1000


def required_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise Invalid("a reason is required", field=["body", "reason"], code="reason-required")
    if len(text) > MAX_REASON:
        raise Invalid(f"a reason has at most {MAX_REASON} characters", field=["body", "reason"])
    return text


async def record(
    conn: psycopg.AsyncConnection[Any], *, user_id: int | None, username: str, action: str,
    subject: str, reason: str, account_id: str | None = None,
    before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO audit_log (user_id, username, action, account_id, subject, reason, before,"
        " after) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (user_id, username, action, account_id, subject, required_reason(reason),
         None if before is None else json.dumps(before, default=str),
         None if after is None else json.dumps(after, default=str)))
    row = await cur.fetchone()
    assert row is not None
    entry: int = row[0]
    return entry
