"""A local test acquirer (payment provider) speaking, over real HTTP, the protocol meterline's
online top-ups use — what the tests and the demo pay through.

- ``POST /v1/payments`` (HTTP Basic: shop id and API key; ``Idempotence-Key`` header): a
  payment of ``amount`` RUB; answers its id and the ``confirmation_url`` where the payer pays.
  The same Idempotence-Key returns the same payment.
- ``GET /v1/payments/{id}``: the payment and its status.
- ``GET /pay/{id}``: the confirmation page a payer sees (Pay / Cancel buttons).
- ``POST /pay/{id}/confirm`` or ``/cancel``: the payer's decision. The acquirer then sends the
  webhook (``payment.succeeded`` or ``payment.canceled``) to the payment's
  ``notification_url``, signed (`meterline.signatures`), trying up to three times, and sends
  the payer back to ``return_url``.
- ``POST /v1/payments/{id}/redeliver``: send the last event again, same event id, freshly
  signed (what an acquirer does when it is not sure the first delivery arrived).

Payments live in memory: a restarted test acquirer has forgotten them.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field

from meterline.settings import Settings
from meterline.signatures import HEADER, sign

log = logging.getLogger("meterline.acquirer")

DELIVERY_ATTEMPTS = 3
_basic = HTTPBasic()  # the shop authenticates with its id and API key


class PaymentRequest(BaseModel):
    amount: Decimal = Field(gt=0, decimal_places=2)
    currency: Literal["RUB"] = "RUB"
    description: str = Field("", max_length=250)
    metadata: dict[str, str] = Field(default_factory=dict)
    return_url: str | None = None
    notification_url: str


@dataclass
class Payment:
    id: str
    request: PaymentRequest
    status: Literal["pending", "succeeded", "canceled"] = "pending"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_event: dict[str, Any] | None = None

    def view(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "amount": f"{self.request.amount:.2f}",
            "currency": self.request.currency, "description": self.request.description,
            "metadata": self.request.metadata, "created_at": self.created_at.isoformat(),
            "confirmation_url": f"{base_url}/pay/{self.id}",
        }


def create_acquirer_app(settings: Settings, base_url: str | None = None) -> FastAPI:
    """The test acquirer; ``base_url`` is where payers reach it (default: acquirer_url)."""
    public = (base_url or settings.acquirer_base_url).rstrip("/")
    payments: dict[str, Payment] = {}
    by_key: dict[str, str] = {}
    app = FastAPI(title="meterline test acquirer", docs_url=None, redoc_url=None)
    def merchant(credentials: Annotated[HTTPBasicCredentials, Depends(_basic)]) -> None:
        if not (secrets.compare_digest(credentials.username, settings.acquirer_shop_id)
                and secrets.compare_digest(credentials.password,
                                           settings.acquirer_api_key.get_secret_value())):
            raise HTTPException(401, "unknown shop or wrong API key")

    def find(payment_id: str) -> Payment:
        payment = payments.get(payment_id)
        if payment is None:
            raise HTTPException(404, f"no payment {payment_id}")
        return payment

    async def deliver(payment: Payment) -> int | None:
        """POST the payment's last event, signed; the receiver's status (None: unreachable)."""
        assert payment.last_event is not None
        body = json.dumps(payment.last_event).encode()
        status: int | None = None
        async with httpx.AsyncClient(timeout=10) as http:
            for attempt in range(1, DELIVERY_ATTEMPTS + 1):
                headers = {HEADER: sign(settings.acquirer_webhook_secret.get_secret_value(),
                                        body), "Content-Type": "application/json"}
                try:
                    reply = await http.post(payment.request.notification_url, content=body,
                                            headers=headers)
                    status = reply.status_code
                except httpx.HTTPError as exc:
                    log.warning("webhook %s attempt %d failed: %s",
                                payment.last_event["id"], attempt, exc)
                    continue
                if reply.is_success:
                    break
                log.warning("webhook %s attempt %d answered %d: %s", payment.last_event["id"],
                            attempt, reply.status_code, reply.text[:200])
        return status

    async def decide(payment: Payment, status: Literal["succeeded", "canceled"]) -> None:
        if payment.status != "pending":
            return
        payment.status = status
        payment.last_event = {
            "id": f"evt_{secrets.token_hex(12)}", "type": f"payment.{status}",
            "created_at": datetime.now(UTC).isoformat(), "payment": payment.view(public),
        }
        await deliver(payment)

    @app.post("/v1/payments", dependencies=[Depends(merchant)])
    async def create(body: PaymentRequest,
                     key: Annotated[str, Header(alias="Idempotence-Key", min_length=1)]
                     ) -> dict[str, Any]:
        if key in by_key:
            return payments[by_key[key]].view(public)
        payment = Payment(f"pay_{secrets.token_hex(10)}", body)
        by_key[key] = payment.id
        payments[payment.id] = payment
        return payment.view(public)

    @app.get("/v1/payments/{payment_id}", dependencies=[Depends(merchant)])
    async def status(payment_id: str) -> dict[str, Any]:
        return find(payment_id).view(public)

    @app.post("/v1/payments/{payment_id}/redeliver", dependencies=[Depends(merchant)])
    async def redeliver(payment_id: str) -> dict[str, Any]:
        payment = find(payment_id)
        if payment.last_event is None:
            raise HTTPException(409, "nothing was sent for this payment yet")
        return {"event_id": payment.last_event["id"], "status": await deliver(payment)}

    @app.get("/pay/{payment_id}", response_class=HTMLResponse)
    async def page(payment_id: str) -> str:
        payment = find(payment_id)
        amount = html.escape(f"{payment.request.amount:.2f}")
        what = html.escape(payment.request.description or "Top-up")
        if payment.status != "pending":
            return _page(f"<p role='status'>Payment {html.escape(payment.status)}.</p>")
        return _page(
            f"<h1>Test acquirer</h1><p>{what}</p><p class='amount'>{amount} RUB</p>"
            f"<form method='post' action='/pay/{payment.id}/confirm'>"
            "<button type='submit'>Pay</button></form>"
            f"<form method='post' action='/pay/{payment.id}/cancel'>"
            "<button type='submit'>Cancel</button></form>"
        )

    @app.post("/pay/{payment_id}/{decision}", response_class=HTMLResponse, response_model=None)
    async def pay(payment_id: str, decision: Literal["confirm", "cancel"]
                  ) -> HTMLResponse | RedirectResponse:
        payment = find(payment_id)
        await decide(payment, "succeeded" if decision == "confirm" else "canceled")
        if payment.request.return_url:
            return RedirectResponse(payment.request.return_url, status_code=303)
        return HTMLResponse(_page(f"<p role='status'>Payment {payment.status}.</p>"))

    return app


def _page(body: str) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>Test acquirer</title></head>"
            f"<body style='font-family: sans-serif; max-width: 30rem; margin: 2rem auto'>{body}"
            "</body></html>")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the `meterline` command owns signals and stops us by cancelling `run`

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            log.info("test acquirer ready on http://%s:%s", host, port)


async def run(settings: Settings) -> None:
    """Serve the test acquirer on acquirer_port until cancelled."""
    server = _Server(uvicorn.Config(create_acquirer_app(settings), host="127.0.0.1",
                                    port=settings.acquirer_port, log_config=None,
                                    lifespan="off"))
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    finally:
        server.should_exit = True
        await serving
