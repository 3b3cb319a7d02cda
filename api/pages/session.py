"""Who is looking at a page: the same tokens as the API, kept in cookies.

Logging in on ``/login`` runs the same password check and lockout as ``POST /auth/token`` and
puts the access token and the refresh token in HttpOnly, SameSite=Strict cookies; an expired
access token is refreshed (rotated) on the next page. Every form carries a CSRF token that
must equal the ``ml_csrf`` cookie (double submit), so another site cannot post in the
person's name. The language comes from ``?lang=``, then the ``ml_lang`` cookie, then the
browser's Accept-Language (Russian unless it asks for English).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import psycopg
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from psycopg_pool import AsyncConnectionPool

from api.auth.access import sees_account
from api.auth.tokens import (
    Caller,
    access_token,
    caller_of_token,
    rotate_refresh_token,
    still_valid,
)
from api.problems import ProblemError
from api.texts import LANGS, Lang, catalogue
from meterline.settings import Settings
from meterline.users import ROLE_SCOPES, Role, Scope

R = TypeVar("R", bound=Response)

ACCESS, REFRESH, CSRF, LANG, FLASH = "ml_access", "ml_refresh", "ml_csrf", "ml_lang", "ml_flash"

templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")


class LoginRequired(Exception):
    """Raised by a page whose viewer is not logged in: answered by a redirect to /login."""


@dataclass
class Page:
    """One page view: the request, the viewer (if logged in), language, CSRF token, and the
    cookies to set on whatever answers it."""

    request: Request
    caller: Caller | None
    lang: Lang
    csrf: str
    cookies: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    @property
    def viewer(self) -> Caller:
        if self.caller is None:
            raise LoginRequired
        return self.caller

    def t(self, key: str, **values: Any) -> str:
        text: Any = catalogue(self.lang)["page"]
        return str(text.get(key, key)).format(**values) if values else str(text.get(key, key))

    def flash(self, message: str) -> None:
        # percent-encoded: a cookie carries latin-1 only, and the pages speak Russian
        self.cookies[FLASH] = (quote(message, safe=" "), 30)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        flash = unquote(self.request.cookies.get(FLASH) or "") or None
        response = templates.TemplateResponse(
            self.request, template,
            {"t": self.t, "lang": self.lang, "csrf": self.csrf, "viewer": self.caller,
             "flash": flash, "other_lang": "en" if self.lang == "ru" else "ru",
             "texts": catalogue(self.lang), **context},
            status_code=status)
        if flash:
            response.delete_cookie(FLASH, path="/")
        return self.finish(response)

    def redirect(self, url: str) -> RedirectResponse:
        return self.finish(RedirectResponse(url, status_code=303))

    def finish(self, response: R) -> R:
        secure = self.request.url.scheme == "https"
        for name, (value, max_age) in self.cookies.items():
            if value == "":
                response.delete_cookie(name, path="/")
                continue
            response.set_cookie(name, value, max_age=max_age, path="/", secure=secure,
                                httponly=name not in (CSRF, LANG), samesite="strict"
                                if name in (ACCESS, REFRESH) else "lax")
        return response

    def check_csrf(self, form_token: str | None) -> None:
        cookie = self.request.cookies.get(CSRF)
        if not cookie or not form_token or not secrets.compare_digest(cookie, form_token):
            raise ProblemError(403, "The form is stale or came from another site; reload the "
                               "page and try again.", slug="csrf", title="Forbidden")

    def sign_in(self, settings: Settings, caller_token: str, refresh: str) -> None:
        self.cookies[ACCESS] = (caller_token, settings.access_token_ttl)
        self.cookies[REFRESH] = (refresh, settings.refresh_token_ttl)

    def sign_out(self) -> None:
        self.cookies[ACCESS] = ("", None)
        self.cookies[REFRESH] = ("", None)


def _lang(request: Request) -> tuple[Lang, bool]:
    """(language, whether it was asked for by ?lang= now)."""
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked, True
    cookie = request.cookies.get(LANG)
    if cookie in LANGS:
        return cookie, False
    wanted = request.headers.get("accept-language", "").lower()
    return ("en" if wanted.startswith("en") else "ru"), False


async def page(request: Request) -> Page:
    """The page's viewer: from the access cookie, or refreshed through the refresh cookie."""
    settings: Settings = request.app.state.settings
    pool: AsyncConnectionPool = request.app.state.pool
    lang, chosen = _lang(request)
    csrf = request.cookies.get(CSRF) or secrets.token_urlsafe(24)
    view = Page(request, None, lang, csrf)
    if CSRF not in request.cookies:
        view.cookies[CSRF] = (csrf, None)
    if chosen:
        view.cookies[LANG] = (lang, 365 * 24 * 3600)
    token = request.cookies.get(ACCESS)
    if token:
        try:
            caller = caller_of_token(settings, token)
        except ProblemError:
            caller = None
        if caller is not None:
            async with pool.connection() as conn:
                valid = await still_valid(conn, caller)
            if not valid:  # logged out elsewhere, revoked, or disabled: no refresh either
                view.sign_out()
                return view
            view.caller = caller
            return view
    refresh = request.cookies.get(REFRESH)
    if refresh:
        async with pool.connection() as conn:
            rotated = await rotate_refresh_token(conn, settings, refresh)
        if isinstance(rotated, str):
            view.sign_out()
        else:
            user, new_refresh, session = rotated
            scopes = ROLE_SCOPES[user.role]
            view.sign_in(settings, access_token(settings, user, scopes, session), new_refresh)
            view.caller = caller_of_token(settings, view.cookies[ACCESS][0])
    return view


async def allowed(view: Page, conn: psycopg.AsyncConnection[Any], account_id: str,
                  scope: Scope) -> bool:
    """The viewer holds ``scope`` and sees the account (`api.auth.access`, as the API):
    a form posted on another's account is answered like a missing one."""
    return scope in view.viewer.scopes and await sees_account(conn, view.viewer, account_id)


def home_of(role: Role) -> str:
    return {Role.OPERATOR: "/desk", Role.ADMIN: "/admin"}.get(role, "/cabinet")
