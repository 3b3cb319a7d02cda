"""Local servers speaking the real protocols of the channels that cannot run here: an SMTP
server (aiosmtpd) and an HTTP SMS gateway speaking Kannel's sendsms interface, which calls
back the delivery report URL of every message it accepts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from meterline.kafka import free_port


class Mailbox:
    """An aiosmtpd handler: accepts mail for any address but ``refused``, keeps it."""

    def __init__(self, refused: set[str] | None = None) -> None:
        self.refused = refused or set()
        self.messages: list[EmailMessage] = []
        self.received = asyncio.Event()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)  # what policy.default makes
        self.messages.append(message)
        return "250 2.0.0 queued as 7F3A1"


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox) -> Any:
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@dataclass
class SmsGateway:
    """Kannel's sendsms: GET with username, password, from, to, text, dlr-mask, dlr-url;
    answers ``202 0: Accepted for delivery`` and later requests the dlr-url with ``%d``
    (report type) and ``%A`` (the operator's answer) filled in."""

    username: str = "meterline"
    password: str = "secret"
    unreachable: set[str] = field(default_factory=set)  # numbers whose report is type 2
    sent: list[dict[str, str]] = field(default_factory=list)
    reports: list[httpx.Response] = field(default_factory=list)
    report_types: Callable[[str], int] | None = None

    async def sendsms(self, request: Request) -> Response:
        q = dict(request.query_params)
        if (q.get("username"), q.get("password")) != (self.username, self.password):
            return PlainTextResponse("Authorization failed for sendsms", status_code=403)
        if not q.get("to") or not q.get("text"):
            return PlainTextResponse("Missing receiver number", status_code=400)
        self.sent.append(q)
        if q.get("dlr-url"):
            asyncio.get_running_loop().create_task(self._report(q))
        return PlainTextResponse("0: Accepted for delivery", status_code=202)

    async def _report(self, q: dict[str, str]) -> None:
        kind = 2 if q["to"] in self.unreachable else 1
        answer = "id:1 sub:001 dlvrd:001 stat:" + ("DELIVRD" if kind == 1 else "UNDELIV")
        url = q["dlr-url"].replace("%d", str(kind)).replace("%A", quote(answer))
        async with httpx.AsyncClient() as client:
            self.reports.append(await client.get(url))


def listening() -> tuple[socket.socket, str]:
    """A socket listening on a free loopback port, and its base URL: requests made before a
    server takes it wait in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def serving(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    """Serve an ASGI app (or a Starlette app of these routes) on ``sock`` with uvicorn, in
    this event loop."""
    if isinstance(app, list):
        app = Starlette(routes=app)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def http_server(app: Any) -> AsyncIterator[str]:
    sock, url = listening()
    async with serving(app, sock):
        yield url
