"""What every request may use, held on the app: the settings and the connection pool.

Endpoints open their own transaction (`async with pool.connection() as conn,
conn.transaction():`): the request is the boundary that commits; the SQL functions of each
module only execute statements on the connection they are given.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from meterline.settings import Settings


def _pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Pool = Annotated[AsyncConnectionPool, Depends(_pool)]
AppSettings = Annotated[Settings, Depends(_settings)]


async def read_snapshot(conn: psycopg.AsyncConnection[Any]) -> None:
    """Make the current transaction read-only and see one snapshot across its statements,
    so a view assembled from several queries is consistent. First statement only."""
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
