"""An industrial customer's pages: interval data (a day's quarter-hours of each meter, and
the month's load profile as CSV) and API keys for their own systems. The interval data are
the API's (`api.usage.quarter_hours`, the same rows as ``GET /meters/{id}/load-profile.csv``);
the keys are the kernel's (`meterline.users`), as for ``/auth/api-keys``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response

from api.auth.access import sees_account
from api.pages.session import Page, page
from api.state import Pool
from api.usage import load_profile_csv, quarter_hours
from meterline.errors import DomainError
from meterline.users import ROLE_SCOPES, Scope, api_keys, create_api_key, revoke_api_key

router = APIRouter(include_in_schema=False)

View = Annotated[Page, Depends(page)]
Text = Annotated[str, Form(max_length=200)]


async def _exportable_meters(view: Page, pool: Pool, account_id: str) -> list[str] | None:
    """The account's meters, when the viewer may export its interval data; None otherwise."""
    if Scope.USAGE_EXPORT not in view.viewer.scopes:
        return None
    async with pool.connection() as conn:
        if not await sees_account(conn, view.viewer, account_id):
            return None
        cur = await conn.execute(
            "SELECT id FROM meters WHERE account_id = %s ORDER BY id", (account_id,))
        return [m for (m,) in await cur.fetchall()]


def _day(text: str | None) -> date:
    try:
        return date.fromisoformat(text) if text else datetime.now(UTC).date()
    except ValueError:
        return datetime.now(UTC).date()


@router.get("/cabinet/accounts/{account_id}/intervals")
async def intervals_page(account_id: str, view: View, pool: Pool, meter: str | None = None,
                         day: str | None = None) -> Response:
    """A day's quarter-hours of one meter: a chart, and a table beside it."""
    meters = await _exportable_meters(view, pool, account_id)
    if not meters or (meter is not None and meter not in meters):
        return view.render("missing.html", status=404, account_id=account_id)
    shown, wanted = meter or meters[0], _day(day)
    month, zone, rows = await quarter_hours(pool, shown, wanted.strftime("%Y-%m"))
    rows = [r for r in rows if r.start.startswith(wanted.isoformat())]
    top = max((Decimal(r.quantity) for r in rows if r.quantity), default=Decimal(0))
    bars = [{"row": r, "height": float(Decimal(r.quantity) / top) * 100
             if r.quantity and top else 0} for r in rows]
    return view.render("intervals.html", account_id=account_id, meters=meters, meter=shown,
                       day=wanted.isoformat(), month=month, zone=zone, bars=bars)


@router.get("/cabinet/accounts/{account_id}/meters/{meter_id}/load-profile.csv")
async def load_profile_download(account_id: str, meter_id: str, view: View, pool: Pool,
                                month: str | None = None) -> Response:
    meters = await _exportable_meters(view, pool, account_id)
    if not meters or meter_id not in meters:
        return view.render("missing.html", status=404, account_id=account_id)
    wanted = month if month and len(month) == 7 else _day(None).strftime("%Y-%m")
    try:
        date.fromisoformat(f"{wanted}-01")
    except ValueError:
        wanted = _day(None).strftime("%Y-%m")
    return view.finish(await load_profile_csv(pool, meter_id, wanted))


# --- API keys


async def _keys_page(view: Page, pool: Pool, new_key: str | None = None,
                     status: int = 200) -> Response:
    caller = view.viewer
    async with pool.connection() as conn:
        keys = await api_keys(conn, caller.user_id)
    grantable = sorted(s for s in ROLE_SCOPES[caller.role] if s is not Scope.KEYS)
    return view.render("keys.html", status=status, keys=keys, grantable=grantable,
                       new_key=new_key)


def _may_manage_keys(view: Page) -> bool:
    return Scope.KEYS in view.viewer.scopes


@router.get("/cabinet/keys")
async def keys_page(view: View, pool: Pool) -> Response:
    if not _may_manage_keys(view):
        return view.render("missing.html", status=404, account_id="")
    return await _keys_page(view, pool)


@router.post("/cabinet/keys")
async def create_key(view: View, pool: Pool) -> Response:
    """The new key is shown on the answer to this form only, never stored in clear."""
    form = await view.request.form()
    view.check_csrf(str(form.get("csrf") or ""))
    if not _may_manage_keys(view):
        return view.render("missing.html", status=404, account_id="")
    caller = view.viewer
    name = str(form.get("name") or "").strip()[:100]
    try:
        scopes = [Scope(str(s)) for s in form.getlist("scopes")]
        async with pool.connection() as conn:
            if not name:
                raise DomainError("a key needs a name")
            new = await create_api_key(conn, caller.user_id, caller.role, name, scopes)
    except (ValueError, DomainError) as exc:
        view.flash(exc.detail if isinstance(exc, DomainError) else str(exc))
        return view.redirect("/cabinet/keys")
    return await _keys_page(view, pool, new_key=new.key, status=201)


@router.post("/cabinet/keys/{key_id}/revoke")
async def revoke_key(key_id: str, view: View, pool: Pool, csrf: Text) -> Response:
    view.check_csrf(csrf)
    if not _may_manage_keys(view):
        return view.render("missing.html", status=404, account_id="")
    try:
        async with pool.connection() as conn:
            await revoke_api_key(conn, view.viewer.user_id, key_id)
    except DomainError as exc:
        view.flash(exc.detail)
        return view.redirect("/cabinet/keys")
    view.flash(view.t("key_revoked"))
    return view.redirect("/cabinet/keys")
