"""Bill runs as the API and the back office both know them: which accounts a run bills (a
``Selection``), asking for one (``queue``: the scheduler service makes queued runs), and the
period a run bills. The bill run itself is billing.billrun."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import psycopg

from meterline.errors import Invalid, NotFound


@dataclass(frozen=True)
class Selection:
    """Which accounts (and providers) a run bills; nothing set: every housing account."""

    region: str | None = None
    city: str | None = None
    house: int | None = None
    provider: str | None = None
    accounts: tuple[str, ...] = field(default=())
    group: str | None = None  # a saved group of accounts (account_groups)

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in asdict(self).items() if v not in (None, ())}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        return cls(**{**data, "accounts": tuple(data.get("accounts", ()))})


def check_period(period: date) -> date:
    if period.day != 1:
        raise Invalid(f"a billing period is the first day of its month, not {period}",
                      field=["period"])
    return period


def parse_period(text: str) -> date:
    """``YYYY-MM`` as the first day of that month."""
    try:
        year, month = (int(part) for part in text.split("-"))
        return date(year, month, 1)
    except ValueError as exc:
        raise Invalid(f"a period is YYYY-MM, not {text!r}", field=["period"]) from exc


async def check_group(conn: psycopg.AsyncConnection[Any], selection: Selection) -> Selection:
    """The selection, or ``NotFound`` when it names a group never saved."""
    if selection.group is not None:
        cur = await conn.execute("SELECT 1 FROM account_groups WHERE name = %s",
                                 (selection.group,))
        if await cur.fetchone() is None:
            raise NotFound(f"no saved group {selection.group!r}")
    return selection


async def queue(conn: psycopg.AsyncConnection[Any], period: date, selection: Selection,
                started_by: str) -> int:
    """Ask for a run that the scheduler service will make; its id."""
    await check_group(conn, selection)
    cur = await conn.execute("""
        INSERT INTO bill_runs (period, selection, started_by, status)
        VALUES (%s, %s, %s, 'queued') RETURNING id""",
        (check_period(period), json.dumps(selection.as_json()), started_by))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])
