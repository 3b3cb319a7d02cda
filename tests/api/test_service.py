"""`api.service.run`: a real uvicorn server on a real port, stopped by cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx

from api.service import run
from meterline.kafka import free_port, port_open
from meterline.settings import Settings


class _Ready(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if "ready" in message:
            self.event.set()


async def test_run_serves_until_cancelled(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    settings = make_settings(api_host="127.0.0.1", api_port=port)
    ready = _Ready()
    logger = logging.getLogger("meterline.api")
    logger.addHandler(ready)
    logger.setLevel(logging.INFO)
    try:
        serving = asyncio.create_task(run(settings))
        await asyncio.wait_for(ready.event.wait(), timeout=10)
        assert f"http://127.0.0.1:{port}" in ready.messages[-1]

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await http.get("/health")
            missing = await http.get("/nowhere")
        assert health.json() == {"status": "ok", "database": "ok"}
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"

        serving.cancel()
        done, _ = await asyncio.wait([serving], timeout=15)
        assert done == {serving} and serving.cancelled()
        assert not port_open("127.0.0.1", port)
    finally:
        logger.removeHandler(ready)
        logger.setLevel(logging.NOTSET)
