"""GET /metrics: the API's Prometheus metrics; every request is counted and timed by route.

The route is the path template (``/accounts/{account_id}``), so one subscriber's requests do
not make a series of their own; a path no route matches is counted as ``unmatched``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from meterline.metrics import API, API_REQUEST_SECONDS, API_REQUESTS, exposition

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """The API's metrics in Prometheus text format."""
    return Response(exposition(API), media_type=CONTENT_TYPE_LATEST)


def install_request_metrics(app: FastAPI) -> None:
    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500  # unless a response says otherwise
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            API_REQUESTS.labels(request.method, route, str(status)).inc()
            API_REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
