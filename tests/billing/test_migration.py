"""A database billed before the bill run priced with the tariff books keeps its prices: its
service_prices and the skeleton tariffs the town generator wrote become plans of the books."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import psycopg
import pytest

from meterline import db
from meterline.tariffs.store import read_plans
from meterline.units import Service, Utility
from tests.conftest import PG_ADMIN


@pytest.fixture
async def earlier_url() -> AsyncIterator[str]:
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/meterline_billrun_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await db.create_database(url, exist_ok=False)
    try:
        yield url
    finally:
        await db.drop_database(url)


async def test_a_towns_prices_become_plans_of_the_books(
    earlier_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    every = db.migration_files()
    monkeypatch.setattr(db, "migration_files", lambda: [m for m in every if m[0] < "0083"])
    await db.migrate(earlier_url)
    async with await psycopg.AsyncConnection.connect(earlier_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO providers (id, name) VALUES ('t-uk', 'UK'), "
                           "('t-vodokanal', 'Vodokanal'), ('t-teploset', 'Teploset')")
        await conn.execute("""
            INSERT INTO service_prices (provider_id, service, unit, price, valid_from, valid_to)
            VALUES ('t-uk', 'maintenance', 'm2', 34.20, '2026-01-01', '2026-07-01'),
                   ('t-uk', 'maintenance', 'm2', 36.00, '2026-07-01', NULL),
                   ('t-uk', 'waste', 'person', 165.40, '2026-01-01', NULL),
                   ('t-vodokanal', 'sewerage', 'm3', 41.80, '2026-01-01', NULL)""")
        await conn.execute("""
            INSERT INTO addresses (id, region, full_text) OVERRIDING SYSTEM VALUE
            VALUES (-83, '50', 'г. Берёзовск');
            INSERT INTO accounts (id, address_id, holder_name, billing_mode, area, residents)
            VALUES ('T-83', -83, 'Иванов И. И.', 'postpaid', 54, 3);
            INSERT INTO balances (account_id, provider_id) VALUES ('T-83', 't-uk');
            INSERT INTO account_services (account_id, service, provider_id, valid_from)
            VALUES ('T-83', 'maintenance', 't-uk', '2026-01-01');
            INSERT INTO account_benefits (account_id, category, service, share, valid_from)
            VALUES ('T-83', 'veteran', 'maintenance', 0.5, '2026-01-01')""")
        await conn.execute("""
            INSERT INTO tariffs (provider_id, utility, unit, price, valid_from) VALUES
              ('t-vodokanal', 'cold_water', 'm3', 52.30, '2026-01-01 00:00+03'),
              ('t-teploset', 'heat', 'Gcal', 2930.50, '2026-01-01 00:00+03')""")
    monkeypatch.setattr(db, "migration_files", lambda: every)
    assert "0083_bill_run_tariff_books" in await db.migrate(earlier_url)

    async with await psycopg.AsyncConnection.connect(earlier_url) as conn:
        plans = {(s.plan.provider_id, s.plan.service): s.plan for s in await read_plans(conn)}
        cur = await conn.execute("SELECT to_regclass('service_prices')")
        assert await cur.fetchone() == (None,)
        # a grant the bill run gave its share of the charge: a rule of the books now
        cur = await conn.execute("SELECT category FROM account_benefits WHERE account_id = 'T-83'")
        assert await cur.fetchall() == [("veteran_maintenance",)]
        cur = await conn.execute("""
            SELECT provider_id, service, percent, norm_basis FROM benefit_rules
             WHERE code = 'veteran_maintenance'""")
        assert await cur.fetchall() == [("t-uk", "maintenance", Decimal(50), "m2")]
    maintenance = plans[("t-uk", Service.MAINTENANCE)]
    assert (maintenance.code, maintenance.basis, maintenance.default) == (
        "maintenance", "m2", True)
    assert [(v.valid_from, v.prices) for v in maintenance.versions] == [
        (date(2026, 1, 1), ((Decimal("34.2"),),)), (date(2026, 7, 1), ((Decimal("36"),),))]
    assert plans[("t-uk", Service.WASTE)].basis == "resident"
    sewerage = plans[("t-vodokanal", Service.SEWERAGE)]
    assert (sewerage.basis, sewerage.utility, sewerage.derived_from) == (
        "m3", None, (Utility.COLD_WATER, Utility.HOT_WATER))
    assert plans[("t-vodokanal", Service.COLD_WATER)].code == "flat-cold-water"
    heating = plans[("t-teploset", Service.HEATING)]
    assert (heating.basis, heating.utility, heating.versions[0].prices) == (
        "Gcal", Utility.HEAT, ((Decimal("2930.5"),),))
