"""Test data, built one way for every test: accounts with meters, providers and tariffs on the
books through the same registration the demo uses (`meterline.fleet`).

Every id is unique to the test run unless the test names it, so tests share one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from meterline.fleet import Fleet, FleetMeter, Provider, register_fleet
from meterline.users import Role, create_user
from tests.conftest import unique

DEFAULT_PRICE = Decimal("5.5")


@dataclass(frozen=True)
class Customer:
    account_id: str
    provider_id: str
    meter_ids: list[str]
    gateway_id: str

    @property
    def meter_id(self) -> str:
        """The customer's meter, for the many tests that give it one."""
        (meter,) = self.meter_ids
        return meter


def provider(id_: str | None = None, name: str | None = None) -> Provider:
    id_ = id_ or unique("prov")
    return Provider(id=id_, name=name or f"Provider {id_}")


async def customers(
    conn: psycopg.AsyncConnection[Any],
    balances: Sequence[str | Decimal] = ("0",),
    *,
    meters_each: int = 1,
    serials: Sequence[str] | None = None,
    account_ids: Sequence[str] | None = None,
    seller: Provider | None = None,
    gateway_id: str | None = None,
    price: str | Decimal = DEFAULT_PRICE,
    billing_mode: str = "prepaid",
    installation_reading: Decimal | None = None,
    installed_at: datetime | None = None,
) -> list[Customer]:
    """One account per opening balance, each with ``meters_each`` SDM120 meters (relay
    fitted) behind one gateway, buying from one provider at a flat ``price`` per kWh."""
    seller = seller or provider()
    gateway = gateway_id or unique("gw")
    accounts = list(account_ids or [unique("A") for _ in balances])
    serial_list = list(serials or [unique("m") for _ in range(len(balances) * meters_each)])
    if len(accounts) != len(balances) or len(serial_list) != len(balances) * meters_each:
        raise ValueError("one account id per balance and meters_each serials per account")
    result: list[Customer] = []
    meters: list[FleetMeter] = []
    for n, (account, balance) in enumerate(zip(accounts, balances, strict=True)):
        own = serial_list[n * meters_each:(n + 1) * meters_each]
        meters += [
            FleetMeter(
                serial=serial, account_id=account, opening_balance=Decimal(balance),
                address=f"Moscow, Test street {n + 1}, apt {k + 1}", holder_name="Ivan Petrov",
                installation_reading=installation_reading, installed_at=installed_at,
            )
            for k, serial in enumerate(own)
        ]
        result.append(Customer(account, seller.id, own, gateway))
    await register_fleet(conn, Fleet(
        gateway_id=gateway, meters=meters, price=Decimal(price), provider=seller,
        billing_mode=billing_mode,
    ))
    return result


async def customer(
    conn: psycopg.AsyncConnection[Any], balance: str | Decimal = "0", **options: Any
) -> Customer:
    """One account (see ``customers`` for the options)."""
    (one,) = await customers(conn, [balance], **options)
    return one


# --- people who use the API (issue 9)

@dataclass(frozen=True)
class Person:
    id: int
    username: str
    role: Role
    password: str | None  # None: cannot log in with a password (tests mint its tokens)


async def person(
    conn: psycopg.AsyncConnection[Any],
    role: Role = Role.SUBSCRIBER,
    *,
    accounts: Sequence[str] = (),
    password: str | None = None,
    username: str | None = None,
) -> Person:
    """A user of ``role`` who may see ``accounts``. Give a ``password`` only where the test
    logs in through ``/auth/token`` (hashing one costs argon2's time)."""
    name = username or unique(role.value)
    user_id = await create_user(conn, name, password, role, accounts=accounts)
    assert user_id is not None, f"user {name} exists"
    return Person(user_id, name, role, password)
