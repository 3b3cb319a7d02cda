"""The scheduler's tariff jobs: yesterday's standing charges, last month's benefits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from billing.scheduler.jobs import run_job
from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.settings import Settings
from meterline.tariffs.choices import assign_plan
from meterline.units import Service
from tests.conftest import unique
from tests.factories import book_customer, grant_benefit


async def test_standing_charges_of_the_day_before_the_slot_are_booked_once(
    conn: psycopg.AsyncConnection[Any], make_settings: Callable[..., Settings],
) -> None:
    made = await book_customer(conn)
    await assign_plan(conn, made.account_id, made.provider_id, "business-tiers",
                      date(2026, 1, 1))
    settings = make_settings()
    slot = datetime(2026, 2, 3, 0, 30, tzinfo=UTC)  # 03:30 in Moscow: books February 2
    detail = await run_job(conn, settings, "standing-charges", slot, "cli:test")
    assert detail is not None and detail.startswith("standing charges of 2026-02-02: ")
    assert await run_job(conn, settings, "standing-charges", slot, "cli:test") is None
    cur = await conn.execute("SELECT day, amount FROM standing_charges WHERE account_id = %s",
                             (made.account_id,))
    assert await cur.fetchall() == [(date(2026, 2, 2), Decimal(25))]


async def test_benefits_of_the_month_before_the_slot_are_booked(
    conn: psycopg.AsyncConnection[Any], make_settings: Callable[..., Settings],
) -> None:
    made = await book_customer(conn, "teploset")
    await grant_benefit(conn, made.account_id, "veteran_heating", "heating", date(2026, 1, 1),
                        area="54", residents=3)
    february = date(2026, 2, 1)
    await post(conn, [Entry(EntryKind.CHARGE, unique("heating"), (
        Posting(Book.SUBSCRIBER, made.provider_id, Decimal("-2284.20"),
                account_id=made.account_id, service=Service.HEATING, period=february),
        Posting(Book.REVENUE, made.provider_id, Decimal("2284.20"), service=Service.HEATING,
                period=february)))])
    detail = await run_job(conn, make_settings(), "benefits",
                           datetime(2026, 3, 1, tzinfo=UTC), "cli:test")
    assert detail is not None and detail.startswith("benefits of 2026-02: ")
    cur = await conn.execute(
        "SELECT p.amount FROM postings p JOIN entries e ON e.id = p.entry_id "
        "WHERE e.kind = 'benefit' AND p.account_id = %s", (made.account_id,))
    assert await cur.fetchall() == [(Decimal("380.70"),)]
