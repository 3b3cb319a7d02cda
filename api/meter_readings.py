"""Meter readings by web and app: ``POST /meters/{id}/readings`` and the meter's history.

The rules (last reading, plausibility, submission day) are the kernel's
(`meterline.meter_readings`); a refusal is a 422 problem saying why. An operator's or
admin's reading is stored with the source ``operator``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.amounts import Exact, ReadingValue
from api.auth.access import ReadableMeter, meter_with
from api.auth.callers import AnyCaller
from api.problems import problem_responses
from api.state import Pool
from api.topups import exact_body
from meterline.contracts import Timestamp
from meterline.meter_readings import Accepted, submit, version_of
from meterline.units import Register
from meterline.users import Scope

router = APIRouter(prefix="/meters", tags=["meter readings"])

ReadingMeter = Annotated[str, Depends(meter_with(Scope.READINGS))]


class ReadingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: ReadingValue
    register: Register | None = Field(None, description="Which register; may be left out "
                                      "when the meter has one.")
    channel: Literal["web", "app"] = Field("web", description="Where it was typed.")


class ReadingAnswer(BaseModel):
    meter_id: str
    register: str = Field(description="Register code, e.g. volume.")
    unit: str
    value: Exact
    submitted_at: Timestamp
    source: Literal["app", "web", "phone", "operator"]
    counts_for: date = Field(description="First day of the billing month it counts for.")
    late: bool = Field(description="Submitted after the provider's submission day: it counts "
                       "for the next month.")
    previous_value: Exact | None
    previous_at: Timestamp | None
    consumption: Exact | None = Field(description="Since the previous reading.")
    message: str = Field(description="What to tell the person who submitted it.")


def answer(accepted: Accepted) -> ReadingAnswer:
    month = accepted.counts_for.strftime("%B %Y")
    message = (f"Reading accepted; it counts for {month}."
               if not accepted.late else
               f"Reading accepted; submitted after the {accepted.submission_day}th, it counts "
               f"for {month}.")
    previous = accepted.previous
    return ReadingAnswer(
        meter_id=accepted.meter_id, register=accepted.register, unit=accepted.unit,
        value=accepted.value, submitted_at=accepted.submitted_at, source=accepted.source,
        counts_for=accepted.counts_for, late=accepted.late,
        previous_value=previous.value if previous else None,
        previous_at=previous.at if previous else None, consumption=accepted.consumption,
        message=message,
    )


class ReadingRow(BaseModel):
    register: str = Field(description="Register code, e.g. volume.")
    value: Exact
    ts: Timestamp
    source: Literal["gateway", "app", "web", "phone", "operator"]
    etag: str = Field(description="The reading's version: send it as `If-Match` when "
                      "correcting it, so two operators cannot overwrite each other.")


@router.post("/{meter_id}/readings", status_code=201, response_model=ReadingAnswer,
             summary="Submit a meter reading",
             responses=problem_responses(401, 403, 404, 409, 422),
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": ReadingRequest.model_json_schema()}}}})
async def submit_reading(
    meter_id: ReadingMeter,
    body: Annotated[ReadingRequest, Depends(exact_body(ReadingRequest))],
    caller: AnyCaller, pool: Pool,
) -> ReadingAnswer:
    """A reading of a meter read by people (409 for a meter read through a gateway). Refused
    with 422 and the reason when lower than the last reading or implausibly high for the
    days since. `counts_for` says which billing month it counts for: after the provider's
    submission day (DOMAIN §3, the 25th by default, in the account's time zone), the next."""
    source = "operator" if caller.sees_every_account else body.channel
    async with pool.connection() as conn, conn.transaction():
        accepted = await submit(conn, meter_id, body.value, source,
                                register=body.register.value if body.register else None)
    return answer(accepted)


@router.get("/{meter_id}/readings", response_model=list[ReadingRow],
            summary="A meter's readings, newest first",
            responses=problem_responses(401, 403, 404, 422))
async def list_readings(
    meter_id: ReadableMeter, pool: Pool,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 50,
    before: Annotated[Timestamp | None, Query(description="Only readings older than this "
                                              "(the `ts` of the last one seen: next page).")
                      ] = None,
) -> list[ReadingRow]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT register, value, ts, source FROM readings WHERE meter_id = %s"
            " AND (%s::timestamptz IS NULL OR ts < %s) ORDER BY ts DESC LIMIT %s",
            (meter_id, before, before, limit))
        rows = await cur.fetchall()
    return [ReadingRow(register=r[0], value=r[1], ts=r[2], source=r[3],
                       etag=f'"{version_of(r[1], r[3])}"') for r in rows]
