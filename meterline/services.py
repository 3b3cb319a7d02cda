"""Running services: one in this process until interrupted, or several as child processes.

Each service logs a line containing ``ready`` once it serves; ``Child.wait_ready`` waits for
that line in the child's log, so nothing waits on a guess.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from meterline.kafka import stop_process

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    for noisy in ("aiokafka", "kafka", "pymodbus", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stop_on_sigterm_as_on_ctrl_c() -> None:
    """Make SIGTERM (what docker, systemd and ``kill`` send) do what Ctrl-C does in this
    process: raise KeyboardInterrupt in the main thread (inside ``asyncio.run`` too, which
    then cancels its tasks), for commands that stop their children in a ``finally``. Ctrl-C
    itself is restored to that as well: a process started in the background by a shell
    inherits SIGINT ignored."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


# the youngest generation's collection threshold of services on the readings path (CPython's
# default is 700 allocations)
YOUNG_COLLECTION_EVERY = 50_000


def settle_heap() -> None:
    """For a service that moves many readings, once what it keeps (meter directory, tariffs,
    connections) is loaded: exempt those objects from the cyclic garbage collector
    (``gc.freeze``: never traversed again; freed as usual when no longer referenced), and
    collect the youngest generation every YOUNG_COLLECTION_EVERY allocations. A batch of
    thousands of readings allocates many short-lived containers, and CPython's defaults made
    the bridge traverse everything it holds again and again: a fifth to a third of its CPU
    per reading (BENCHMARKS.md, "Readings path"). Cycles are still collected, less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 100)


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
    """A meterline service in a child process (``python -m meterline NAME``).

    Its output is copied line by line to ``log_dir/NAME.log`` by a reader thread, which also
    signals ``ready`` when the service logs its ready line.
    """

    def __init__(self, name: str, log_dir: Path, env: Mapping[str, str] | None = None,
                 args: Sequence[str] = (), label: str | None = None,
                 cwd: Path | None = None) -> None:
        """``args``: the command's options; ``label``: the log's name (default: ``name``),
        for several children of one command; ``cwd``: where it runs (``python -m`` imports
        from there first)."""
        self.name = label or name
        self.log_path = log_dir / f"{self.name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._command = [sys.executable, "-m", "meterline", name, *args]
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._start("wb")

    def _start(self, log_mode: str) -> None:
        self.ready = threading.Event()
        self.proc = subprocess.Popen(self._command, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self._env, cwd=self._cwd)
        self._reader = threading.Thread(target=self._copy_output, args=(log_mode,),
                                        daemon=True)
        self._reader.start()

    def restart(self) -> None:
        """Start the service again after its process ended; its log goes on in the same file."""
        if self.proc.poll() is None:
            raise ServiceFailed(f"{self.name} is still running")
        self._reader.join(timeout=5)
        self._start("ab")

    def _copy_output(self, log_mode: str) -> None:
        proc, ready = self.proc, self.ready  # this run's: a restart makes new ones
        assert proc.stdout is not None
        with self.log_path.open(log_mode) as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if not ready.is_set() and b" ready" in line:
                    ready.set()
        ready.set()  # output ended: wake any waiter, which then sees the exit

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not self.ready.wait(timeout):
            raise ServiceFailed(f"{self.name} not ready in {timeout}s; see {self.log_path}")
        if self.proc.poll() is not None:
            raise ServiceFailed(
                f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
            )

    def stop(self) -> None:
        stop_process(self.proc)
        self._reader.join(timeout=5)
