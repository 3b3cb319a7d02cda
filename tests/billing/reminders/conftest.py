"""The channels' local servers and the notifier's callbacks, for the reminder tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from starlette.routing import Route

from billing.reminders.callbacks import callbacks_app
from billing.reminders.delivery import Notifier
from meterline.db import make_pool
from meterline.settings import Settings
from tests.billing.reminders.servers import (
    Mailbox,
    SmsGateway,
    http_server,
    listening,
    serving,
    smtp_server,
)

# Wednesday 2025-03-12, 12:00 in Moscow
NOON = datetime(2025, 3, 12, 9, tzinfo=UTC)
UNREACHABLE = "+79990000000"


@dataclass
class Rig:
    settings: Settings
    notifier: Notifier
    mailbox: Mailbox
    gateway: SmsGateway
    callbacks: str  # base URL of the notifier's callbacks
    http: httpx.AsyncClient
    now: datetime = NOON  # the callbacks' clock: when a receipt arrives

    def clock(self) -> datetime:
        return self.now


@pytest.fixture
async def rig(make_settings: Callable[..., Settings], pg_url: str) -> AsyncIterator[Rig]:
    mailbox = Mailbox(refused={"gone@example.org"})
    gateway = SmsGateway(unreachable={UNREACHABLE})
    sock, callbacks = listening()
    with smtp_server(mailbox) as smtp_port:
        async with http_server([Route("/cgi-bin/sendsms", gateway.sendsms)]) as sms_url, \
                make_pool(pg_url, name="test-callbacks") as pool, httpx.AsyncClient() as http:
            settings = make_settings(
                smtp_port=smtp_port, sms_gateway_url=f"{sms_url}/cgi-bin/sendsms",
                sms_password="secret", notifier_public_url=callbacks,
            )
            rig = Rig(settings, Notifier(settings, http), mailbox, gateway, callbacks, http)
            async with serving(callbacks_app(settings, pool, clock=rig.clock), sock):
                yield rig


