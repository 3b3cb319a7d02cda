"""Serving the API with uvicorn: `await run(settings)` serves until cancelled.

Signals are left to the caller (the `meterline` command): cancelling `run` shuts the server
down gracefully (open requests finish, the lifespan closes the pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from api.app import create_app, keep_loaded_objects
from meterline.settings import Settings

logger = logging.getLogger("meterline.api")

GRACEFUL_SHUTDOWN = 10  # seconds open requests get to finish


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller owns signals and stops us by cancelling `run`

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            logger.info("meterline API ready on http://%s:%s", host, port)


async def _serve(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits when it cannot bind or start the app
        raise RuntimeError("the API server could not start; see the log above") from exc


async def run(settings: Settings) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        lifespan="on",
        log_config=None,  # logging is configured by the caller
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = _Server(config)
    keep_loaded_objects()
    serving = asyncio.ensure_future(_serve(server))
    try:
        await asyncio.shield(serving)
    finally:
        server.should_exit = True
        await serving
