"""The API under test: the real app with its lifespan (pool), driven over ASGI by httpx,
against the session's PostgreSQL database; and accounts put on the books per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from meterline.settings import Settings
from tests.factories import Customer, customer, provider

BASE_URL = "http://meterline.test"


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> FastAPI:
    return create_app(make_settings())


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http,
    ):
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
