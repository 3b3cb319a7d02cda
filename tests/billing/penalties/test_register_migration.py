"""The penalties register becomes a register of changes (migration 0131): each charge keeps
its month's last accrual, and the earlier days' rows are kept apart, as they were."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date

import psycopg
import pytest

from meterline import db
from tests.conftest import PG_ADMIN

BEFORE = "0130_journal_bulk_path"

# one charge accrued on three days over two months, another once
_DAYS = """
INSERT INTO penalty_accruals (account_id, provider_id, service, period, as_of, principal, total,
                              entry_id)
VALUES ('LS-1', 'uk', 'maintenance', '2025-03-01', '2025-06-10', 1000, 1.50, 7),
       ('LS-1', 'uk', 'maintenance', '2025-03-01', '2025-06-20', 1000, 2.30, 8),
       ('LS-1', 'uk', 'maintenance', '2025-03-01', '2025-07-05', 600, 3.10, 9),
       ('LS-2', 'uk', 'maintenance', '2025-03-01', '2025-06-10', 500, 0.75, 7)
"""


@pytest.fixture
async def url() -> AsyncIterator[str]:
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/meterline_register_{uuid.uuid4().hex[:8]}"
    await db.create_database(url, exist_ok=False)
    try:
        await db.migrate(url, until=BEFORE)
        yield url
    finally:
        await db.drop_database(url)


async def test_the_register_keeps_each_months_last_accrual_and_the_earlier_days_apart(
    url: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(_DAYS)
    await db.migrate(url)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT account_id, month, as_of, total FROM penalty_accruals"
                                 " ORDER BY account_id, as_of")
        assert [(a, m, d, str(t)) for a, m, d, t in await cur.fetchall()] == [
            ("LS-1", date(2025, 6, 1), date(2025, 6, 20), "2.30"),
            ("LS-1", date(2025, 7, 1), date(2025, 7, 5), "3.10"),
            ("LS-2", date(2025, 6, 1), date(2025, 6, 10), "0.75"),
        ]
        cur = await conn.execute("SELECT account_id, as_of, principal, total, entry_id"
                                 " FROM penalty_accruals_days_before_0131")
        assert [(a, d, str(p), str(t), e) for a, d, p, t, e in await cur.fetchall()] == [
            ("LS-1", date(2025, 6, 10), "1000.00", "1.50", 7)]
