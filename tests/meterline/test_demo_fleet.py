"""The demo's fleet shows both policies: cut-off contracts and households on the statutory
procedure, one of each nearly out of credit in every four accounts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import psycopg

from meterline import db
from meterline.demo import prepare
from meterline.settings import Settings
from tests.conftest import PG_ADMIN


async def test_the_demo_fleet_has_cut_off_contracts_and_households(
        make_settings: Callable[..., Settings]) -> None:
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/meterline_demo_{uuid.uuid4().hex[:8]}"
    settings = make_settings(database_url=url)
    try:
        await prepare(settings, 8)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute(
                "SELECT a.contract_type, b.amount FROM accounts a "
                "JOIN balances b ON b.account_id = a.id AND b.provider_id = 'energosbyt' "
                "WHERE a.billing_mode = 'prepaid' ORDER BY a.id")
            rows = await cur.fetchall()
    finally:
        await db.drop_database(url)
    assert [t for t, _ in rows] == ["prepay_cutoff", "household"] * 4
    low = [(t, a) for t, a in rows if a == Decimal(20)]
    assert sorted(low) == [("household", 20), ("household", 20),
                           ("prepay_cutoff", 20), ("prepay_cutoff", 20)]
