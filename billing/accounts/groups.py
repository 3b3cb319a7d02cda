"""Saved groups of accounts: a name that a bill run, documents and exports select by
(``Selection(group=...)``, ``meterline billrun --group NAME``). A group is saved whole: its
members are replaced in one transaction, and a list naming an account that does not exist is
refused whole, naming the accounts, so nothing is half-saved."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from meterline.errors import Invalid, NotFound

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Group:
    name: str
    description: str
    accounts: int
    saved_by: str


_UNKNOWN = """
SELECT x.id FROM unnest(%s::text[]) AS x(id)
 WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = x.id)
 ORDER BY x.id
"""

_SAVE = """
INSERT INTO account_groups (name, description, saved_by) VALUES (%s, %s, %s)
ON CONFLICT (name) DO UPDATE
   SET description = excluded.description, saved_by = excluded.saved_by, saved_at = now()
"""

_GROUPS = """
SELECT g.name, g.description, count(m.account_id), g.saved_by
  FROM account_groups g LEFT JOIN account_group_members m ON m.group_name = g.name
 WHERE %(name)s::text IS NULL OR g.name = %(name)s::text
 GROUP BY g.name ORDER BY g.name
"""


async def save_group(conn: psycopg.AsyncConnection[Any], name: str, accounts: Iterable[str],
                     saved_by: str, description: str = "") -> Group:
    """Save ``accounts`` as the group ``name`` (replacing its members), in one transaction."""
    if not NAME.match(name):
        raise Invalid(f"a group's name is 1 to 64 letters, digits, '_', '.' or '-', not "
                      f"{name!r}", field=["name"])
    members = sorted({a.strip() for a in accounts if a.strip()})
    if not members:
        raise Invalid(f"group {name} would have no account", field=["accounts"])
    async with conn.transaction():
        cur = await conn.execute(_UNKNOWN, (members,))
        unknown = [a for (a,) in await cur.fetchall()]
        if unknown:
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise Invalid(f"no account {', '.join(unknown[:10])}{more}: group {name} not saved",
                          field=["accounts"], code="unknown-account")
        await conn.execute(_SAVE, (name, description, saved_by))
        await conn.execute("DELETE FROM account_group_members WHERE group_name = %s", (name,))
        await conn.execute("""
            INSERT INTO account_group_members (group_name, account_id)
            SELECT %s, unnest(%s::text[])""", (name, members))
    return Group(name, description, len(members), saved_by)


async def groups(conn: psycopg.AsyncConnection[Any], name: str | None = None) -> list[Group]:
    """The saved groups (or the one named), with how many accounts each holds."""
    cur = await conn.execute(_GROUPS, {"name": name})
    found = [Group(n, d, int(c), s) for n, d, c, s in await cur.fetchall()]
    if name is not None and not found:
        raise NotFound(f"no saved group {name!r}")
    return found


async def delete_group(conn: psycopg.AsyncConnection[Any], name: str) -> None:
    """Forget a group (the runs that selected it keep its name in their selection)."""
    cur = await conn.execute("DELETE FROM account_groups WHERE name = %s RETURNING name",
                             (name,))
    if await cur.fetchone() is None:
        raise NotFound(f"no saved group {name!r}")
