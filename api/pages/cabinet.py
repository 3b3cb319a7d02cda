"""The subscriber's web cabinet (server-rendered, Jinja2): log in, the accounts, and on each
account the balance with days left, the relay state, a usage chart, top-up through the
payment provider, readings of the meters read by people, and documents.

Every account page goes through `api.auth.access.sees_account`, like the API: another's
account is a 404 page saying only that there is no such account.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response
from psycopg.rows import dict_row

from api.accounts import load_account
from api.auth.access import granted_accounts, sees_account
from api.auth.routes import authenticate
from api.auth.tokens import access_token, issue_refresh_token, revoke_refresh_token
from api.online_payments import start_payment
from api.pages.session import REFRESH, Page, allowed, home_of, page
from api.problems import ProblemError
from api.state import AppSettings, Pool
from api.texts import catalogue, month_name
from meterline.bill_runs import parse_period
from meterline.documents.assemble import payment_document
from meterline.documents.pdf import file_name, render_pdf
from meterline.emergency_credit import take_emergency_credit
from meterline.errors import DomainError
from meterline.meter_readings import submit
from meterline.money import kopecks
from meterline.notices import cabinet_notices
from meterline.users import ROLE_SCOPES, Scope

router = APIRouter(include_in_schema=False)

View = Annotated[Page, Depends(page)]
Text = Annotated[str, Form(max_length=200)]
CHART_DAYS = 14
FORECAST_DAYS = 7


@router.get("/")
async def root(view: View) -> Response:
    return view.redirect(home_of(view.caller.role) if view.caller else "/login")


@router.get("/login")
async def login_page(view: View) -> Response:
    if view.caller:
        return view.redirect(home_of(view.caller.role))
    return view.render("login.html")


@router.post("/login")
async def login(view: View, pool: Pool, settings: AppSettings,
                username: Annotated[str, Form(max_length=128)],
                password: Annotated[str, Form(max_length=1024)], csrf: Text) -> Response:
    view.check_csrf(csrf)
    try:
        user = await authenticate(pool, settings, username, password,
                                  view.request.client.host if view.request.client else None)
    except ProblemError as exc:
        retry = (exc.headers or {}).get("Retry-After")
        error = view.t("locked", seconds=retry) if retry else view.t("bad_login")
        return view.render("login.html", status=400 if not retry else 429, error=error,
                           username=username)
    session = uuid.uuid4()
    async with pool.connection() as conn:
        refresh = await issue_refresh_token(conn, settings, user.id, session)
    view.sign_in(settings, access_token(settings, user, ROLE_SCOPES[user.role], session),
                 refresh)
    return view.redirect(home_of(user.role))


@router.post("/logout")
async def logout(view: View, pool: Pool, csrf: Text) -> Response:
    view.check_csrf(csrf)
    refresh = view.request.cookies.get(REFRESH)
    if refresh:
        async with pool.connection() as conn:
            await revoke_refresh_token(conn, refresh)
    view.sign_out()
    return view.redirect("/login")


@router.get("/cabinet")
async def cabinet(view: View, pool: Pool) -> Response:
    caller = view.viewer
    async with pool.connection() as conn:
        accounts = await granted_accounts(conn, caller)
    if accounts is None:
        return view.redirect(home_of(caller.role))
    if len(accounts) == 1:
        return view.redirect(f"/cabinet/accounts/{accounts[0]}")
    return view.render("cabinet.html", accounts=accounts)


_SPENT = """
SELECT provider_id, sum(amount) FROM charges
 WHERE account_id = %s AND interval_end > now() - make_interval(days => %s)
 GROUP BY provider_id
"""

_PEOPLE_METERS = """
SELECT m.id, m.utility, r.unit, last.value, last.ts
  FROM meters m
  JOIN registers r ON r.meter_id = m.id
  LEFT JOIN LATERAL (SELECT value, ts FROM readings x WHERE x.meter_id = m.id
                      ORDER BY ts DESC LIMIT 1) last ON true
 WHERE m.account_id = %s AND m.gateway_id IS NULL
 ORDER BY m.id
"""

_DOCUMENTS = """
SELECT DISTINCT period FROM bill_lines WHERE account_id = %s ORDER BY period DESC LIMIT 12
"""

_EVENTS = """
SELECT occurred_at, kind, meter_id FROM events WHERE account_id = %s ORDER BY id DESC LIMIT 10
"""

# every channel's payments (online, bank registries, cash desks), as received
_PAYMENT_HISTORY = """
SELECT paid_at, channel, amount, period FROM payments
 WHERE account_id = %s ORDER BY paid_at DESC LIMIT 24
"""

# what the account's contract offers in emergency credit, per provider, and what is owed of
# one taken (repaid from top-ups): read for the page; taking it is the kernel's
# (`meterline.emergency_credit.take_emergency_credit`), with every rule checked there
_EMERGENCY = """
SELECT b.provider_id, b.amount AS balance, p.emergency_credit AS amount, p.recovery_percent,
       coalesce((SELECT -sum(r.amount) FROM postings r
                  WHERE r.book = 'recovery' AND r.account_id = b.account_id
                    AND r.provider_id = b.provider_id), 0) AS owed
  FROM accounts a
  JOIN contract_types c ON c.code = a.contract_type
  JOIN disconnection_policies p ON p.code = c.policy
  JOIN balances b ON b.account_id = a.id
 WHERE a.id = %s AND a.billing_mode = 'prepaid' AND p.emergency_credit > 0
 ORDER BY b.provider_id
"""

_PAYMENTS = """
SELECT id, amount, status, created_at FROM online_payments
 WHERE account_id = %s ORDER BY created_at DESC LIMIT 5
"""


def days_left(balance: Decimal, spent: Decimal | None) -> int | None:
    """Days the balance lasts at the last week's average daily spend (None: no spend yet)."""
    if not spent or spent <= 0:
        return None
    return max(0, int(balance / (spent / FORECAST_DAYS)))


# money charged per UTC day (an interval counts on the day of its last instant)
_DAILY_SPEND = """
SELECT date_trunc('day', interval_end - interval '1 microsecond', 'UTC')::date, sum(amount)
  FROM charges
 WHERE account_id = %s AND interval_end > %s AND interval_end <= %s
 GROUP BY 1 ORDER BY 1
"""


def chart(daily: list[tuple[Any, Decimal]]) -> list[dict[str, Any]]:
    """Daily money of all the account's meters: bars for an inline SVG chart."""
    by_day = {day.isoformat(): amount for day, amount in daily}
    top = max(by_day.values(), default=Decimal(0))
    return [{"day": day, "amount": kopecks(amount),
             "height": 0 if top == 0 else float(amount / top) * 100}
            for day, amount in sorted(by_day.items())]


async def _visible(view: Page, conn: psycopg.AsyncConnection[Any], account_id: str) -> bool:
    return await sees_account(conn, view.viewer, account_id)


@router.get("/cabinet/accounts/{account_id}")
async def account_page(account_id: str, view: View, pool: Pool) -> Response:
    async with pool.connection() as conn:
        if not await _visible(view, conn, account_id):
            return view.render("missing.html", status=404, account_id=account_id)
        account = await load_account(conn, account_id)
        assert account is not None
        cur = await conn.execute(_SPENT, (account_id, FORECAST_DAYS))
        spent: dict[str, Decimal] = {p: a for p, a in await cur.fetchall()}
        end = datetime.now(UTC)
        cur = await conn.execute(_DAILY_SPEND,
                                 (account_id, end - timedelta(days=CHART_DAYS), end))
        daily = await cur.fetchall()
        dcur = conn.cursor(row_factory=dict_row)
        await dcur.execute(_PEOPLE_METERS, (account_id,))
        people_meters = await dcur.fetchall()
        await dcur.execute(_PAYMENTS, (account_id,))
        payments = await dcur.fetchall()
        await dcur.execute(_EMERGENCY, (account_id,))
        emergency = await dcur.fetchall()
        await dcur.execute(_PAYMENT_HISTORY, (account_id,))
        history = await dcur.fetchall()
        await dcur.execute(_EVENTS, (account_id,))
        events = await dcur.fetchall()
        cur = await conn.execute(_DOCUMENTS, (account_id,))
        documents = [period.strftime("%Y-%m") for (period,) in await cur.fetchall()]
        unopened = sum(n.opened_at is None for n in await cabinet_notices(conn, account_id))
    offers = {e["provider_id"]: e for e in emergency}
    balances = [{"provider": b.provider_name, "provider_id": b.provider_id,
                 "amount": kopecks(b.amount),
                 "days": days_left(b.amount, spent.get(b.provider_id)),
                 "emergency": offers.get(b.provider_id)}
                for b in account.balances]
    # a postpaid account pays what it owes, split over its bill; a prepaid one tops up a
    # provider's balance (which one, when it buys from several)
    owed = -sum((b.amount for b in account.balances if b.amount < 0), Decimal(0))
    return view.render("account.html", account=account, balances=balances,
                       bars=chart(daily), people_meters=people_meters,
                       payments=payments, history=history, events=events, documents=documents,
                       can_pay=Scope.PAYMENTS in view.viewer.scopes,
                       can_export=Scope.USAGE_EXPORT in view.viewer.scopes,
                       can_keys=Scope.KEYS in view.viewer.scopes,
                       postpaid=account.billing_mode == "postpaid",
                       owed=kopecks(owed) if owed > 0 else None, unopened=unopened)


@router.post("/cabinet/accounts/{account_id}/topup")
async def top_up(account_id: str, view: View, pool: Pool, settings: AppSettings,
                 amount: Text, csrf: Text, provider_id: Text = "",
                 period: Text = "") -> Response:
    """Pay through the payment provider: a prepaid account tops up a provider's balance, a
    postpaid account pays its bill (a month of it, if chosen)."""
    view.check_csrf(csrf)
    caller = view.viewer
    async with pool.connection() as conn:
        if not await allowed(view, conn, account_id, Scope.PAYMENTS):
            return view.render("missing.html", status=404, account_id=account_id)
    try:
        value = Decimal(amount.replace(",", ".").strip())
        if value <= 0 or value > settings.max_topup or value != kopecks(value):
            raise InvalidOperation
    except InvalidOperation:
        view.flash(view.t("amount") + ": " + amount)
        return view.redirect(f"/cabinet/accounts/{account_id}")
    back = f"{settings.api_base_url}/cabinet/accounts/{account_id}"
    try:
        row, _ = await start_payment(
            pool, view.request.app.state.acquirer, settings, account_id, value,
            provider_id or None, f"web-{uuid.uuid4()}", caller.user_id, back,
            parse_period(period) if period else None)
    except DomainError as exc:
        view.flash(exc.detail)
        return view.redirect(f"/cabinet/accounts/{account_id}")
    return view.redirect(row["confirmation_url"])


@router.post("/cabinet/accounts/{account_id}/emergency-credit")
async def emergency_credit(account_id: str, view: View, pool: Pool, provider_id: Text,
                           csrf: Text) -> Response:
    """Take the emergency credit the contract offers, where the balance has run out."""
    view.check_csrf(csrf)
    async with pool.connection() as conn:
        if not await allowed(view, conn, account_id, Scope.PAYMENTS):
            return view.render("missing.html", status=404, account_id=account_id)
        try:
            async with conn.transaction():
                taken = await take_emergency_credit(conn, account_id, provider_id or None)
        except DomainError as exc:
            view.flash(exc.detail)
            return view.redirect(f"/cabinet/accounts/{account_id}")
    view.flash(view.t("emergency_taken", amount=f"{kopecks(taken.amount):.2f}",
                      balance=f"{kopecks(taken.balance):.2f}"))
    return view.redirect(f"/cabinet/accounts/{account_id}")


@router.post("/cabinet/accounts/{account_id}/readings")
async def submit_reading(account_id: str, view: View, pool: Pool,
                         meter_id: Text, value: Text, csrf: Text) -> Response:
    view.check_csrf(csrf)
    caller = view.viewer
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM meters WHERE id = %s AND account_id = %s",
                                 (meter_id, account_id))
        if (not await allowed(view, conn, account_id, Scope.READINGS)
                or await cur.fetchone() is None):
            return view.render("missing.html", status=404, account_id=account_id)
        try:
            number = Decimal(value.replace(",", ".").strip())
            async with conn.transaction():
                accepted = await submit(conn, meter_id, number,
                                        "operator" if caller.sees_every_account else "web")
        except (InvalidOperation, DomainError) as exc:
            view.flash(view.t("reading_refused", reason=_why(view, exc, value)))
            return view.redirect(f"/cabinet/accounts/{account_id}#readings")
    key = "reading_late" if accepted.late else "reading_accepted"
    view.flash(view.t(key, value=format(number.normalize(), "f"), day=accepted.submission_day,
                      month=month_name(accepted.counts_for, view.lang)))
    return view.redirect(f"/cabinet/accounts/{account_id}#readings")


def _why(view: Page, exc: Exception, typed: str) -> str:
    """Why a reading is refused, in the page's language (the kernel's words in English)."""
    if isinstance(exc, DomainError):
        reasons: dict[str, str] = catalogue(view.lang)["refusal"]
        return reasons.get(exc.code, exc.detail)
    return f"{typed!r} is not a number"


@router.get("/cabinet/accounts/{account_id}/statement.csv")
async def statement(account_id: str, view: View, pool: Pool) -> Response:
    """The account's movements of money over the last 90 days, one line each."""
    async with pool.connection() as conn:
        if not await _visible(view, conn, account_id):
            return view.render("missing.html", status=404, account_id=account_id)
        cur = await conn.execute(
            "SELECT booked_at, provider_id, kind, amount, entry_key FROM ledger"
            " WHERE account_id = %s AND booked_at > now() - interval '90 days'"
            " ORDER BY booked_at, entry_key", (account_id,))
        rows = await cur.fetchall()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["booked_at", "provider", "kind", "amount", "key"])
    for booked_at, provider, kind, amount, key in rows:
        writer.writerow([booked_at.isoformat(), provider, kind, format(kopecks(amount), "f"),
                         key])
    return view.finish(Response(
        out.getvalue(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="statement-{account_id}.csv"'}))


@router.get("/cabinet/accounts/{account_id}/documents/{period}.pdf")
async def payment_document_pdf(account_id: str, period: str, view: View,
                               pool: Pool) -> Response:
    """The single payment document of a billed month, as the bill run stored it."""
    async with pool.connection() as conn:
        if not await _visible(view, conn, account_id):
            return view.render("missing.html", status=404, account_id=account_id)
        try:
            wanted = parse_period(period)
            doc = await payment_document(conn, wanted, account_id)
        except DomainError:
            return view.render("missing.html", status=404, account_id=account_id)
    pdf = await asyncio.to_thread(render_pdf, doc)
    return view.finish(Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{file_name(doc)}"'}))

