"""What accounts owe, by age: per account, provider and service, the unpaid charges not yet
due and those overdue 0–30, 31–90 and 91+ days (days of delay after the due date, as the
penalty counts them: the day after the due date is day 1), plus the penalties owed.

Read from the journal: a month's debt is its subscriber postings on (provider, service,
period) netted (charges less what paid them); penalties are the postings without a period.
The debtors list filters by region, house, provider and the least overdue amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

_AGING = """
WITH owed AS (
    SELECT p.account_id, p.provider_id, p.service, p.period, -sum(p.amount) AS amount
      FROM postings p
     WHERE p.book = 'subscriber' AND p.service IS NOT NULL
       AND (%(account)s::text IS NULL OR p.account_id = %(account)s)
       AND (%(provider)s::text IS NULL OR p.provider_id = %(provider)s)
     GROUP BY p.account_id, p.provider_id, p.service, p.period
    HAVING sum(p.amount) < 0
), aged AS (
    SELECT o.*, %(as_of)s - charge_due(o.period, coalesce(t.due_day, 10)) AS late
      FROM owed o LEFT JOIN payment_terms t ON t.provider_id = o.provider_id
)
SELECT g.account_id, g.provider_id, g.service,
       coalesce(sum(amount) FILTER (WHERE period IS NOT NULL AND late <= 0), 0) AS current,
       coalesce(sum(amount) FILTER (WHERE late BETWEEN 1 AND 30), 0) AS days_0_30,
       coalesce(sum(amount) FILTER (WHERE late BETWEEN 31 AND 90), 0) AS days_31_90,
       coalesce(sum(amount) FILTER (WHERE late > 90), 0) AS days_91,
       coalesce(sum(amount) FILTER (WHERE period IS NULL), 0) AS penalties,
       count(*) FILTER (WHERE late > 0) AS periods_overdue,
       min(period) FILTER (WHERE late > 0) AS oldest
  FROM aged g
  JOIN accounts a ON a.id = g.account_id
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN premises pr ON pr.id = a.premises_id
 WHERE (%(region)s::text IS NULL OR ad.region = %(region)s)
   AND (%(house)s::bigint IS NULL OR pr.house_id = %(house)s)
 GROUP BY g.account_id, g.provider_id, g.service
"""


@dataclass(frozen=True)
class Aging:
    account_id: str
    provider_id: str
    service: str
    current: Decimal  # charged, not yet due
    days_0_30: Decimal
    days_31_90: Decimal
    days_91: Decimal
    penalties: Decimal
    periods_overdue: int
    oldest: date | None

    @property
    def overdue(self) -> Decimal:
        return self.days_0_30 + self.days_31_90 + self.days_91


async def aging(conn: psycopg.AsyncConnection[Any], as_of: date, *,
                account: str | None = None, provider: str | None = None,
                region: str | None = None, house: int | None = None) -> list[Aging]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_AGING + " ORDER BY g.account_id, g.provider_id, g.service", {
        "as_of": as_of, "account": account, "provider": provider, "region": region,
        "house": house})
    return [Aging(**row) for row in await cur.fetchall()]


@dataclass(frozen=True)
class Debtor:
    account_id: str
    holder_name: str
    address: str
    provider_id: str
    overdue: Decimal
    days_0_30: Decimal
    days_31_90: Decimal
    days_91: Decimal
    penalties: Decimal
    oldest: date | None
    services: tuple[str, ...]


_DEBTORS = f"""
SELECT x.account_id, a.holder_name, ad.full_text AS address, x.provider_id,
       sum(x.days_0_30 + x.days_31_90 + x.days_91) AS overdue, sum(x.days_0_30) AS days_0_30,
       sum(x.days_31_90) AS days_31_90, sum(x.days_91) AS days_91,
       sum(x.penalties) AS penalties, min(x.oldest) AS oldest,
       array_agg(x.service ORDER BY x.service)
           FILTER (WHERE x.days_0_30 + x.days_31_90 + x.days_91 > 0) AS services
  FROM ({_AGING}) x
  JOIN accounts a ON a.id = x.account_id
  JOIN addresses ad ON ad.id = a.address_id
 GROUP BY x.account_id, a.holder_name, ad.full_text, x.provider_id
HAVING sum(x.days_0_30 + x.days_31_90 + x.days_91) >= %(least)s
   AND sum(x.days_0_30 + x.days_31_90 + x.days_91) > 0
 ORDER BY overdue DESC, x.account_id, x.provider_id
"""


async def debtors(conn: psycopg.AsyncConnection[Any], as_of: date, *,
                  provider: str | None = None, region: str | None = None,
                  house: int | None = None, least: Decimal = Decimal("0.01")) -> list[Debtor]:
    """Accounts overdue to a provider by at least ``least``, the largest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_DEBTORS, {"as_of": as_of, "account": None, "provider": provider,
                                 "region": region, "house": house, "least": least})
    return [Debtor(**{**row, "services": tuple(row["services"] or ())})
            for row in await cur.fetchall()]


def totals(rows: Sequence[Aging]) -> dict[str, Decimal]:
    return {name: sum((getattr(r, name) for r in rows), Decimal(0))
            for name in ("current", "days_0_30", "days_31_90", "days_91", "penalties")}
