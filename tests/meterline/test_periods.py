"""Billing periods: months in the account's time zone, closed by the bill run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest

from meterline.errors import Invalid
from meterline.periods import close_period, is_closed, open_period, period_of, period_of_interval
from tests.factories import customer


def test_a_period_is_the_local_month_and_an_interval_belongs_to_its_last_instant() -> None:
    midnight_in_moscow = datetime(2026, 10, 31, 21, 0, tzinfo=UTC)
    assert period_of(midnight_in_moscow, "Europe/Moscow") == date(2026, 11, 1)
    assert period_of(midnight_in_moscow, "Europe/Berlin") == date(2026, 10, 1)
    assert period_of_interval(midnight_in_moscow, "Europe/Moscow") == date(2026, 10, 1)
    with pytest.raises(Invalid):
        period_of(datetime(2026, 10, 31, 21, 0), "Europe/Moscow")


async def test_closing_is_once_and_charges_go_to_the_first_open_period(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    provider = (await customer(conn)).provider_id
    assert await open_period(conn, provider, date(2026, 8, 1)) == date(2026, 8, 1)
    assert await close_period(conn, provider, date(2026, 8, 1))
    assert not await close_period(conn, provider, date(2026, 8, 1))  # closed already
    await close_period(conn, provider, date(2026, 9, 1))
    assert await is_closed(conn, provider, date(2026, 9, 1))
    assert not await is_closed(conn, provider, date(2026, 10, 1))
    assert await open_period(conn, provider, date(2026, 8, 1)) == date(2026, 10, 1)
    with pytest.raises(Invalid):
        await close_period(conn, provider, date(2026, 9, 15))
