"""Running services as child processes from tests, configured by the test's Settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from meterline.services import Child
from meterline.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read exactly these settings."""
    env = {"METERLINE_DATABASE_URL": settings.database_url}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is not None:
            env[f"METERLINE_{name.upper()}"] = str(value)
    return env


@contextmanager
def service(name: str, settings: Settings, log_dir: Path, timeout: float = 90.0) -> Iterator[Child]:
    child = Child(name, log_dir, settings_env(settings))
    try:
        child.wait_ready(timeout)
        yield child
    finally:
        child.stop()
