"""What every request may use, held on the app: the settings and the connection pool.

Endpoints open their own transaction (`async with pool.connection() as conn,
conn.transaction():`): the request is the boundary that commits; the SQL functions of each
module only execute statements on the connection they are given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from meterline.settings import Settings

# (async: FastAPI runs a plain ``def`` dependency in a worker thread, which costs more than
# what these do)


async def _pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Pool = Annotated[AsyncConnectionPool, Depends(_pool)]
AppSettings = Annotated[Settings, Depends(_settings)]


async def read_snapshot(conn: psycopg.AsyncConnection[Any]) -> None:
    """Make the current transaction read-only and see one snapshot across its statements,
    so a view assembled from several queries is consistent. First statement only."""
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


@asynccontextmanager
async def one_statement(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection for ONE statement that is its own transaction (autocommit): one
    round trip to the database instead of three (BEGIN, the statement, COMMIT). For a read
    that one statement answers, never for statements that must commit together or see one
    snapshot."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            # back to how the pool lends connections; a broken one the pool throws away
            if conn.info.transaction_status == TransactionStatus.IDLE:
                await conn.set_autocommit(False)
