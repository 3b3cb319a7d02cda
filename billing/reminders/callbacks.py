"""The notifier's HTTP side: what channels call back with their proof, and the calls list
the autodialer takes.

- ``GET /sms/report?token=&type=&answer=``: the SMS gateway's delivery report (Kannel's
  dlr-url, ``%d`` and ``%A`` filled in).
- ``GET /calls``: the calls due now (CSV, see `channels.phone`); each is handed out once.
- ``POST /calls/result``: the autodialer's result of a call (JSON `CallResult`).
- ``GET /n/{token}``: the link in a notice by e-mail, followed: the notice was read.
- ``GET /metrics`` (Prometheus) and ``GET /ready`` (200 once the notifier delivers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg_pool import AsyncConnectionPool

from billing.reminders.channels.phone import CallResult, call_list
from billing.reminders.channels.sms import report
from billing.reminders.delivery import Notifier
from meterline.errors import NotFound
from meterline.metrics import NOTIFIER, NOTIFIER_NOTICES, exposition
from meterline.notices import Proof, Recorded, record_receipt
from meterline.settings import Settings

READ_PAGE = """<!doctype html><html lang="ru"><meta charset="utf-8">
<title>Уведомление получено</title><p>Спасибо: получение уведомления подтверждено.</p></html>"""


def callbacks_app(settings: Settings, pool: AsyncConnectionPool,
                  clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                  ready: Callable[[], bool] = lambda: True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient() as http:
            app.state.notifier = Notifier(settings, http)
            yield

    app = FastAPI(title="meterline notifier callbacks", lifespan=lifespan)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(exposition(NOTIFIER), media_type=CONTENT_TYPE_LATEST)

    @app.get("/ready", response_class=PlainTextResponse)
    async def readiness(response: Response) -> str:
        if ready():
            return "ready\n"
        response.status_code = 503
        return "not ready\n"

    def delivered(recorded: Recorded) -> None:
        if recorded.delivered_now:
            NOTIFIER_NOTICES.labels(recorded.channel, "delivered").inc()

    @app.get("/sms/report", response_class=PlainTextResponse)
    async def sms_report(
        token: Annotated[str, Query(min_length=1)], type: Annotated[int, Query()],
        answer: str = "",
    ) -> str:
        dlr = report(type, answer)
        proves = Proof.DELIVERED if dlr.delivered else Proof.FAILED if dlr.failed \
            else Proof.NOTHING
        async with pool.connection() as conn, conn.transaction():
            delivered(await record_receipt(conn, token, "sms_report", proves,
                                           {"type": type, "answer": answer}, clock()))
        return "ok"

    @app.post("/calls/result")
    async def call_result(result: CallResult) -> dict[str, str]:
        proves = Proof.DELIVERED if result.delivered else Proof.FAILED
        async with pool.connection() as conn, conn.transaction():
            delivered(await record_receipt(conn, result.call_id, "call_result", proves,
                                           result.model_dump(mode="json"), clock()))
        return {"recorded": str(proves)}

    @app.get("/calls", response_class=PlainTextResponse)
    async def calls(request: Request) -> PlainTextResponse:
        async with pool.connection() as conn:
            due = await request.app.state.notifier.claim_calls(conn, clock())
        text = call_list(due, f"{settings.notifier_public_url}/calls/result")
        return PlainTextResponse(text, media_type="text/csv; charset=utf-8")

    @app.get("/n/{token}", response_class=HTMLResponse)
    async def link_followed(token: str, request: Request) -> str:
        async with pool.connection() as conn, conn.transaction():
            delivered(await record_receipt(
                conn, token, "link_followed", Proof.DELIVERED,
                {"user_agent": request.headers.get("user-agent", "")}, clock()))
        return READ_PAGE

    return app
