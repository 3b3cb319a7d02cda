"""Administration: users and their roles, providers (the reading submission day), and the
tariffs in force. Changes are written to the audit log with a reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response
from psycopg.rows import dict_row

from api.pages.session import Page, page
from api.state import Pool
from meterline.audit import record
from meterline.errors import DomainError
from meterline.users import Role, Scope, create_user

router = APIRouter(include_in_schema=False)

View = Annotated[Page, Depends(page)]
Text = Annotated[str, Form(max_length=1000)]

_USERS = """
SELECT u.id, u.username, u.role, u.disabled, u.created_at,
       coalesce(array_agg(g.account_id ORDER BY g.account_id)
                FILTER (WHERE g.account_id IS NOT NULL), '{}') AS accounts
  FROM users u LEFT JOIN user_accounts g ON g.user_id = u.id
 GROUP BY u.id ORDER BY u.username LIMIT 200
"""
_PROVIDERS = "SELECT id, name, inn, reading_submission_day FROM providers ORDER BY id"
_TARIFFS = """
SELECT provider_id, utility, unit, price, valid_from, valid_to FROM tariffs
 WHERE valid_to IS NULL OR valid_to > now() ORDER BY provider_id, utility, valid_from
"""


def _admin(view: Page) -> bool:
    return Scope.ADMIN in view.viewer.scopes


@router.get("/admin")
async def admin(view: View, pool: Pool) -> Response:
    if not _admin(view):
        return view.render("missing.html", status=404, account_id="")
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_USERS)
        users = await cur.fetchall()
        await cur.execute(_PROVIDERS)
        providers = await cur.fetchall()
        await cur.execute(_TARIFFS)
        tariffs = await cur.fetchall()
    return view.render("admin.html", users=users, providers=providers, tariffs=tariffs,
                       roles=[r.value for r in Role])


@router.post("/admin/users")
async def add_user(view: View, pool: Pool, username: Text, password: Text, role: Text,
                   reason: Text, csrf: Text, accounts: Text = "") -> Response:
    view.check_csrf(csrf)
    if not _admin(view):
        return view.render("missing.html", status=404, account_id="")
    granted = [a.strip() for a in accounts.split(",") if a.strip()]
    try:
        async with pool.connection() as conn, conn.transaction():
            user_id = await create_user(conn, username.strip(), password, Role(role),
                                        accounts=granted)
            if user_id is None:
                view.flash(f"{username}: exists")
                return view.redirect("/admin")
            await record(conn, user_id=view.viewer.user_id, username=view.viewer.username,
                         action="user.create", subject=f"user {username}", reason=reason,
                         after={"role": role, "accounts": granted})
        view.flash(view.t("user_created"))
    except (DomainError, ValueError) as exc:
        view.flash(getattr(exc, "detail", str(exc)))
    return view.redirect("/admin")


@router.post("/admin/users/{user_id}/role")
async def change_role(user_id: int, view: View, pool: Pool, role: Text, reason: Text,
                      csrf: Text) -> Response:
    view.check_csrf(csrf)
    if not _admin(view):
        return view.render("missing.html", status=404, account_id="")
    try:
        new = Role(role)
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT username, role FROM users WHERE id = %s FOR UPDATE",
                                     (user_id,))
            row = await cur.fetchone()
            if row is None:
                return view.render("missing.html", status=404, account_id="")
            await conn.execute("UPDATE users SET role = %s WHERE id = %s", (new, user_id))
            await record(conn, user_id=view.viewer.user_id, username=view.viewer.username,
                         action="user.role", subject=f"user {row[0]}", reason=reason,
                         before={"role": row[1]}, after={"role": new.value})
        view.flash(view.t("role_changed"))
    except (DomainError, ValueError) as exc:
        view.flash(getattr(exc, "detail", str(exc)))
    return view.redirect("/admin")
