"""Serving an ASGI app on a real port inside the test's event loop (for peers that must call
it over HTTP: the payment provider's webhooks, a browser)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI


def listening() -> socket.socket:
    """A socket listening on a free loopback port (its port is known before the server runs)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def serving(app: FastAPI, sock: socket.socket) -> AsyncIterator[None]:
    """Serve ``app`` on an already listening socket: a client may connect at once (the
    kernel queues it until uvicorn accepts), so nothing waits for the server to be up."""
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()
