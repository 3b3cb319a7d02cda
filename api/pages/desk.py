"""The operator's desk: find an account by address parts, account number, meter serial or
holder's name; the account card (meters, balances, ledger, readings, relay commands, online
payments, audit log); reading corrections with a mandatory reason."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response
from psycopg.rows import dict_row

from api.accounts import load_account
from api.desk import (
    AdjustmentRequest,
    SearchParts,
    book_adjustment,
    correct_reading,
    search_accounts,
)
from api.pages.session import Page, page
from api.state import Pool
from api.texts import catalogue
from meterline.bill_runs import Selection, parse_period, queue
from meterline.errors import DomainError
from meterline.meter_readings import version_of
from meterline.units import Service
from meterline.users import Scope

router = APIRouter(include_in_schema=False)

View = Annotated[Page, Depends(page)]
Text = Annotated[str, Form(max_length=1000)]


def _desk(view: Page) -> bool:
    return Scope.DESK in view.viewer.scopes


@router.get("/desk")
async def desk(view: View, pool: Pool, region: str = "", city: str = "", street: str = "",
               house: str = "", apartment: str = "", account: str = "", meter: str = "",
               holder: str = "") -> Response:
    if not _desk(view):
        return view.render("missing.html", status=404, account_id="")
    parts = SearchParts(region=region[:100], city=city[:100], street=street[:100],
                        house=house[:100], apartment=apartment[:100], account=account[:100],
                        meter=meter[:100], holder=holder[:100])
    async with pool.connection() as conn:
        found = await search_accounts(conn, parts)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_RECENT_RUNS)
        runs = await cur.fetchall()
    running = any(r["status"] in ("queued", "running") for r in runs)
    return view.render("desk.html", parts=parts, found=found, searched=parts.given(),
                       runs=runs, refresh=running)


_RECENT_RUNS = """
SELECT id, to_char(period, 'YYYY-MM') AS period, status, accounts, billed, started_by,
       started_at
  FROM bill_runs ORDER BY id DESC LIMIT 10
"""


@router.post("/desk/billruns")
async def start_bill_run(view: View, pool: Pool, period: Text, csrf: Text,
                         region: Text = "") -> Response:
    """Queue a bill run (the scheduler service makes it); the desk shows its progress."""
    view.check_csrf(csrf)
    if not _desk(view):
        return view.render("missing.html", status=404, account_id="")
    try:
        selection = Selection(region=region.strip() or None)
        async with pool.connection() as conn, conn.transaction():
            await queue(conn, parse_period(period.strip()), selection,
                        f"desk:{view.viewer.username}")
        view.flash(view.t("bill_run_queued"))
    except DomainError as exc:
        view.flash(exc.detail)
    # no #fragment: the page's self-refresh must load it again, not scroll within it
    return view.redirect("/desk")


_CARD = {
    "ledger": "SELECT booked_at, provider_id, kind, amount, entry_key FROM ledger"
              " WHERE account_id = %s ORDER BY booked_at DESC LIMIT 30",
    "readings": "SELECT r.meter_id, r.register, r.ts, r.value, r.source FROM readings r"
                " JOIN meters m ON m.id = r.meter_id WHERE m.account_id = %s"
                " ORDER BY r.ts DESC LIMIT 30",
    "commands": "SELECT c.meter_id, c.action, c.reason, c.status, c.requested_at"
                " FROM relay_commands c JOIN meters m ON m.id = c.meter_id"
                " WHERE m.account_id = %s ORDER BY c.seq DESC LIMIT 20",
    "payments": "SELECT created_at, amount, status FROM online_payments WHERE account_id = %s"
                " ORDER BY created_at DESC LIMIT 10",
    # notices and how far each got: the operator delivers an undeliverable one otherwise
    "notices": "SELECT n.created_at, n.kind, n.status, n.delivered_at, n.delivered_by,"
               " (SELECT string_agg(a.channel || ': ' || a.status, ', ' ORDER BY a.created_at)"
               "    FROM notice_attempts a WHERE a.notice_id = n.id) AS attempts"
               " FROM notices n WHERE n.account_id = %s ORDER BY n.created_at DESC LIMIT 20",
    "audit": "SELECT at, username, action, subject, reason, before, after FROM audit_log"
             " WHERE account_id = %s ORDER BY at DESC LIMIT 30",
    "events": "SELECT occurred_at, kind, meter_id, payload FROM events WHERE account_id = %s"
              " ORDER BY id DESC LIMIT 20",
}


@router.get("/desk/accounts/{account_id}")
async def card(account_id: str, view: View, pool: Pool) -> Response:
    if not _desk(view):
        return view.render("missing.html", status=404, account_id=account_id)
    async with pool.connection() as conn:
        account = await load_account(conn, account_id)
        if account is None:
            return view.render("missing.html", status=404, account_id=account_id)
        cur = conn.cursor(row_factory=dict_row)
        sections: dict[str, list[dict[str, Any]]] = {}
        for name, query in _CARD.items():
            await cur.execute(query, (account_id,))
            sections[name] = await cur.fetchall()
    for reading in sections["readings"]:  # the form corrects the version the operator saw
        reading["version"] = version_of(reading["value"], reading["source"])
    return view.render("card.html", account=account, ledger=sections["ledger"],
                       readings=sections["readings"], commands=sections["commands"],
                       payments=sections["payments"], audit=sections["audit"],
                       events=sections["events"], notices=sections["notices"],
                       services=[s.value for s in Service],
                       adjustment_id=uuid.uuid4())


@router.post("/desk/accounts/{account_id}/corrections")
async def correction(account_id: str, view: View, pool: Pool, meter_id: Text,
                     reading_register: Text, ts: Text, version: Text, value: Text,
                     reason: Text, csrf: Text) -> Response:
    view.check_csrf(csrf)
    if not _desk(view):
        return view.render("missing.html", status=404, account_id=account_id)
    try:
        number = Decimal(value.replace(",", ".").strip())
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT 1 FROM meters WHERE id = %s AND account_id = %s",
                                     (meter_id, account_id))
            if await cur.fetchone() is None:
                return view.render("missing.html", status=404, account_id=account_id)
            await correct_reading(conn, view.viewer, meter_id, reading_register,
                                  datetime.fromisoformat(ts), number, reason, version)
        view.flash(view.t("corrected"))
    except (InvalidOperation, ValueError) as exc:
        view.flash(f"{view.t('new_value')}: {exc}")
    except DomainError as exc:
        view.flash(catalogue(view.lang)["refusal"].get(exc.code, exc.detail))
    return view.redirect(f"/desk/accounts/{account_id}")


@router.post("/desk/accounts/{account_id}/adjustments")
async def adjustment(account_id: str, view: View, pool: Pool, adjustment_id: Text,
                     provider_id: Text, service: Text, amount: Text, reason: Text,
                     csrf: Text) -> Response:
    view.check_csrf(csrf)
    if not _desk(view):
        return view.render("missing.html", status=404, account_id=account_id)
    try:
        body = AdjustmentRequest(id=uuid.UUID(adjustment_id), provider_id=provider_id,
                                 service=Service(service),
                                 amount=Decimal(amount.replace(",", ".").replace("\u2212", "-")),
                                 reason=reason)
        async with pool.connection() as conn, conn.transaction():
            await book_adjustment(conn, view.viewer, account_id, body)
        view.flash(view.t("adjusted"))
    except (InvalidOperation, ValueError) as exc:
        view.flash(f"{view.t('amount')}: {exc}")
    except DomainError as exc:
        view.flash(exc.detail)
    return view.redirect(f"/desk/accounts/{account_id}")

