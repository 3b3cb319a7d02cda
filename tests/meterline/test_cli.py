"""The `meterline` command line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.settings import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the environment it sets, not settings cached before."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_help_lists_a_command_for_every_service() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("migrate", "broker", "simulators", "gateway", "bridge", "rating", "api",
                    "demo", "config"):
        assert f" {command} " in result.output


def test_config_documents_every_setting_and_hides_passwords(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METERLINE_DATABASE_URL", "postgresql://billing:s3cret@db:5432/meterline")
    monkeypatch.setenv("METERLINE_MQTT_PASSWORD", "hunter2")
    monkeypatch.setenv("METERLINE_POLL_INTERVAL", "2.5")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0
    assert "s3cret" not in result.output and "hunter2" not in result.output
    assert "METERLINE_DATABASE_URL=postgresql://billing:***@db:5432/meterline" in result.output
    assert "METERLINE_POLL_INTERVAL=2.5\n    Seconds between poll cycles." in result.output


def test_bad_settings_are_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_DATABASE_URL", "mysql://db/meterline")
    result = runner.invoke(app, ["config"])
    assert result.exit_code != 0
    assert "database_url must be a postgresql:// URL" in str(result.exception)


def test_config_hides_the_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_JWT_SECRET", "s" * 40)
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0
    assert "s" * 40 not in result.output
    assert "METERLINE_JWT_SECRET=**********" in result.output
