"""The skeleton's flat tariffs become default flat plans of the tariff books."""

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
async def skeleton_url() -> AsyncIterator[str]:
    """A database migrated as the walking skeleton left it (before 0030)."""
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/meterline_skeleton_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await db.create_database(url, exist_ok=False)
    try:
        yield url
    finally:
        await db.drop_database(url)


async def test_flat_tariffs_of_an_earlier_demo_become_default_plans(
    skeleton_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    every = db.migration_files()
    monkeypatch.setattr(db, "migration_files", lambda: [m for m in every if m[0] < "0030"])
    await db.migrate(skeleton_url)
    async with await psycopg.AsyncConnection.connect(skeleton_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO providers (id, name) VALUES ('sbyt', 'Sbyt'), "
                           "('voda', 'Voda')")
        await conn.execute("""
            INSERT INTO tariffs (provider_id, utility, unit, price, valid_from, valid_to) VALUES
              ('sbyt', 'electricity', 'kWh', 5.47, '2020-01-01 00:00+00', '2026-07-01 00:00+03'),
              ('sbyt', 'electricity', 'kWh', 6.17, '2026-07-01 00:00+03', NULL),
              ('voda', 'cold_water', 'm3', 48.12, '2020-01-01 00:00+00', NULL)""")
    monkeypatch.setattr(db, "migration_files", lambda: every)
    assert "0030_tariff_books" in await db.migrate(skeleton_url)

    async with await psycopg.AsyncConnection.connect(skeleton_url) as conn:
        plans = {s.plan.provider_id: s.plan for s in await read_plans(conn)}
    sbyt, voda = plans["sbyt"], plans["voda"]
    assert (sbyt.code, sbyt.service, sbyt.utility, sbyt.default) == (
        "flat-electricity", Service.ELECTRICITY, Utility.ELECTRICITY, True)
    assert [(v.valid_from, v.prices) for v in sbyt.versions] == [
        (date(2020, 1, 1), ((Decimal("5.47"),),)), (date(2026, 7, 1), ((Decimal("6.17"),),))]
    assert sbyt.ends(0) == date(2026, 7, 1) and sbyt.ends(1) is None
    assert (voda.code, voda.basis, voda.versions[0].prices) == (
        "flat-cold-water", "m3", ((Decimal("48.12"),),))
