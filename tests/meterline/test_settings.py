"""Settings refuse the built-in development secrets outside development."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from meterline.settings import DEVELOPMENT_JWT_SECRET, DEVELOPMENT_SECRETS, Settings

OWN_SECRET = "an own secret of at least thirty-two characters"
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    **{name: f"{OWN_SECRET} for {name}" for name in DEVELOPMENT_SECRETS},
}


def test_development_works_out_of_the_box() -> None:
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET


@pytest.mark.parametrize("secret", list(DEVELOPMENT_SECRETS))
def test_production_refuses_each_built_in_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match=f"METERLINE_{secret.upper()}"):
        Settings(_env_file=None, **{k: v for k, v in PRODUCTION.items() if k != secret})
    Settings(_env_file=None, **PRODUCTION)


def test_a_short_jwt_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(_env_file=None, jwt_secret="short")


def test_secrets_reach_child_processes_but_not_printouts() -> None:
    settings = Settings(_env_file=None, **PRODUCTION)
    secret = PRODUCTION["jwt_secret"]
    assert settings.as_env()["METERLINE_JWT_SECRET"] == secret
    assert secret not in repr(settings) and secret not in str(settings.jwt_secret)
    child: dict[str, Any] = {k.removeprefix("METERLINE_").lower(): v
                             for k, v in settings.as_env().items()}
    assert Settings(_env_file=None, **child) == settings
