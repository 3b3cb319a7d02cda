"""Who is a debtor (DOMAIN.md §7, decree 354 p. 117 (а)): an account that owes a provider for
one service more than ``months`` (two) monthly charges of that service *computed by the
norm* (the individual consumption norm in force for the account's region, times its
registered residents, or its area where the norm is per m², at the price of its plan this
month), whatever its meters show, and at least ``least`` roubles, overdue, with no repayment
agreement kept.

Where no norm gives a month (a service without one, such as maintenance; an account outside
the housing register; no resident registered; no plan priced this month) the month is the
average of its last six charged months, as the bill shows it. Sewerage's norm is the cold and
hot water norms together. Each debtor carries the month it was measured with and which rule
gave it (``norm`` or ``average``), and the rule of its contract type (``disconnection_policies``:
``statutory`` for households, ``notice_then_restrict`` for a business, with its notice days).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from billing.billrun.pricing import price_parts
from meterline.errors import Invalid
from meterline.tariffs.pricing import Track
from meterline.tariffs.tracks import load_tariffs, load_tracks

logger = logging.getLogger("meterline.reminders")


@dataclass(frozen=True)
class DebtorRule:
    months: Decimal = Decimal(2)  # more than this many months of charges overdue
    least: Decimal = Decimal("0.01")  # and at least this much
    provider: str | None = None  # one provider only


@dataclass(frozen=True)
class Debtor:
    account_id: str
    provider_id: str
    service: str
    overdue: Decimal
    monthly: Decimal  # one month of the service's charge, as the rule measures it
    basis: str  # "norm" or "average"
    billing_mode: str
    policy: str  # the rule of the account's contract type (disconnection_policies)
    apartment_building: bool


# Overdue per account, provider and service, at least ``least``, with the average monthly
# charge of the last six charged months and the norm's monthly volume where there is one;
# accounts with a kept agreement with the provider, or a sequence open, are left out.
_CANDIDATES = """
WITH owed AS (
    SELECT p.account_id, p.provider_id, p.service, p.period, -sum(p.amount) AS amount
      FROM postings p
     WHERE p.book = 'subscriber' AND p.service IS NOT NULL AND p.period IS NOT NULL
       AND (%(provider)s::text IS NULL OR p.provider_id = %(provider)s)
     GROUP BY p.account_id, p.provider_id, p.service, p.period
    HAVING sum(p.amount) < 0
), overdue AS (
    SELECT o.account_id, o.provider_id, o.service, sum(o.amount) AS overdue
      FROM owed o LEFT JOIN payment_terms t ON t.provider_id = o.provider_id
     WHERE charge_due(o.period, coalesce(t.due_day, 10)) < %(today)s
     GROUP BY o.account_id, o.provider_id, o.service
    HAVING sum(o.amount) >= %(least)s
), charged AS (
    SELECT account_id, provider_id, service, avg(amount) AS monthly
      FROM (SELECT p.account_id, p.provider_id, p.service, p.period, -sum(p.amount) AS amount,
                   row_number() OVER (PARTITION BY p.account_id, p.provider_id, p.service
                                      ORDER BY p.period DESC) AS recent
              FROM postings p JOIN entries e ON e.id = p.entry_id
             WHERE p.book = 'subscriber' AND e.kind IN ('charge', 'usage')
               AND p.period IS NOT NULL
               AND (p.account_id, p.provider_id, p.service) IN
                   (SELECT account_id, provider_id, service FROM overdue)
             GROUP BY p.account_id, p.provider_id, p.service, p.period) m
     WHERE recent <= 6
     GROUP BY account_id, provider_id, service
), norms AS (  -- the individual norm in force today per region and service
    SELECT DISTINCT ON (region_code, service) region_code, service, basis, quantity
      FROM consumption_norms
     WHERE scope = 'individual' AND valid_from <= %(today)s
       AND (valid_to IS NULL OR valid_to > %(today)s)
     ORDER BY region_code, service, valid_from DESC
)
SELECT d.account_id, d.provider_id, d.service, d.overdue, c.monthly AS average,
       a.billing_mode, dp.rule AS policy, a.premises_id IS NOT NULL AS apartment_building,
       (SELECT sum(n.quantity * CASE n.basis WHEN 'resident' THEN a.residents
                                             ELSE coalesce(a.area, 0) END)
          FROM premises pr JOIN houses h ON h.id = pr.house_id
          JOIN streets s ON s.id = h.street_id JOIN cities ci ON ci.id = s.city_id
          JOIN norms n ON n.region_code = ci.region_code
                      AND (n.service = d.service OR (d.service = 'sewerage'
                                                     AND n.service IN ('cold_water', 'hot_water')))
         WHERE pr.id = a.premises_id) AS norm_volume
  FROM overdue d
  JOIN charged c USING (account_id, provider_id, service)
  JOIN accounts a ON a.id = d.account_id
  JOIN contract_types ct ON ct.code = a.contract_type
  JOIN disconnection_policies dp ON dp.code = ct.policy
 WHERE a.billing_mode = 'postpaid'
   AND NOT EXISTS (SELECT 1 FROM instalment_agreements g
                    WHERE g.account_id = d.account_id AND g.provider_id = d.provider_id
                      AND g.status = 'kept')
   AND NOT EXISTS (SELECT 1 FROM debt_procedures p
                    WHERE (p.account_id, p.provider_id, p.service)
                          = (d.account_id, d.provider_id, d.service) AND p.stage <> 'closed')
 ORDER BY d.account_id, d.provider_id, d.service
"""


async def norm_months(conn: psycopg.AsyncConnection[Any],
                      volumes: dict[tuple[str, str, str], Decimal],
                      month: date) -> dict[tuple[str, str, str], Decimal]:
    """The charge of each (account, provider, service)'s norm volume over ``month`` by its
    plan, as the bill run prices it; keys with no plan or no price this month are left out."""
    keys = [k for k, v in volumes.items() if v > 0]
    if not keys:
        return {}
    found = await load_tracks(conn, keys)
    priced = [(k, t) for k, t in zip(keys, found, strict=True) if t is not None]
    tariffs = await load_tariffs(conn)
    after = (month + timedelta(days=32)).replace(day=1)

    def charge(group: list[tuple[tuple[str, str, str], Track]]) -> list[Decimal]:
        parts = price_parts(tariffs, [t for _, t in group], [volumes[k] for k, _ in group],
                            month, after)
        return [sum((p.charged for p in line), Decimal("0.00")) for line in parts]

    try:
        return {k: m for (k, _), m in zip(priced, charge(priced), strict=True)}
    except Invalid:  # some have no price this month: price them one by one
        months: dict[tuple[str, str, str], Decimal] = {}
        for one in priced:
            try:
                months[one[0]] = charge([one])[0]
            except Invalid:
                logger.info("%s %s %s: no price this month for the norm; the average counts",
                            *one[0])
        return months


async def find_debtors(conn: psycopg.AsyncConnection[Any], now: datetime,
                       rule: DebtorRule) -> list[Debtor]:
    """The debtors without an open sequence, as of ``now``."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_CANDIDATES, {"today": now.date(), "provider": rule.provider,
                                    "least": rule.least})
    rows = await cur.fetchall()
    volumes = {(r["account_id"], r["provider_id"], r["service"]): r["norm_volume"]
               for r in rows if r["norm_volume"]}
    by_norm = await norm_months(conn, volumes, now.date().replace(day=1))
    debtors = []
    for r in rows:
        norm = by_norm.get((r["account_id"], r["provider_id"], r["service"]))
        monthly, basis = (norm, "norm") if norm else (r["average"], "average")
        if r["overdue"] > rule.months * monthly:
            debtors.append(Debtor(r["account_id"], r["provider_id"], r["service"], r["overdue"],
                                  monthly.quantize(Decimal("0.01")), basis, r["billing_mode"],
                                  r["policy"], r["apartment_building"]))
    return debtors
