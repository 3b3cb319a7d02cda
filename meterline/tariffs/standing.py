"""Standing charges: roubles per account per day, by the plan version in force that day.

An account owes its plan's standing charge for a local day when it takes the service from the
provider that day: the service is on the account (``account_services``), a meter of the
service's utility is installed by then, or the account chose a plan for it. Its plan is its
choice in force that day, else the provider's default; the version is the one in force that
day (in the account's time zone), and a charge of 0 owes nothing.

``book_standing_charges`` books a day's charges (``meterline tariffs standing-charges --day
D``; the scheduler runs it daily): a row per account, provider, service and day in
``standing_charges`` (so running it again books nothing twice), and their money as one
journal entry (``subscriber -x`` per account, ``revenue +x``), in the day's billing period or
the first open one after it when that period is closed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from meterline.ledger import Book, EntryKind, lines_table, next_entry_id, post_lines
from meterline.units import Service

# who takes what on %(day)s, with the plan and version in force, and what the version charges
DUE = """
WITH takes AS (
    SELECT account_id, provider_id, service FROM account_services
     WHERE valid_from <= %(day)s AND (valid_to IS NULL OR valid_to > %(day)s)
    UNION
    SELECT m.account_id, m.provider_id,
           CASE m.utility WHEN 'heat' THEN 'heating' ELSE m.utility END
      FROM meters m
      JOIN accounts a ON a.id = m.account_id
      JOIN addresses ad ON ad.id = a.address_id
     WHERE (m.installed_at AT TIME ZONE ad.time_zone)::date <= %(day)s
    UNION
    SELECT account_id, provider_id, service FROM account_plans WHERE valid_from <= %(day)s
), planned AS (
    SELECT t.*, account_plan(t.account_id, t.provider_id, t.service, %(day)s) AS plan_id
      FROM takes t
)
SELECT p.account_id, p.provider_id, p.service, p.plan_id, v.id AS version_id,
       v.standing_charge AS amount
  FROM planned p
  JOIN tariff_versions v ON v.id = plan_version(p.plan_id, %(day)s)
 WHERE v.standing_charge > 0
"""


@dataclass(frozen=True)
class StandingCharge:
    account_id: str
    provider_id: str
    service: Service
    plan_id: int
    version_id: int
    amount: Decimal  # roubles for the day


async def due(conn: psycopg.AsyncConnection[Any], day: date) -> list[StandingCharge]:
    """The standing charges owed for ``day``, one per account, provider and service."""
    cur = await conn.execute(DUE + " ORDER BY 1, 2, 3", {"day": day})
    return [StandingCharge(a, p, Service(s), plan, version, amount)
            for a, p, s, plan, version, amount in await cur.fetchall()]


_BOOK = """
WITH due AS (""" + DUE + """
), dated AS (
    SELECT d.*, date_trunc('month', %(day)s::date)::date AS month FROM due d
), inserted AS (
    INSERT INTO standing_charges (account_id, provider_id, service, day, plan_id, version_id,
                                  amount, period, entry_id)
    SELECT d.account_id, d.provider_id, d.service, %(day)s, d.plan_id, d.version_id, d.amount,
           CASE WHEN bp.closed_at IS NOT NULL THEN open_period(d.provider_id, d.month)
                ELSE d.month END,
           %(entry)s
      FROM dated d
      LEFT JOIN billing_periods bp ON bp.provider_id = d.provider_id AND bp.period = d.month
    ON CONFLICT (account_id, provider_id, service, day) DO NOTHING
    RETURNING account_id, provider_id, service, period, amount
), staged AS (
    INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
    SELECT account_id, provider_id, service, period, -sum(amount)
      FROM inserted GROUP BY account_id, provider_id, service, period
    RETURNING 1
)
SELECT count(*), coalesce(sum(amount), 0) FROM inserted
"""


@dataclass(frozen=True)
class Booked:
    day: date
    charges: int  # standing charges booked now (0: the day was booked already)
    amount: Decimal  # their total
    entry_id: int | None


async def book_standing_charges(conn: psycopg.AsyncConnection[Any], day: date) -> Booked:
    """Book what is owed for ``day`` and not booked yet, in one transaction."""
    async with conn.transaction():
        entry = await next_entry_id(conn)
        await lines_table(conn)
        cur = await conn.execute(_BOOK, {"day": day, "entry": entry})
        row = await cur.fetchone()
        assert row is not None
        count, total = int(row[0]), row[1]
        if not count:
            return Booked(day, 0, Decimal(0), None)
        posted = await post_lines(conn, kind=EntryKind.STANDING_CHARGE,
                                  key=f"standing-charges:{day}:{uuid.uuid4()}",
                                  counter=Book.REVENUE, reason=f"standing charges for {day}",
                                  entry_id=entry)
        assert posted is not None
        return Booked(day, count, total, posted.id)
