"""GET /health and GET /ready: the API is up and its database answers (/ready is the same
check under the name every meterline service answers to)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from api.problems import problem_responses
from api.state import Pool

router = APIRouter(tags=["health"])

DATABASE_TIMEOUT = 3.0  # seconds to wait for a pooled connection


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    database: Literal["ok"] = "ok"


@router.get("/health", response_model=Health, responses=problem_responses(503))
@router.get("/ready", response_model=Health, responses=problem_responses(503))
async def health(pool: Pool) -> Health:
    """200 when the database answers a query; 503 problem when it does not."""
    async with pool.connection(timeout=DATABASE_TIMEOUT) as conn:
        await conn.execute("SELECT 1")
    return Health()
