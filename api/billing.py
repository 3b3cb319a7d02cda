"""The back office over HTTP: ask for a bill run and watch it (operators), and download an
account's payment document (the account's subscriber and operators).

A bill run asked for here is queued; the scheduler service (`meterline scheduler`) makes it
and records its progress, which ``GET /billruns/{id}`` shows. A document is assembled from
the stored bill and rendered on demand; nothing stores it.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth.access import ReadableAccount
from api.auth.callers import Desk
from api.problems import problem_responses
from api.state import Pool
from meterline.bill_runs import Selection, queue
from meterline.contracts import AccountId, ProviderId, Timestamp
from meterline.documents.assemble import payment_document
from meterline.documents.pdf import file_name, render_pdf
from meterline.errors import Invalid, NotFound

router = APIRouter(tags=["billing"])

# years 1000-9999: a year 0000 is no date at all
Month = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$")]


def month(text: str) -> date:
    year, number = text.split("-")
    return date(int(year), int(number), 1)


class BillRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: Month = Field(description="The month billed.", examples=["2026-03"])
    region: str | None = Field(None, description="Only this region (code).")
    city: str | None = Field(None, description="Only this city (name).")
    house: int | None = Field(None, description="Only this house (id).")
    provider: ProviderId | None = Field(None, description="Only this provider's services.")
    accounts: list[AccountId] = Field(default_factory=list, max_length=10_000,
                                      description="Only these accounts.")
    group: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                              description="Only the accounts of this saved group.")


class BillRun(BaseModel):
    id: int
    period: str
    selection: dict[str, Any]
    started_by: str
    status: Literal["queued", "running", "done", "failed"]
    accounts: int = Field(description="Accounts selected (0 until the run has started).")
    billed: int = Field(description="Accounts billed so far.")
    changed: int = Field(description="Accounts whose bill was posted or changed.")
    progress: float = Field(description="Share of the selected accounts billed, 0 to 1.")
    detail: str
    started_at: Timestamp
    finished_at: Timestamp | None


_RUN = """
SELECT id, to_char(period, 'YYYY-MM') AS period, selection, started_by, status, accounts,
       billed, changed, detail, started_at, finished_at
  FROM bill_runs WHERE id = %s
"""

_RUNS = """
SELECT id, to_char(period, 'YYYY-MM') AS period, selection, started_by, status, accounts,
       billed, changed, detail, started_at, finished_at
  FROM bill_runs WHERE %(period)s::date IS NULL OR period = %(period)s::date
 ORDER BY id DESC LIMIT %(limit)s
"""


def _run(row: dict[str, Any]) -> BillRun:
    progress = row["billed"] / row["accounts"] if row["accounts"] else (
        1.0 if row["status"] == "done" else 0.0)
    return BillRun.model_validate({**row, "progress": round(progress, 4)})


@router.post("/billruns", status_code=202, response_model=BillRun,
             responses=problem_responses(401, 403, 404, 422),
             summary="Ask for a bill run (operators)")
async def request_bill_run(body: BillRunRequest, caller: Desk, pool: Pool) -> BillRun:
    """Queue a bill run of `period` for every housing account or the selection; the
    scheduler service makes it. Billing again what was billed changes nothing."""
    selection = Selection(region=body.region, city=body.city, house=body.house,
                          provider=body.provider, accounts=tuple(body.accounts),
                          group=body.group)
    async with pool.connection() as conn, conn.transaction():
        run_id = await queue(conn, month(body.period), selection, f"api:{caller.username}")
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_RUN, (run_id,))
        row = await cur.fetchone()
    assert row is not None
    return _run(row)


@router.get("/billruns/{run_id}", response_model=BillRun,
            responses=problem_responses(401, 403, 404),
            summary="A bill run and its progress (operators)")
async def get_bill_run(run_id: Annotated[int, Path(ge=1)], caller: Desk, pool: Pool) -> BillRun:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_RUN, (run_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No bill run {run_id}")
    return _run(row)


@router.get("/billruns", response_model=list[BillRun],
            responses=problem_responses(401, 403, 422),
            summary="Recent bill runs (operators)")
async def list_bill_runs(
    caller: Desk, pool: Pool,
    period: Annotated[Month | None, Query(description="Only runs of this month.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[BillRun]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_RUNS, {"period": month(period) if period else None,
                                  "limit": limit})
        return [_run(row) for row in await cur.fetchall()]


@router.get(
    "/accounts/{account_id}/documents/{period}",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}},
                     "description": "The payment document (PDF)."},
               **problem_responses(401, 403, 404, 422)},
    summary="The account's payment document of a month (PDF)",
)
async def get_payment_document(
    account_id: ReadableAccount, period: Annotated[Month, Path(examples=["2026-03"])],
    pool: Pool,
) -> Response:
    """The single payment document of the month as a PDF with its payment QR, rendered from
    the stored bill. 404 when the account was not billed for that month."""
    try:
        wanted = month(period)
    except ValueError as exc:
        raise Invalid(f"a period is YYYY-MM, not {period}", field=["path", "period"]) from exc
    async with pool.connection() as conn:
        doc = await payment_document(conn, wanted, account_id)
    pdf = await asyncio.to_thread(render_pdf, doc)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{file_name(doc)}"',
        "Last-Modified": datetime.now().strftime("%a, %d %b %Y %H:%M:%S GMT")})
