"""Registering meters, accounts and a tariff: the back-office data the pipeline prices against.
The fleet's flat price becomes its provider's default one-rate plan (``meterline.tariffs``)
unless a tariff book gave the provider another default.
Opening balances are brought in through the ledger (an `opening` entry per account and
provider), never written into `balances`.

Used by `meterline demo` and the tests to put a simulated fleet on the books. Idempotent:
registering the same fleet twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.profiles import shipped_profile
from meterline.tariffs.model import ProviderInfo
from meterline.tariffs.store import register_flat_rate
from meterline.units import Utility


@dataclass(frozen=True)
class Provider:
    id: str = "energosbyt"
    name: str = "Energosbyt"
    inn: str = "7701234567"


@dataclass(frozen=True)
class FleetMeter:
    serial: str
    account_id: str
    opening_balance: Decimal
    address: str
    region: str = "77"
    holder_name: str = "Subscriber"
    # the register's reading when the meter was installed: consumption is billed from it.
    # Without one, the meter's first reading through the pipeline is its baseline.
    installation_reading: Decimal | None = None
    installed_at: datetime | None = None
    # the account's contract type (``contract_types``): its disconnection policy. None: the
    # fleet's
    contract_type: str | None = None


@dataclass(frozen=True)
class Fleet:
    gateway_id: str
    meters: Sequence[FleetMeter]
    price: Decimal  # per unit of the utility (kWh, m3, Gcal), flat
    provider: Provider = field(default_factory=Provider)
    profile: str = "eastron-sdm120"  # the meters' device profile (meterline/profiles)
    utility: Utility = Utility.ELECTRICITY  # what the meters measure and the provider sells
    billing_mode: str = "prepaid"
    tariff_from: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    # the accounts' contract type, unless a meter names one; None: the database's default
    # (a household, on the statutory procedure: no cut at zero)
    contract_type: str | None = None


async def open_balance(conn: psycopg.AsyncConnection[Any], account_id: str, provider_id: str,
                       amount: Decimal) -> None:
    """The account's balance with the provider, brought in through the ledger as an opening
    entry (``subscriber +amount, opening -amount``). The first opening of a pair wins."""
    cur = await conn.execute(
        "INSERT INTO balances (account_id, provider_id) VALUES (%s, %s) "
        "ON CONFLICT DO NOTHING RETURNING 1", (account_id, provider_id))
    if await cur.fetchone() is None or amount == 0:
        return
    await post(conn, [Entry(EntryKind.OPENING, f"opening:{account_id}:{provider_id}", (
        Posting(Book.SUBSCRIBER, provider_id, amount, account_id=account_id),
        Posting(Book.OPENING, provider_id, -amount),
    ), reason="balance brought in")])


async def register_fleet(conn: psycopg.AsyncConnection[Any], fleet: Fleet) -> None:
    profile = shipped_profile(fleet.profile)
    if fleet.utility not in profile.utilities:
        raise ValueError(f"profile {profile.id} does not meter {fleet.utility}; it meters "
                         f"{', '.join(profile.utilities)}")
    async with conn.transaction():
        p = fleet.provider
        await conn.execute(
            "INSERT INTO providers (id, name, inn) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (p.id, p.name, p.inn),
        )
        await register_flat_rate(conn, ProviderInfo(id=p.id, name=p.name, inn=p.inn),
                                 fleet.utility, fleet.price, fleet.tariff_from.date())
        for m in fleet.meters:
            cur = await conn.execute("SELECT 1 FROM meters WHERE id = %s", (m.serial,))
            if await cur.fetchone():
                continue
            cur = await conn.execute("SELECT 1 FROM accounts WHERE id = %s", (m.account_id,))
            if await cur.fetchone() is None:  # an account may have meters of several fleets
                cur = await conn.execute(
                    "INSERT INTO addresses (region, full_text) VALUES (%s, %s) RETURNING id",
                    (m.region, m.address),
                )
                row = await cur.fetchone()
                assert row is not None
                await conn.execute(
                    """
                    INSERT INTO accounts (id, address_id, holder_name, billing_mode,
                                          contract_type)
                    VALUES (%s, %s, %s, %s, coalesce(%s, 'household'))
                    """,
                    (m.account_id, row[0], m.holder_name, fleet.billing_mode,
                     m.contract_type or fleet.contract_type),
                )
            await open_balance(conn, m.account_id, p.id, m.opening_balance)
            installed_at = m.installed_at or datetime.now(UTC)
            await conn.execute(
                """
                INSERT INTO meters (id, account_id, provider_id, utility, model, profile,
                                    gateway_id, has_relay, installed_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                """,
                (m.serial, m.account_id, p.id, fleet.utility, profile.model, profile.id,
                 fleet.gateway_id, profile.relay is not None, installed_at),
            )
            for reg in profile.billing:
                await conn.execute(
                    "INSERT INTO registers (meter_id, code, unit) VALUES (%s, %s, %s)",
                    (m.serial, reg.register, reg.unit),
                )
                if m.installation_reading is not None:
                    await conn.execute(
                        """
                        INSERT INTO register_state (meter_id, register, last_ts, last_value)
                        VALUES (%s, %s, %s, %s)
                        """,
                        (m.serial, reg.register, installed_at, m.installation_reading),
                    )
