"""The web pages people use, served by the API: the subscriber's cabinet (`cabinet`), the
operator's desk (`desk`) and administration (`admin`). Server-rendered with Jinja2
(`api/templates`), no JavaScript needed; Russian and English (`api/texts`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.pages import admin, cabinet, desk, industrial, notices, plans
from api.pages.session import LoginRequired

STATIC = Path(__file__).parent.parent / "static"
# every module of pages; each has a `router`
MODULES = (cabinet, notices, plans, industrial, desk, admin)


async def _to_login(request: Request, exc: Exception) -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def install_pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(LoginRequired, _to_login)
    for module in MODULES:
        app.include_router(module.router)
