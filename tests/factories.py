"""Test data, built one way for every test: accounts with meters, providers and tariffs on the
books through the same registration the demo uses (`meterline.fleet`).

Every id is unique to the test run unless the test names it, so tests share one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg

from meterline.fleet import Fleet, FleetMeter, Provider, register_fleet
from meterline.telemetry import MICRO, ReadingColumns, epoch_us
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
    time_zone: str | None = None,
) -> list[Customer]:
    """One account per opening balance, each with ``meters_each`` SDM120 meters (relay
    fitted) behind one gateway, buying from one provider at a flat ``price`` per kWh, at an
    address in ``time_zone`` (default: the schema's, Europe/Moscow)."""
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
    if time_zone is not None:
        await conn.execute(
            "UPDATE addresses SET time_zone = %s WHERE id IN "
            "(SELECT address_id FROM accounts WHERE id = ANY(%s))",
            (time_zone, [c.account_id for c in result]),
        )
    return result


async def customer(
    conn: psycopg.AsyncConnection[Any], balance: str | Decimal = "0", **options: Any
) -> Customer:
    """One account (see ``customers`` for the options)."""
    (one,) = await customers(conn, [balance], **options)
    return one


def random_readings(
    rng: np.random.Generator,
    meters: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    register: str = "active_import",
    longest_step: timedelta = timedelta(minutes=20),
    gap_chance: float = 0.03,
    gateway: str | None = "gw-test",
) -> ReadingColumns:
    """Cumulative readings of each meter from ``start`` to before ``end``: steps of one second
    to ``longest_step`` (a fifth of them landing on a quarter-hour exactly), gaps of one to
    six hours now and then, and up to 2.5 units consumed per step."""
    meter_ids: list[str] = []
    ts: list[int] = []
    values: list[int] = []
    quarter = 15 * 60 * MICRO
    first, last = epoch_us(start), epoch_us(end)
    for meter in meters:
        t, value = first + int(rng.integers(0, quarter)), int(rng.integers(0, 10**6)) * MICRO
        while t < last:
            meter_ids.append(meter)
            ts.append(t)
            values.append(value)
            if rng.random() < gap_chance:
                step = int(rng.integers(3600, 6 * 3600)) * MICRO
            else:
                step = int(rng.integers(1, int(longest_step.total_seconds()) + 1)) * MICRO
            t += step
            if rng.random() < 0.2:
                t += -t % quarter
            value += int(rng.integers(0, 2_500_000))
    return ReadingColumns(
        meter=np.array(meter_ids), register=register, ts=np.array(ts, dtype=np.int64),
        value=np.array(values, dtype=np.int64), gateway=gateway,
        source="gateway" if gateway else "app",
    )
