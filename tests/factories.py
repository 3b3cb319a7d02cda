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


# --- bank registries (billing.payments.registries): files as the banks write them


ADDRESS = "МОСКВА,УЛ ЛЕНИНА,1,5"  # noqa: RUF001 - as the bank writes it


@dataclass(frozen=True)
class RegistryRow:
    account_id: str
    amount: str  # roubles with a dot: "1500.00"
    paid_on: str = "2024-12-02"  # ISO
    period: str | None = "2024-11"  # YYYY-MM
    operation_id: str | None = None
    payer: str = "ИВАНОВ ИВАН ИВАНОВИЧ"


def sberbank_registry(rows: Sequence[RegistryRow], *, count: int | None = None,
                      total: str | None = None, number: str = "42") -> bytes:
    """A registry in Sberbank's layout (layouts/sberbank.toml), windows-1251."""
    lines = []
    for n, r in enumerate(rows, start=1):
        y, m, d = r.paid_on.split("-")
        period = f"{r.period[5:7]}{r.period[2:4]}" if r.period else ""
        lines.append(";".join([
            f"{d}-{m}-{y}", "10-15-32", "9038", "1234", r.operation_id or f"5012345{n:05d}",
            r.account_id, r.payer, ADDRESS, period, r.amount.replace(".", ","),
            r.amount.replace(".", ","), "0,00",
        ]))
    amount = total or f"{sum(Decimal(r.amount) for r in rows):.2f}"
    lines.append(f"={len(rows) if count is None else count};{amount.replace('.', ',')};"
                 f"{amount.replace('.', ',')};0,00;0,00;{number};02-12-2024")
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


def post_registry(rows: Sequence[RegistryRow], *, count: int | None = None,
                  total: str | None = None) -> bytes:
    """A registry in the post-office layout (layouts/post.toml), windows-1251."""
    lines = ["Реестр платежей № 17 за 02.12.2024",
             "ЛС;Период;Сумма;Дата платежа;Номер операции;ФИО"]
    for n, r in enumerate(rows, start=1):
        y, m, d = r.paid_on.split("-")
        period = f"{r.period[5:7]}.{r.period[0:4]}" if r.period else ""
        lines.append(";".join([r.account_id, period, r.amount, f"{d}.{m}.{y}",
                               r.operation_id or f"94001{n:05d}", r.payer]))
    amount = total or f"{sum(Decimal(r.amount) for r in rows):.2f}"
    lines.append(f"ИТОГО;{len(rows) if count is None else count};{amount}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")
