"""GET /meters/{meter_id}: a meter, the last reading of each of its registers, and the latest
relay command meterline wrote for it."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import psycopg
from fastapi import APIRouter
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.amounts import Exact
from api.auth.access import ReadableMeter
from api.problems import not_found, problem_responses
from api.state import Pool, read_snapshot
from meterline.contracts import Timestamp

router = APIRouter(prefix="/meters", tags=["meters"])


class LastReading(BaseModel):
    ts: Timestamp
    value: Exact = Field(description="Cumulative register value, exact.")


class MeterRegister(BaseModel):
    code: str
    unit: str
    last_reading: LastReading | None = Field(description="Latest reading by timestamp, if any.")


class RelayCommandView(BaseModel):
    id: UUID
    action: Literal["connect", "disconnect"]
    reason: str
    status: Literal["requested", "sent", "acknowledged", "failed"]
    detail: str
    requested_at: Timestamp
    sent_at: Timestamp | None
    acknowledged_at: Timestamp | None


class Meter(BaseModel):
    id: str
    account_id: str
    provider_id: str
    utility: str
    model: str
    gateway_id: str
    has_relay: bool
    relay_state: Literal["connected", "disconnected"] = Field(
        description="The state meterline last commanded; see last_relay_command for delivery."
    )
    installed_at: Timestamp
    registers: list[MeterRegister]
    last_relay_command: RelayCommandView | None


_METER = """
SELECT id, account_id, provider_id, utility, model, gateway_id, has_relay, relay_state,
       installed_at
  FROM meters
 WHERE id = %s
"""

_REGISTERS = """
SELECT r.code, r.unit, last.ts, last.value
  FROM registers r
  LEFT JOIN LATERAL (
        SELECT ts, value
          FROM readings
         WHERE meter_id = r.meter_id AND register = r.code
         ORDER BY ts DESC
         LIMIT 1
       ) last ON true
 WHERE r.meter_id = %s
 ORDER BY r.code
"""

_LAST_COMMAND = """
SELECT id, action, reason, status, detail, requested_at, sent_at, acknowledged_at
  FROM relay_commands
 WHERE meter_id = %s
 ORDER BY seq DESC
 LIMIT 1
"""


async def load_meter(conn: psycopg.AsyncConnection[Any], meter_id: str) -> Meter | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_METER, (meter_id,))
    meter = await cur.fetchone()
    if meter is None:
        return None
    await cur.execute(_REGISTERS, (meter_id,))
    registers = [
        MeterRegister(
            code=r["code"],
            unit=r["unit"],
            last_reading=None if r["ts"] is None else LastReading(ts=r["ts"], value=r["value"]),
        )
        for r in await cur.fetchall()
    ]
    await cur.execute(_LAST_COMMAND, (meter_id,))
    command = await cur.fetchone()
    return Meter.model_validate(
        {
            **meter,
            "registers": registers,
            "last_relay_command": None if command is None else RelayCommandView(**command),
        }
    )


@router.get(
    "/{meter_id}",
    response_model=Meter,
    responses=problem_responses(401, 403, 404, 422),
    summary="A meter with its last readings and relay command",
)
async def get_meter(meter_id: ReadableMeter, pool: Pool) -> Meter:
    """The meter, each register with its latest reading (by reading timestamp), and the
    latest relay command written for it (by request time) with its delivery status."""
    async with pool.connection() as conn, conn.transaction():
        await read_snapshot(conn)
        meter = await load_meter(conn, meter_id)
    if meter is None:
        raise not_found(f"No meter {meter_id}")
    return meter
