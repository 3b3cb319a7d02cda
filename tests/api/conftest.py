"""The API under test: the real app with its lifespan (pool), driven over ASGI by httpx,
against the session's PostgreSQL database; and accounts and people put on the books per test.

`client` calls as an admin (every account, every scope), `anonymous` with no credentials;
`bearer(person)` gives the headers of another caller (an access token signed with the app's
own secret, as `POST /auth/token` would issue it)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.auth.tokens import access_token
from meterline.settings import Settings
from meterline.users import ROLE_SCOPES, Role, Scope, User
from tests.factories import Customer, Person, customer, person, provider

BASE_URL = "http://meterline.test"

Bearer = Callable[..., dict[str, str]]


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> Iterator[FastAPI]:
    """The app, its acquirer at an address where nothing listens (a port held bound, never
    listening: a payment's creation is refused, whatever else runs on this machine; the
    online-payment tests serve the local test acquirer instead)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield create_app(make_settings(
            acquirer_url=f"http://127.0.0.1:{held.getsockname()[1]}"))


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def bearer(app: FastAPI) -> Bearer:
    """Headers authenticating as ``who``, with the scopes of its role (or ``scopes``)."""

    def headers(who: Person, scopes: frozenset[Scope] | None = None) -> dict[str, str]:
        user = User(who.id, who.username, who.role, "", "ru")
        token = access_token(app.state.settings, user, scopes or ROLE_SCOPES[who.role])
        return {"Authorization": f"Bearer {token}"}

    return headers


def unique_address() -> str:
    """A client address no other test of this run uses: failed logins are counted by address,
    so tests that fail logins must not lock each other out."""
    return str(ipaddress.IPv4Address(10 << 24 | secrets.randbits(24)))  # in 10.0.0.0/8


def calling_from(app: FastAPI, address: str) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app, client=(address, 50000))


@pytest.fixture
async def anonymous(served: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=calling_from(served, unique_address()),
                                 base_url=BASE_URL) as http:
        yield http


@pytest.fixture
async def client(
    served: FastAPI, conn: psycopg.AsyncConnection[Any], bearer: Bearer
) -> AsyncIterator[httpx.AsyncClient]:
    admin = await person(conn, Role.ADMIN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url=BASE_URL,
                                 headers=bearer(admin)) as http:
        yield http


@pytest.fixture
def seed(conn: psycopg.AsyncConnection[Any]) -> Callable[..., Any]:
    """Register an account with its own provider and meters (SDM120, with a relay)."""

    async def make(
        *,
        balance: str = "0",
        meters: int = 1,
        billing_mode: str = "prepaid",
        account_id: str | None = None,
        provider_id: str | None = None,
        price: str = "5.5",
    ) -> Customer:
        return await customer(
            conn, balance, meters_each=meters, billing_mode=billing_mode, price=price,
            account_ids=[account_id] if account_id else None, seller=provider(provider_id),
        )

    return make
