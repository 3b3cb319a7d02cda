"""A schema-driven fuzzer (schemathesis) against the OpenAPI document, authenticated: no 5xx,
no response that violates the schema, no schema-valid request refused.

The API is served on a real port from a thread of its own (schemathesis calls it over HTTP,
synchronously); every request carries an admin's token, so every endpoint is reached."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import ignored_auth

from api.app import create_app
from api.auth.tokens import access_token
from meterline.settings import Settings
from meterline.users import ROLE_SCOPES, Role, User
from tests.factories import person
from tests.http_servers import listening, url_of


@pytest.fixture
async def admin_token(conn: Any, make_settings: Callable[..., Settings]) -> str:
    admin = await person(conn, Role.ADMIN)
    user = User(admin.id, admin.username, Role.ADMIN, "", "ru")
    return access_token(make_settings(), user, ROLE_SCOPES[Role.ADMIN])


@pytest.fixture
def served_schema(make_settings: Callable[..., Settings], admin_token: str) -> Iterator[Any]:
    sock = listening()
    server = uvicorn.Server(uvicorn.Config(create_app(make_settings()), lifespan="on",
                                           log_config=None))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        loaded = schemathesis.openapi.from_url(f"{url_of(sock)}/openapi.json")
        loaded.config.update(headers={"Authorization": f"Bearer {admin_token}"})
        yield loaded
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def test_the_api_keeps_its_openapi_promises(served_schema: Any) -> None:
    """Every operation, with cases generated from its schema (25 each, the same every run:
    a fuzzer that finds something new on one run in ten would be a flaky test; 150 each
    passed too, in two minutes)."""
    failures: list[str] = []
    operations = [result.ok() for result in served_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            # ignored_auth would swap the credentials, which the configured admin token
            # overrides: who may do what is tested as a matrix in test_access.py instead
            case.call_and_validate(excluded_checks=[ignored_auth])

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failures
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
