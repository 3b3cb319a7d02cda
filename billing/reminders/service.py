"""The notifier: turns rating's events into notices and delivers notices (a pass whenever a
notice or an event is made, and every ``notifier_interval`` seconds for quiet hours and
deadlines) and serves the channels' callbacks. ``await run(settings)`` runs until
cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import uvicorn

from billing.reminders.callbacks import callbacks_app
from billing.reminders.delivery import Notifier
from billing.reminders.run import events_to_notices
from meterline.db import make_pool
from meterline.settings import Settings

logger = logging.getLogger("meterline.notifier")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller owns signals and stops us by cancelling `run`

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            logger.info("notifier ready; callbacks on http://%s:%s", host, port)


async def _deliver_forever(settings: Settings, notifier: Notifier,
                           started: asyncio.Event) -> None:
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True, application_name="meterline-notifier",
    ) as conn, await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True, application_name="meterline-notifier-listen",
    ) as listener:
        await listener.execute("LISTEN notices")
        await listener.execute("LISTEN events")
        started.set()  # connected and listening: what is made from now on wakes a pass
        while True:
            await events_to_notices(conn, datetime.now(UTC))
            done = await notifier.deliver(conn, datetime.now(UTC))
            if done.sent or done.failed or done.undeliverable or done.expired:
                logger.info("notices: %s", done)
            # until a notice or an event is made (then a pass at once) or the interval ends
            async for _ in listener.notifies(timeout=settings.notifier_interval, stop_after=1):
                pass


async def run(settings: Settings) -> None:
    async with make_pool(settings.database_url, name="meterline-notifier-callbacks") as pool, \
            httpx.AsyncClient() as http:
        started = asyncio.Event()
        config = uvicorn.Config(
            callbacks_app(settings, pool, ready=started.is_set), host=settings.notifier_host,
            port=settings.notifier_port, lifespan="on", log_config=None,
            timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        serving = asyncio.ensure_future(server.serve())
        try:
            await _deliver_forever(settings, Notifier(settings, http), started)
        finally:
            server.should_exit = True
            await serving
