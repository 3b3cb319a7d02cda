"""Errors as RFC 9457 problem details (``application/problem+json``), for every error the API
answers: our own (`ProblemError`), unknown routes and methods, request validation, an
unavailable database, and anything unexpected (500, without a traceback in the body).

Problem types specific to meterline are URNs ``urn:meterline:problem:<slug>``:
``validation-error`` (with ``errors``), ``not-found``, ``idempotency-key-reused``,
``database-unavailable``, ``internal-error``. Plain HTTP errors use ``about:blank``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from meterline.errors import Conflict, DomainError, Invalid, NotFound

logger = logging.getLogger("meterline.api")

MEDIA_TYPE = "application/problem+json"
BLANK = "about:blank"


def problem_type(slug: str) -> str:
    return f"urn:meterline:problem:{slug}"


class FieldError(BaseModel):
    """One thing wrong with the request."""

    loc: list[str | int] = Field(
        description="Where: `path`, `query`, `header` or `body`, then the field.",
        examples=[["body", "amount"]],
    )
    type: str = Field(description="Machine-readable error code.", examples=["greater_than"])
    msg: str = Field(description="Human-readable message.")


class Problem(BaseModel):
    """RFC 9457 problem details (a problem type may add members, e.g. OAuth2's `error`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(BLANK, description="URI identifying the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status code.")
    detail: str | None = Field(None, description="What went wrong in this occurrence.")
    instance: str | None = Field(None, description="The request path.")
    errors: list[FieldError] | None = Field(None, description="Validation failures, if any.")


class ProblemError(Exception):
    """Raise to answer with a problem; raised inside a transaction, it rolls it back."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = problem_type(slug) if slug else BLANK
        self.title = title or HTTPStatus(status).phrase
        self.errors = list(errors) if errors is not None else None
        self.headers = headers
        self.extra = dict(extra or {})


def not_found(detail: str) -> ProblemError:
    return ProblemError(404, detail, slug="not-found", title="Not found")


def invalid(loc: Sequence[str | int], msg: str, *, type_: str = "value_error") -> ProblemError:
    """A 422 for a request that is well-formed but refers to something it cannot use."""
    return ProblemError(
        422,
        msg,
        slug="validation-error",
        title="Invalid request",
        errors=[FieldError(loc=list(loc), type=type_, msg=msg)],
    )


def problem_response(
    request: Request,
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = BLANK,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = Problem(
        type=type_,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
        **(extra or {}),
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=dict(headers) if headers else None,
    )


def field_errors(raw: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic/FastAPI error dicts without the rejected input (it may be large or private)."""
    return [
        FieldError(
            loc=[str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
            type=str(e.get("type", "value_error")),
            msg=str(e.get("msg", "")),
        )
        for e in raw
    ]


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.status, title=exc.title, detail=exc.detail, type_=exc.type, errors=exc.errors,
        headers=exc.headers, extra=exc.extra,
    )


def _status_of(exc: DomainError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 422


async def _on_domain(request: Request, exc: Exception) -> JSONResponse:
    """A business rule refused the request (meterline.errors): the same refusal billing and
    the command line see, answered as a problem."""
    assert isinstance(exc, DomainError)
    status = _status_of(exc)
    errors = None
    if isinstance(exc, Invalid):
        errors = [FieldError(loc=exc.field or ["body"], type=exc.error_type, msg=exc.detail)]
    return problem_response(
        request, status, title=exc.title, detail=exc.detail, type_=problem_type(exc.code),
        errors=errors,
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail and exc.detail != phrase else None
    if exc.status_code == 404 and detail is None:
        detail = f"No resource at {request.url.path}"
    elif exc.status_code == 405 and detail is None:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(request, exc.status_code, detail=detail, headers=exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        request,
        422,
        title="Invalid request",
        detail="The request failed validation; see errors.",
        type_=problem_type("validation-error"),
        errors=field_errors(exc.errors()),
    )


async def _on_database_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        request,
        503,
        detail="The database is not available; try again later.",
        type_=problem_type("database-unavailable"),
        headers={"Retry-After": "5"},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer, so the server logs the traceback.
    return problem_response(
        request,
        500,
        detail="An unexpected error occurred; it has been logged.",
        type_=problem_type("internal-error"),
    )


async def _on_client_gone(request: Request, exc: Exception) -> Response:
    # the client closed the connection while sending its body: nobody reads this answer
    return Response(status_code=400)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(DomainError, _on_domain)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ClientDisconnect, _on_client_gone)
    app.add_exception_handler(PoolTimeout, _on_database_down)
    app.add_exception_handler(psycopg.OperationalError, _on_database_down)
    app.add_exception_handler(Exception, _on_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem answers of a route."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses
    }


def use_problem_media_type(openapi: dict[str, Any]) -> dict[str, Any]:
    """In the OpenAPI document, show 4xx/5xx bodies as ``application/problem+json``."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if str(status)[0] in "45" and "application/json" in content:
                    content[MEDIA_TYPE] = content.pop("application/json")
    return openapi
