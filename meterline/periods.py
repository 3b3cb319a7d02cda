"""Billing periods: per provider and month, open until the bill run closes them.

A period is the first day of a calendar month in the account's own time zone. A month with no
row in ``billing_periods``, or with ``closed_at`` NULL, is open. Charges for a closed period (a
late reading) are booked in the first open period after it, as a correction; payments and
penalties may still name it. Consumption over an interval belongs to the period holding its
last instant (an interval ending at local midnight on the 1st is the previous month's).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from meterline.errors import Invalid


def period_of(moment: datetime, time_zone: str) -> date:
    """The billing period (first day of the month) holding ``moment`` in ``time_zone``."""
    if moment.tzinfo is None:
        raise Invalid(f"{moment} has no time zone", code="naive-time")
    local = moment.astimezone(ZoneInfo(time_zone))
    return date(local.year, local.month, 1)


def period_of_interval(end: datetime, time_zone: str) -> date:
    """The billing period of consumption over an interval ending at ``end``: the one holding
    its last instant."""
    return period_of(end - timedelta(microseconds=1), time_zone)


def check_period(period: date) -> date:
    if period.day != 1:
        raise Invalid(f"a billing period is the first day of its month, not {period}",
                      code="bad-period", field=["period"])
    return period


_CLOSE = """
INSERT INTO billing_periods (provider_id, period, closed_at) VALUES (%s, %s, now())
ON CONFLICT (provider_id, period) DO UPDATE SET closed_at = now()
 WHERE billing_periods.closed_at IS NULL
RETURNING closed_at
"""

_IS_CLOSED = """
SELECT 1 FROM billing_periods
 WHERE provider_id = %s AND period = %s AND closed_at IS NOT NULL
"""

_OPEN_PERIOD = "SELECT open_period(%s, %s)"


async def close_period(conn: psycopg.AsyncConnection[Any], provider_id: str,
                       period: date) -> bool:
    """Close the provider's period (the bill run does, once it has billed it); True if it was
    open until now. Later charges for it go to the next open period. Readings being stored
    are committed first, and readings stored after it are flagged (``readings_writers_lock``,
    migration 0051): a reading is never both unflagged and unbilled."""
    await conn.execute("SELECT hold_readings_writers()")
    cur = await conn.execute(_CLOSE, (provider_id, check_period(period)))
    return await cur.fetchone() is not None


async def is_closed(conn: psycopg.AsyncConnection[Any], provider_id: str, period: date) -> bool:
    cur = await conn.execute(_IS_CLOSED, (provider_id, check_period(period)))
    return await cur.fetchone() is not None


async def open_period(conn: psycopg.AsyncConnection[Any], provider_id: str,
                      period: date) -> date:
    """The first period at or after ``period`` that is open for the provider: where a charge
    for ``period`` is booked."""
    cur = await conn.execute(_OPEN_PERIOD, (provider_id, check_period(period)))
    row = await cur.fetchone()
    assert row is not None
    found: date = row[0]
    return found
