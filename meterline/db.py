"""PostgreSQL access shared by the services: connections, the pool, migrations, bulk COPY.

Migrations are plain SQL files in ``meterline/migrations``, applied in name order, each in its
own transaction, and recorded in ``schema_migrations``. A file that was changed after it was
applied is refused (its checksum no longer matches).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from meterline import arrays

arrays.register()  # lists of ids and numbers as array parameters: one join, not a regex each
MIGRATIONS_LOCK = 0x6D65746572  # advisory lock key: one migrator at a time

_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every migration shipped with meterline, in order."""
    folder = resources.files("meterline") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def migrate(url: str, *, until: str | None = None) -> list[str]:
    """Apply the migrations not applied yet (up to version ``until``, when given); return
    their versions."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATIONS_LOCK,))
        try:
            await conn.execute(_SCHEMA_MIGRATIONS)
            cur = await conn.execute("SELECT version, checksum FROM schema_migrations")
            done = {version: checksum for version, checksum in await cur.fetchall()}
            for version, text in migration_files():
                if until is not None and version > until:
                    break
                if version in done:
                    if done[version] != _checksum(text):
                        raise MigrationError(f"migration {version} changed after it was applied")
                    continue
                async with conn.transaction():
                    await conn.execute(sql.SQL(text))  # type: ignore[arg-type,unused-ignore]  # LiteralString
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                        (version, _checksum(text)),
                    )
                applied.append(version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATIONS_LOCK,))
    return applied


def _admin_url(url: str) -> tuple[str, str]:
    params = conninfo_to_dict(url)
    name = str(params.get("dbname") or "")
    if not name:
        raise MigrationError(f"no database name in {url!r}")
    params["dbname"] = "postgres"
    return make_conninfo("", **params), name


async def create_database(url: str, *, exist_ok: bool = True) -> bool:
    """Create the database named in ``url``; True if it was created."""
    admin, name = _admin_url(url)
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if await cur.fetchone():
            if not exist_ok:
                raise MigrationError(f"database {name} exists")
            return False
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


async def drop_database(url: str) -> None:
    admin, name = _admin_url(url)
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def make_pool(
    url: str, *, name: str, min_size: int = 1, max_size: int = 4
) -> AsyncConnectionPool:
    """A pool that is not open yet: ``async with make_pool(url, name=...) as pool`` opens it.
    ``name`` is the application_name its connections show in pg_stat_activity."""
    return AsyncConnectionPool(
        url, min_size=min_size, max_size=max_size, open=False,
        kwargs={"application_name": name},
    )


async def copy_rows(
    cur: psycopg.AsyncCursor[Any],
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Binary COPY of ``rows`` into ``table`` (a staging table: COPY is not idempotent)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    async with cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            await copy.write_row(row)
