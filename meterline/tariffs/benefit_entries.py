"""Benefits of a billing period booked as their own ledger lines (``meterline tariffs benefits
--period YYYY-MM``, run once the month's consumption is in, before the bill run).

A grant is a row of ``account_benefits`` (the account, the category = a benefit rule's code,
the service, the days it is held, the beneficiaries among the residents); the rule is the
``benefit_rules`` row of that code and service of a provider the account buys from. For each
grant held in the period:

- a norm of area (m²): the benefit is on what the service charged the account for the period
  (metered usage of the month and the bill run's charges), by ``benefits.area_benefit`` with
  the account's area and registered residents, scaled by the days held;
- a norm of volume (kWh, m³, Gcal): on the metered lines of the days held (a line crossing
  the grant's first or last day counts for its share of time), by ``benefits.volume_benefit``.

Each is one entry (kind ``benefit``: ``subscriber +d``, ``discounts -d``) keyed by account,
provider, service, period and rule, in the period (or the first open one after it when it is
closed). Running again changes nothing; when the period's charges changed since (a late
reading, a correction), the entry is reversed and the new amount posted under the next
revision of the key, never edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import psycopg

from meterline.ledger import Book, Entry, EntryKind, Posting, post, reverse
from meterline.periods import open_period
from meterline.tariffs.benefits import area_benefit, days_held, volume_benefit
from meterline.tariffs.model import Basis, BenefitRule
from meterline.tariffs.pricing import month_id, month_start
from meterline.tariffs.zones import time_zone
from meterline.units import Service

_GRANTS = """
SELECT g.account_id, r.provider_id, g.service, r.code, r.name, r.percent, r.norm, r.norm_basis,
       g.valid_from, g.valid_to, g.beneficiaries, a.residents, a.area, ad.time_zone
  FROM account_benefits g
  JOIN benefit_rules r ON r.code = g.category AND r.service = g.service
  JOIN balances b ON b.account_id = g.account_id AND b.provider_id = r.provider_id
  JOIN accounts a ON a.id = g.account_id
  JOIN addresses ad ON ad.id = a.address_id
 WHERE g.valid_from < %(end)s AND (g.valid_to IS NULL OR g.valid_to > %(start)s)
 ORDER BY 1, 2, 3, 4, g.valid_from
"""

# what the service charged in the period: metered lines of the month (by the local time of
# their end, reversals included) and the bill run's charges net of their corrections. A
# correction of charges is a reversal that moves revenue back, whether it names the entry it
# reverses or, as the bill run's bulk reversals do, corrects many bills at once; reversals of
# benefits (discounts) or payments (clearing) are not charges.
_PERIOD_CHARGES = """
SELECT coalesce((SELECT sum(c.amount) FROM charges c
                  WHERE c.account_id = %(account)s AND c.provider_id = %(provider)s
                    AND c.service = %(service)s
                    AND c.interval_end > %(from)s AND c.interval_end <= %(to)s), 0)
     - coalesce((SELECT sum(p.amount) FROM postings p JOIN entries e ON e.id = p.entry_id
                  WHERE p.book = 'subscriber' AND p.account_id = %(account)s
                    AND p.provider_id = %(provider)s AND p.service = %(service)s
                    AND p.period = %(period)s
                    AND (e.kind = 'charge' OR (e.kind = 'reversal' AND EXISTS (
                         SELECT 1 FROM postings r
                          WHERE r.entry_id = e.id AND r.book = 'revenue'
                            AND r.provider_id = p.provider_id AND r.service = p.service)))), 0)
"""

_LINES_HELD = """
SELECT interval_start, interval_end, quantity, amount FROM charges
 WHERE account_id = %(account)s AND provider_id = %(provider)s AND service = %(service)s
   AND interval_end > %(from)s AND interval_start < %(to)s
"""

_REVISIONS = """
SELECT e.key, (SELECT sum(p.amount) FROM postings p
                WHERE p.entry_id = e.id AND p.book = 'subscriber')
  FROM entries e
 WHERE (e.key = %(key)s OR starts_with(e.key, %(key)s || ':r')) AND e.kind = 'benefit'
   AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.reverses = e.id)
 ORDER BY e.id DESC LIMIT 1
"""

_REVISION_COUNT = """
SELECT count(*) FROM entries WHERE (key = %(key)s OR starts_with(key, %(key)s || ':r'))
   AND kind = 'benefit'
"""


@dataclass(frozen=True)
class BookedBenefit:
    account_id: str
    provider_id: str
    service: Service
    rule: str
    amount: Decimal  # what the period's benefit is now
    action: str  # "posted", "corrected", "unchanged", "nothing" (no benefit this period)


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=time_zone(zone)).astimezone(UTC)


async def _scalar(conn: psycopg.AsyncConnection[Any], sql: str, params: dict[str, Any]) -> Any:
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def book_benefits(conn: psycopg.AsyncConnection[Any], period: date) -> list[BookedBenefit]:
    """Book (or correct) the benefits of ``period`` (its first day), in one transaction."""
    start = month_start(month_id(period))
    end = month_start(month_id(period) + 1)
    days_in_period = (end - start).days
    done: list[BookedBenefit] = []
    async with conn.transaction():
        cur = await conn.execute(_GRANTS, {"start": start, "end": end})
        for (account, provider, service, code, name, percent, norm, basis, held_from, held_to,
             beneficiaries, residents, area, zone) in await cur.fetchall():
            rule = BenefitRule(provider_id=provider, code=code, name=name,
                               service=Service(service), percent=percent, norm=norm,
                               norm_basis=Basis(basis))
            days = days_held(start, end, held_from, held_to)
            people = max(residents or 0, beneficiaries, 1)
            where = {"account": account, "provider": provider, "service": service}
            if rule.norm_basis is Basis.M2:
                charge = await _scalar(conn, _PERIOD_CHARGES, {
                    **where, "period": start, "from": _midnight(start, zone),
                    "to": _midnight(end, zone)})
                granted = area_benefit(rule, charge=charge, area=area or Decimal(0),
                                       residents=people, beneficiaries=beneficiaries,
                                       days=days, days_in_period=days_in_period)
            else:
                charge, volume = await _held_lines(
                    conn, where, _midnight(max(start, held_from), zone),
                    _midnight(min(end, held_to) if held_to else end, zone))
                granted = volume_benefit(rule, charge=charge, volume=volume, residents=people,
                                         beneficiaries=beneficiaries, days=days,
                                         days_in_period=days_in_period)
            done.append(await _book(conn, rule, account, start, granted.amount))
    return done


async def _held_lines(conn: psycopg.AsyncConnection[Any], where: dict[str, Any],
                      held_from: datetime, held_to: datetime) -> tuple[Decimal, Decimal]:
    """Money and volume of the metered lines while the benefit was held, a line crossing
    either end counting for its share of time (exact, then to the ledger's 12 decimals)."""
    cur = await conn.execute(_LINES_HELD, {**where, "from": held_from, "to": held_to})
    money, volume = Fraction(0), Fraction(0)
    for line_start, line_end, quantity, amount in await cur.fetchall():
        inside = min(line_end, held_to) - max(line_start, held_from)
        share = Fraction(inside // timedelta(microseconds=1),
                         (line_end - line_start) // timedelta(microseconds=1))
        money += Fraction(amount) * share
        volume += Fraction(quantity) * share
    exp = Decimal("1e-12")
    return ((Decimal(money.numerator) / money.denominator).quantize(exp),
            (Decimal(volume.numerator) / volume.denominator).quantize(exp))


async def _book(conn: psycopg.AsyncConnection[Any], rule: BenefitRule, account: str,
                period: date, amount: Decimal) -> BookedBenefit:
    base = f"benefit:{account}:{rule.provider_id}:{rule.service}:{period}:{rule.code}"
    cur = await conn.execute(_REVISIONS, {"key": base})
    latest = await cur.fetchone()
    result = BookedBenefit(account, rule.provider_id, rule.service, rule.code, amount,
                           "unchanged")
    if latest is not None and latest[1] == amount:
        return result
    action = "corrected" if latest is not None else "posted"
    if latest is not None:
        await reverse(conn, latest[0], reason=f"benefit {rule.code} for {period} recomputed")
    if amount == 0:
        return BookedBenefit(account, rule.provider_id, rule.service, rule.code, amount,
                             action if latest is not None else "nothing")
    revisions = await _scalar(conn, _REVISION_COUNT, {"key": base})
    key = base if revisions == 0 else f"{base}:r{revisions}"
    booked_in = await open_period(conn, rule.provider_id, period)
    await post(conn, [Entry(EntryKind.BENEFIT, key, (
        Posting(Book.SUBSCRIBER, rule.provider_id, amount, account_id=account,
                service=rule.service, period=booked_in),
        Posting(Book.DISCOUNTS, rule.provider_id, -amount, service=rule.service,
                period=booked_in),
    ), reason=f"{rule.name}, {period:%Y-%m}")])
    return BookedBenefit(account, rule.provider_id, rule.service, rule.code, amount, action)
