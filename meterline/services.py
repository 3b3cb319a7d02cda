"""Running services: one in this process until interrupted, or several as child processes.

Each service logs a line containing ``ready`` once it serves; ``Child.wait_ready`` waits for
that line in the child's log, so nothing waits on a guess.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from pathlib import Path

from meterline.kafka import stop_process

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    for noisy in ("aiokafka", "kafka", "pymodbus", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` until it returns, or SIGINT/SIGTERM cancels it cleanly."""

    async def runner() -> None:
        task = asyncio.ensure_future(main())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with suppress(asyncio.CancelledError):
            await task

    asyncio.run(runner())


class ServiceFailed(RuntimeError):
    pass


class Child:
    """A meterline service in a child process (``python -m meterline NAME``), logging to a file."""

    def __init__(self, name: str, log_dir: Path, env: Mapping[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "meterline", name, *args],
            stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.log_path.open("rb") as log:
            while time.monotonic() < deadline:
                line = log.readline()
                if not line:
                    if self.proc.poll() is not None:
                        raise ServiceFailed(
                            f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                        )
                    time.sleep(0.05)  # tailing a file: no event to wait on
                    continue
                if b" ready" in line:
                    return
        raise ServiceFailed(f"{self.name} not ready in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
