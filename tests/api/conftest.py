"""The API under test: the real app with its lifespan (pool), driven over ASGI by httpx,
against the session's PostgreSQL database; and accounts put on the books per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from meterline.fleet import Fleet, FleetMeter, Provider, register_fleet
from meterline.settings import Settings
from tests.conftest import unique

BASE_URL = "http://meterline.test"


@dataclass(frozen=True)
class Seeded:
    account_id: str
    provider_id: str
    meter_ids: list[str]
    gateway_id: str


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
    ) -> Seeded:
        account = account_id or unique("acc")
        provider = Provider(id=provider_id or unique("prov"), name="Provider " + account)
        serials = [unique("m") for _ in range(meters)]
        gateway = unique("gw")
        fleet = Fleet(
            gateway_id=gateway,
            meters=[
                FleetMeter(
                    serial=s,
                    account_id=account,
                    opening_balance=Decimal(balance),
                    address="Moscow, Tverskaya 1, apt 5",
                    holder_name="Ivan Petrov",
                )
                for s in serials
            ],
            price=Decimal(price),
            provider=provider,
            billing_mode=billing_mode,
        )
        await register_fleet(conn, fleet)
        return Seeded(account, provider.id, serials, gateway)

    return make
