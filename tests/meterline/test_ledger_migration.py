"""A database made before the journal (charges, top-ups and opening balances written straight
into `balances`) migrates: every movement becomes an entry and the books balance."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from meterline import db
from meterline.ledger import check
from tests.conftest import PG_ADMIN

BEFORE_THE_JOURNAL = "0006_reading_sources"

# what the skeleton's fleet registration, rating worker and top-up API wrote
_SKELETON = """
INSERT INTO providers (id, name) VALUES ('energo', 'Energo'), ('vodokanal', 'Vodokanal');
INSERT INTO addresses (region, full_text, time_zone)
VALUES ('77', 'Moscow, Tverskaya 1', 'Europe/Moscow');
INSERT INTO accounts (id, address_id, holder_name, billing_mode, opened_at)
SELECT id, (SELECT min(id) FROM addresses), 'Holder', 'prepaid', '2026-09-01Z'
  FROM (VALUES ('LS-1'), ('LS-2')) AS a(id);
INSERT INTO balances (account_id, provider_id, amount) VALUES
    ('LS-1', 'energo', 300 - 12.5 * 6.43 + 100),      -- opening, usage and a top-up
    ('LS-1', 'vodokanal', 0 - 1.25 * 40.1),           -- no opening: only water usage
    ('LS-2', 'energo', 20);                           -- opening only
INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id) VALUES
    ('E1', 'LS-1', 'energo', 'electricity', 'SDM120', 'gw-1'),
    ('W1', 'LS-1', 'vodokanal', 'cold_water', 'WM', 'gw-1');
INSERT INTO tariffs (provider_id, utility, unit, price, valid_from) VALUES
    ('energo', 'electricity', 'kWh', 6.43, '2020-01-01Z'),
    ('vodokanal', 'cold_water', 'm3', 40.1, '2020-01-01Z');
INSERT INTO charges (meter_id, register, interval_start, interval_end, quantity, unit, tariff_id,
                     unit_price, amount, account_id, provider_id)
SELECT m, r, s::timestamptz, e::timestamptz, q, u, t.id, t.price, q * t.price, a, p
  FROM (VALUES
    -- 21:30 UTC on October 31st is already November in Moscow
    ('E1', 'active_import', '2026-10-31 20:00Z', '2026-10-31 21:30Z', 10, 'kWh', 'LS-1', 'energo'),
    ('E1', 'active_import', '2026-10-31 21:30Z', '2026-11-02 08:00Z', 2.5, 'kWh', 'LS-1', 'energo'),
    ('W1', 'volume', '2026-10-01 00:00Z', '2026-10-15 00:00Z', 1.25, 'm3', 'LS-1', 'vodokanal')
  ) AS c(m, r, s, e, q, u, a, p)
  JOIN tariffs t ON t.provider_id = c.p;
INSERT INTO topups (account_id, provider_id, amount, idempotency_key, received_at)
VALUES ('LS-1', 'energo', 100, 'pay-1', '2026-11-03 10:00Z');
"""


@pytest.fixture
async def skeleton_url() -> AsyncIterator[str]:
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/meterline_skeleton_{uuid.uuid4().hex[:8]}"
    await db.create_database(url, exist_ok=False)
    try:
        await db.migrate(url, until=BEFORE_THE_JOURNAL)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await conn.execute(_SKELETON)
        yield url
    finally:
        await db.drop_database(url)


async def _apply_later_migrations_first(url: str) -> list[str]:
    """Apply the migrations numbered after the journal's (as a database made by a release
    that had them but not the journal would have), recorded as the migrator records them."""
    # (a migration that needs the journal was written after it, so no database took it
    # first: one naming the journal's tables, or a table made by such a migration)
    needs_journal = {"entries", "postings"}
    later = []
    for v, text in db.migration_files():
        if v <= "0010_journal":
            continue
        if needs_journal & set(re.findall(r"\w+", text)):
            needs_journal |= set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", text))
        else:
            later.append((v, text))
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for version, text in later:
            await conn.execute(text.encode())
            await conn.execute("INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                               (version, db._checksum(text)))
        await conn.commit()
    return [v for v, _ in later]


async def test_a_database_with_later_migrations_takes_the_journal_after_them(
    skeleton_url: str,
) -> None:
    later = await _apply_later_migrations_first(skeleton_url)
    assert "0050_telemetry_store" in later  # it creates billing_periods if missing
    assert (await db.migrate(skeleton_url))[0] == "0010_journal"
    async with await psycopg.AsyncConnection.connect(skeleton_url, autocommit=True) as conn:
        assert await check(conn) == []
        cur = await conn.execute("SELECT count(*) FROM entries")
        assert await cur.fetchone() == (5,)  # 2 usage, 1 top-up, 2 openings (none for zero)


async def test_a_skeleton_database_migrates_into_a_balanced_journal(skeleton_url: str) -> None:
    applied = await db.migrate(skeleton_url)
    assert applied[0] == "0010_journal"
    async with await psycopg.AsyncConnection.connect(skeleton_url, autocommit=True) as conn:
        assert await check(conn) == []
        cur = await conn.execute("SELECT account_id, provider_id, amount FROM balances "
                                 "ORDER BY 1, 2")
        assert await cur.fetchall() == [  # unchanged by the migration
            ("LS-1", "energo", Decimal("300") - Decimal("12.5") * Decimal("6.43") + 100),
            ("LS-1", "vodokanal", -Decimal("1.25") * Decimal("40.1")),
            ("LS-2", "energo", Decimal("20")),
        ]
        cur = await conn.execute("""SELECT kind, entry_key, service, period, amount, booked_at
                                      FROM ledger ORDER BY account_id, provider_id, kind,
                                                           period""")
        rows: list[Any] = await cur.fetchall()
        assert rows == [
            ("opening", "opening:LS-1:energo", None, None, Decimal("300"),
             datetime(2026, 9, 1, tzinfo=UTC)),
            ("topup", "topup:LS-1:pay-1", None, None, Decimal("100"),
             datetime(2026, 11, 3, 10, tzinfo=UTC)),
            # usage lands in the billing month of the interval's end, in Moscow time
            ("usage", "usage:0010:energo:electricity:2026-11-01", "electricity",
             date(2026, 11, 1), -Decimal("12.5") * Decimal("6.43"), rows[2][5]),
            ("usage", "usage:0010:vodokanal:cold_water:2026-10-01", "cold_water",
             date(2026, 10, 1), -Decimal("1.25") * Decimal("40.1"), rows[3][5]),
            ("opening", "opening:LS-2:energo", None, None, Decimal("20"),
             datetime(2026, 9, 1, tzinfo=UTC)),
        ]
        cur = await conn.execute("SELECT count(*) FROM charges c JOIN entries e "
                                 "ON e.id = c.entry_id WHERE e.kind = 'usage'")
        assert await cur.fetchone() == (3,)
        # and the money model's rules hold from now on
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("UPDATE balances SET amount = 0")
