"""Settings refuse the built-in development secrets outside development."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from meterline.settings import DEVELOPMENT_JWT_SECRET, Settings

OWN_SECRET = "an own secret of at least thirty-two characters"


def test_development_works_out_of_the_box() -> None:
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET


def test_production_refuses_the_built_in_secret() -> None:
    with pytest.raises(ValidationError, match="METERLINE_JWT_SECRET"):
        Settings(_env_file=None, environment="production")
    Settings(_env_file=None, environment="production", jwt_secret=OWN_SECRET)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(_env_file=None, jwt_secret="short")


def test_secrets_reach_child_processes_but_not_printouts() -> None:
    settings = Settings(_env_file=None, environment="production", jwt_secret=OWN_SECRET)
    assert settings.as_env()["METERLINE_JWT_SECRET"] == OWN_SECRET
    assert OWN_SECRET not in repr(settings) and OWN_SECRET not in str(settings.jwt_secret)
    child: dict[str, Any] = {k.removeprefix("METERLINE_").lower(): v
                             for k, v in settings.as_env().items()}
    assert Settings(_env_file=None, **child) == settings
