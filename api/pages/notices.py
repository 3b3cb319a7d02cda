"""The cabinet's notifications page: the account's notices (opening one there is proof that it
reached the subscriber) and how the account wants to hear from its providers, per kind of
notice. The rules are the kernel's (`meterline.notices`), as for the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from api.auth.access import sees_account
from api.notices import opens_for_the_subscriber
from api.pages.session import Page, allowed, page
from api.state import Pool
from meterline.errors import DomainError
from meterline.notices import (
    NoticeChannel,
    NoticeKind,
    Preferences,
    cabinet_notices,
    opened_in_cabinet,
    preferences,
    set_preferences,
)
from meterline.users import Scope

router = APIRouter(include_in_schema=False)

View = Annotated[Page, Depends(page)]

# the order a channel newly ticked on the page takes among those already chosen
PAGE_ORDER = (NoticeChannel.EMAIL, NoticeChannel.SMS, NoticeChannel.PHONE,
              NoticeChannel.CABINET)


def ordered(ticked: set[NoticeChannel], before: tuple[NoticeChannel, ...]) -> tuple[
        NoticeChannel, ...]:
    """The channels ticked, keeping the order chosen before (through the API, say); new ones
    after them in the page's order."""
    kept = [c for c in before if c in ticked]
    return tuple(kept + [c for c in PAGE_ORDER if c in ticked and c not in kept])


def _ticked(values: list[str]) -> set[NoticeChannel]:
    return {NoticeChannel(v) for v in values if v in NoticeChannel.__members__.values()}


def from_form(form: dict[str, list[str]], before: Preferences) -> Preferences:
    """What the page's form asks for: addresses, channels for every notice, and a kind's own
    channels where they differ from those (a kind's row left as it was keeps following the
    channels for every notice)."""
    email = (form.get("email") or [""])[0].strip() or None
    phone = (form.get("phone") or [""])[0].replace(" ", "").replace("-", "") or None
    channels = ordered(_ticked(form.get("channels", [])), before.channels)
    by_kind = {}
    for kind in NoticeKind:
        ticked = _ticked(form.get(f"kind-{kind.value}", []))
        if kind not in before.by_kind and ticked == set(before.channels):
            continue  # its row was left as it was: it follows the channels for every notice
        chosen = ordered(ticked, before.channels_for(kind))
        if set(chosen) != set(channels):
            by_kind[kind] = chosen
    return Preferences(email, phone, channels, by_kind)


async def _render(view: Page, pool: Pool, account_id: str, status: int = 200) -> Response:
    async with pool.connection() as conn:
        notices = await cabinet_notices(conn, account_id)
        stored = await preferences(conn, account_id)
    return view.render("notifications.html", status=status, account_id=account_id,
                       notices=notices, prefs=stored, kinds=list(NoticeKind),
                       channels=list(PAGE_ORDER),
                       can_change=Scope.PREFERENCES in view.viewer.scopes)


@router.get("/cabinet/accounts/{account_id}/notifications")
async def notifications(account_id: str, view: View, pool: Pool) -> Response:
    async with pool.connection() as conn:
        if not await sees_account(conn, view.viewer, account_id):
            return view.render("missing.html", status=404, account_id=account_id)
    return await _render(view, pool, account_id)


@router.post("/cabinet/accounts/{account_id}/notifications")
async def save_notifications(account_id: str, view: View, pool: Pool) -> Response:
    form = await view.request.form()
    values = {k: [str(v) for v in form.getlist(k)] for k in form}
    view.check_csrf((values.get("csrf") or [""])[0])
    caller = view.viewer
    here = f"/cabinet/accounts/{account_id}/notifications"
    async with pool.connection() as conn:
        if not await allowed(view, conn, account_id, Scope.PREFERENCES):
            return view.render("missing.html", status=404, account_id=account_id)
        try:
            async with conn.transaction():
                before = await preferences(conn, account_id)
                await set_preferences(conn, account_id, from_form(values, before),
                                      user_id=caller.user_id, username=caller.username,
                                      if_version=(values.get("version") or [""])[0] or None)
        except DomainError as exc:
            view.flash(view.t("preferences_stale") if exc.code == "preferences-changed"
                       else exc.detail)
            return view.redirect(here)
    view.flash(view.t("preferences_saved"))
    return view.redirect(here)


@router.get("/cabinet/accounts/{account_id}/notices/{notice_id}")
async def notice_page(account_id: str, notice_id: UUID, view: View, pool: Pool) -> Response:
    """One notice. Its subscriber opening it here is proof that it reached them; an
    operator looking at it proves nothing."""
    caller = view.viewer
    async with pool.connection() as conn:
        if not await sees_account(conn, caller, account_id):
            return view.render("missing.html", status=404, account_id=account_id)
        shown = next((n for n in await cabinet_notices(conn, account_id) if n.id == notice_id),
                     None)
        if shown is None:
            return view.render("missing.html", status=404, account_id=account_id)
        if opens_for_the_subscriber(caller) and shown.opened_at is None:
            async with conn.transaction():
                await opened_in_cabinet(conn, account_id, notice_id, datetime.now(UTC))
    return view.render("notice.html", account_id=account_id, notice=shown)
