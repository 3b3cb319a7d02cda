"""Online payments through the acquirer (the payment provider): prepaid accounts top up a
provider's balance, postpaid accounts pay their bill (`meterline.online_payments` decides).

1. ``POST /accounts/{id}/online-payments`` (scope ``payments:create``, header
   ``Idempotency-Key``): records a pending payment, asks the acquirer for it (its own
   Idempotence-Key is our payment id, so a retry never makes a second one) and answers the
   acquirer's ``confirmation_url`` and a payment QR of it (``…/qr.png``).
2. The payer pays on the acquirer's page (or by the QR).
3. ``POST /acquirer/webhook``: the acquirer's event, signed with HMAC (`meterline.signatures`):
   the signature is checked over the exact bytes, its time within ``webhook_tolerance``, and
   the event id recorded, so an event delivered twice (or replayed) is taken once. A
   ``payment.succeeded`` credits the account (`meterline.online_payments.credit`: a top-up
   of the provider's wallet when prepaid, a payment allocated over the bill when postpaid),
   keyed by the payment, in the same transaction that marks the payment paid: a payment
   credits once, whatever arrives how often. A prepaid meter whose balance turns positive is
   reconnected in that transaction too.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import httpx
import numpy as np
import zxingcpp
from fastapi import APIRouter, Depends, Header, Path, Request, Response
from PIL import Image
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, ValidationError

from api.amounts import Kopecks
from api.auth.access import ReadableAccount, account_with
from api.auth.callers import AnyCaller
from api.billing import Month, month
from api.problems import ProblemError, problem_responses
from api.state import AppSettings, Pool
from api.topups import TopupRequest, exact_body
from meterline.contracts import ProviderId, Timestamp
from meterline.errors import Invalid, NotFound
from meterline.online_payments import credit, destination, paid_shares
from meterline.settings import Settings
from meterline.signatures import HEADER, verify
from meterline.users import Scope

log = logging.getLogger("meterline.api")

router = APIRouter(tags=["online payments"])

PayingAccount = Annotated[str, Depends(account_with(Scope.PAYMENTS))]
PaymentPath = Annotated[UUID, Path(description="The online payment's id.")]


class OnlinePaymentRequest(TopupRequest):
    provider_id: ProviderId | None = Field(
        None, description="Prepaid accounts: the provider whose balance to top up; may be "
        "left out when the account buys from one provider only. Postpaid accounts name none.",
    )
    period: Month | None = Field(
        None, description="Postpaid accounts: the month the payment pays first (YYYY-MM); "
        "without it the earliest debt is paid first. A prepaid account's top-up names none.",
        examples=["2026-03"],
    )
    return_url: str | None = Field(
        None, max_length=2000, pattern=r"^https?://[^\x00-\x20]*$",
        description="Where the acquirer sends the payer back after paying; must be on the "
        "API's own public URL (no open redirects). Default: none.",
    )


class PaidShare(BaseModel):
    provider_id: str
    service: str | None = Field(description="The service paid (postpaid); null for a "
                                "prepaid top-up of the wallet.")
    period: str | None = Field(description="The month paid (YYYY-MM), postpaid only.",
                               examples=["2026-03"])
    amount: Kopecks


class OnlinePayment(BaseModel):
    id: UUID
    account_id: str
    provider_id: str | None = Field(description="The provider whose balance a prepaid "
                                    "top-up credits; null for a postpaid account's payment, "
                                    "which is split over its bill.")
    period: str | None = Field(description="The month a postpaid payment pays first "
                               "(YYYY-MM), when the payer named one.")
    amount: Kopecks
    status: Literal["pending", "succeeded", "canceled"]
    confirmation_url: str | None = Field(description="The acquirer's page where the payer "
                                         "pays; null until the acquirer answered.")
    qr_url: str = Field(description="A PNG payment QR code of the confirmation URL.")
    created_at: Timestamp
    paid_at: Timestamp | None
    shares: list[PaidShare] | None = Field(
        None, description="Once paid: what it credited, per provider (and, postpaid, per "
        "service and month as the payment was allocated). Only on a single payment's GET.")


_INSERT = """
INSERT INTO online_payments (account_id, provider_id, period, amount, idempotency_key,
                             user_id, return_url)
VALUES (%(account)s, %(provider)s, %(period)s, %(amount)s, %(key)s, %(user)s,
        %(return_url)s)
ON CONFLICT (account_id, idempotency_key) DO NOTHING
RETURNING *
"""

_BY_KEY = "SELECT * FROM online_payments WHERE account_id = %s AND idempotency_key = %s"
_BY_ID = "SELECT * FROM online_payments WHERE account_id = %s AND id = %s"


def _month(day: date | None) -> str | None:
    return None if day is None else day.strftime("%Y-%m")


def _view(row: dict[str, Any], shares: list[PaidShare] | None = None) -> OnlinePayment:
    qr = f"/accounts/{row['account_id']}/online-payments/{row['id']}/qr.png"
    return OnlinePayment.model_validate({**row, "period": _month(row["period"]), "qr_url": qr,
                                         "shares": shares})


async def _ask_acquirer(
    acquirer: httpx.AsyncClient, settings: Settings, row: dict[str, Any]
) -> dict[str, Any]:
    """Create the payment at the acquirer (idempotent on our payment id)."""
    what = "Top-up" if row["provider_id"] else "Payment"
    body = {
        "amount": f"{row['amount']:.2f}", "currency": "RUB",
        "description": f"{what} of account {row['account_id']}",
        "metadata": {"online_payment_id": str(row["id"]), "account_id": row["account_id"]},
        "return_url": row["return_url"],
        "notification_url": f"{settings.api_base_url}/acquirer/webhook",
    }
    try:
        reply = await acquirer.post("/v1/payments", json=body,
                                    headers={"Idempotence-Key": str(row["id"])})
        reply.raise_for_status()
        answer: dict[str, Any] = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("acquirer refused or unreachable for payment %s: %s", row["id"], exc)
        raise ProblemError(502, "The payment provider did not answer; try again with the same "
                           "Idempotency-Key.", slug="acquirer-unavailable",
                           title="Payment provider unavailable") from exc
    return answer


async def _acquirer(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.acquirer
    return client


Acquirer = Annotated[httpx.AsyncClient, Depends(_acquirer)]


async def start_payment(
    pool: Pool, acquirer: httpx.AsyncClient, settings: Settings, account_id: str,
    amount: Decimal, provider_id: str | None, idempotency_key: str, user_id: int | None,
    return_url: str | None, period: date | None = None,
) -> tuple[dict[str, Any], bool]:
    """(the payment row, whether the key was used before): recorded, then asked of the
    acquirer unless it already answered. The web cabinet's payment form calls this too."""
    if return_url and not return_url.startswith(settings.api_base_url + "/"):
        raise Invalid(f"return_url must be under {settings.api_base_url}",
                      field=["body", "return_url"])
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        goes = await destination(conn, account_id, provider_id, period)
        await cur.execute(_INSERT, {"account": account_id, "provider": goes.provider_id,
                                    "period": goes.period, "amount": amount,
                                    "key": idempotency_key, "user": user_id,
                                    "return_url": return_url})
        row = await cur.fetchone()
        replayed = row is None
        if row is None:
            await cur.execute(_BY_KEY, (account_id, idempotency_key))
            row = await cur.fetchone()
            assert row is not None
            if (row["amount"], row["provider_id"], row["period"]) != (
                    amount, goes.provider_id, goes.period):
                raise ProblemError(409, f"Idempotency-Key {idempotency_key!r} was already used "
                                   "for another payment on this account; use a new key.",
                                   slug="idempotency-key-reused", title="Idempotency-Key reused")
        await conn.commit()  # the payment exists before the acquirer hears of it
        if row["acquirer_payment_id"] is None:
            answer = await _ask_acquirer(acquirer, settings, row)
            await cur.execute(
                "UPDATE online_payments SET acquirer_payment_id = %s, confirmation_url = %s"
                " WHERE id = %s RETURNING *",
                (answer["id"], answer["confirmation_url"], row["id"]))
            row = await cur.fetchone()
            assert row is not None
    return row, replayed


@router.post(
    "/accounts/{account_id}/online-payments", status_code=201, response_model=OnlinePayment,
    summary="Pay or top up through the payment provider",
    responses={200: {"model": OnlinePayment, "description": "Replay of the same "
                     "Idempotency-Key: the payment made then."},
               **problem_responses(401, 403, 404, 409, 422, 502)},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": OnlinePaymentRequest.model_json_schema()}}}},
)
async def create_online_payment(
    account_id: PayingAccount,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1,
                                           max_length=255)],
    body: Annotated[OnlinePaymentRequest, Depends(exact_body(OnlinePaymentRequest))],
    caller: AnyCaller, pool: Pool, settings: AppSettings, acquirer: Acquirer,
    response: Response,
) -> OnlinePayment:
    """A pending payment of `amount` roubles: pay it at `confirmation_url` (or by the QR at
    `qr_url`); the account is credited when the payment provider confirms it.

    - A **prepaid** account is topped up: the balance with `provider_id` (which may be left
      out when the account buys from one provider) rises by `amount`. `period` is refused.
    - A **postpaid** account's payment is split over its bill (DOMAIN §2): the `period` named
      first, else the earliest debt, then penalties, then an advance. `provider_id` is refused
      (422): the payer cannot be made to pay one provider first.

    The same Idempotency-Key returns the same payment (200); with another amount, provider or
    period, 409."""
    row, replayed = await start_payment(
        pool, acquirer, settings, account_id, body.amount, body.provider_id, idempotency_key,
        caller.user_id, body.return_url, month(body.period) if body.period else None)
    if replayed:
        response.status_code = 200
    return _view(row)


async def _payment(pool: Pool, account_id: str, payment_id: UUID) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_BY_ID, (account_id, payment_id))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No online payment {payment_id}")
    return row


@router.get("/accounts/{account_id}/online-payments/{payment_id}",
            response_model=OnlinePayment, summary="An online payment and its status",
            responses=problem_responses(401, 403, 404, 422))
async def get_online_payment(account_id: ReadableAccount, payment_id: PaymentPath,
                             pool: Pool) -> OnlinePayment:
    """The payment's status and, once paid, what it credited (`shares`)."""
    row = await _payment(pool, account_id, payment_id)
    shares = None
    if row["status"] == "succeeded":
        async with pool.connection() as conn:
            paid = await paid_shares(conn, payment_id, account_id)
        shares = [PaidShare(provider_id=s.provider_id, service=s.service,
                            period=_month(s.period), amount=s.amount) for s in paid]
    return _view(row, shares)


@router.get("/accounts/{account_id}/online-payments/{payment_id}/qr.png",
            summary="Payment QR code of an online payment", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "A QR code of the "
                             "confirmation URL."}, **problem_responses(401, 403, 404, 422)})
async def online_payment_qr(account_id: ReadableAccount, payment_id: PaymentPath,
                            pool: Pool) -> Response:
    row = await _payment(pool, account_id, payment_id)
    if row["confirmation_url"] is None:
        raise NotFound(f"Online payment {payment_id} has no confirmation URL yet")
    code = zxingcpp.create_barcode(row["confirmation_url"].encode(),
                                   zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    out = io.BytesIO()
    Image.fromarray(np.asarray(code.to_image(scale=6, add_quiet_zones=True))).save(out, "PNG")
    return Response(out.getvalue(), media_type="image/png")


# --- the acquirer's webhook

class AcquirerPayment(BaseModel):
    id: str
    status: str
    amount: Decimal
    metadata: dict[str, str] = {}


class AcquirerEvent(BaseModel):
    id: str = Field(min_length=1, max_length=100)
    type: Literal["payment.succeeded", "payment.canceled"]
    payment: AcquirerPayment


class WebhookAnswer(BaseModel):
    event_id: str
    taken: bool = Field(description="False when this event was taken before (nothing done).")
    payment_status: Literal["pending", "succeeded", "canceled"] | None = None


_TAKE_EVENT = """
INSERT INTO acquirer_events (event_id, kind) VALUES (%s, %s)
ON CONFLICT (event_id) DO NOTHING RETURNING event_id
"""

_LOCK_PAYMENT = "SELECT * FROM online_payments WHERE acquirer_payment_id = %s FOR UPDATE"


@router.post("/acquirer/webhook", response_model=WebhookAnswer,
             summary="The payment provider's signed events",
             responses=problem_responses(401, 404, 422))
async def acquirer_webhook(
    request: Request, pool: Pool, settings: AppSettings,
    signature: Annotated[str | None, Header(alias=HEADER, description="`t=<unix time>,"
                                            "v1=<hex HMAC-SHA256 of '<t>.' + body>`")] = None,
) -> WebhookAnswer:
    """Called by the acquirer, not by people: authenticated by its HMAC signature (401 when
    missing, wrong, or more than `webhook_tolerance` seconds off). An event id seen before is
    answered 200 with `taken: false` and changes nothing."""
    raw = await request.body()
    try:
        verify(settings.acquirer_webhook_secret.get_secret_value(), raw, signature,
               settings.webhook_tolerance)
    except Invalid as exc:  # the signature is the acquirer's credential
        raise ProblemError(401, exc.detail, slug=exc.code, title="Not authenticated") from exc
    try:
        event = AcquirerEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise Invalid(f"not an acquirer event: {exc.errors()[0]['msg']}") from exc
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_LOCK_PAYMENT, (event.payment.id,))
        payment = await cur.fetchone()
        if payment is None:
            raise NotFound(f"No online payment for acquirer payment {event.payment.id}")
        await cur.execute(_TAKE_EVENT, (event.id, event.type))
        if await cur.fetchone() is None:
            return WebhookAnswer(event_id=event.id, taken=False,
                                 payment_status=payment["status"])
        await cur.execute("UPDATE acquirer_events SET payment_id = %s WHERE event_id = %s",
                          (payment["id"], event.id))
        status = payment["status"]
        if status == "pending" and event.type == "payment.succeeded":
            if event.payment.amount != payment["amount"]:
                raise Invalid(f"acquirer says {event.payment.amount}, payment {payment['id']} "
                              f"is for {payment['amount']:.2f}", field=["body", "payment"])
            paid_at = datetime.now(UTC)
            await credit(conn, payment["id"], payment["account_id"], payment["amount"],
                         payment["provider_id"], payment["period"], paid_at)
            status = "succeeded"
            await cur.execute("UPDATE online_payments SET status = 'succeeded', paid_at = %s"
                              " WHERE id = %s", (paid_at, payment["id"]))
        elif status == "pending" and event.type == "payment.canceled":
            status = "canceled"
            await cur.execute("UPDATE online_payments SET status = 'canceled' WHERE id = %s",
                              (payment["id"],))
    log.info("acquirer event %s (%s): online payment %s of account %s is %s", event.id,
             event.type, payment["id"], payment["account_id"], status)
    return WebhookAnswer(event_id=event.id, taken=True, payment_status=status)
