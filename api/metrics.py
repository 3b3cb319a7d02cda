"""GET /metrics: the API's Prometheus metrics; every request is counted and timed by route.

The route is the path template (``/accounts/{account_id}``), so one subscriber's requests do
not make a series of their own; a path no route matches is counted as ``unmatched``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterline.metrics import API, API_REQUEST_SECONDS, API_REQUESTS, exposition

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """The API's metrics in Prometheus text format."""
    return Response(exposition(API), media_type=CONTENT_TYPE_LATEST)


class _RequestMetrics:
    """Counts and times every HTTP request by route (a plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` runs the rest of the request in a task of its own and streams the
    response through a queue, which costs more CPU than the cheapest endpoints do)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response says otherwise

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            API_REQUESTS.labels(scope["method"], route, str(status)).inc()
            API_REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


def install_request_metrics(app: FastAPI) -> None:
    app.add_middleware(_RequestMetrics)
