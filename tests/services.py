"""Running services as child processes from tests, configured by the test's Settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from meterline.services import Child
from meterline.settings import Settings


@contextmanager
def service(name: str, settings: Settings, log_dir: Path, timeout: float = 90.0) -> Iterator[Child]:
    child = Child(name, log_dir, settings.as_env())
    try:
        child.wait_ready(timeout)
        yield child
    finally:
        child.stop()
