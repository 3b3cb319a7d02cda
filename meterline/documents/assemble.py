"""Payment documents of a period assembled from what the bill run stored: the accounts, their
bill lines, the payees' details, the readings the lines rest on, the houses' common volumes,
the norms. A batch of accounts costs one query per kind, not one per account.

Debt brought forward, payments received, penalties and benefits are the journal's, per
provider and per service: the debt is what the subscriber postings of earlier periods leave
(payments booked before the period only), payments are those booked during the period,
penalties those of the period, benefits the period's entries that move the discounts book
(the tariffs' benefits job's, net of their corrections).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from meterline.documents.model import (
    ZERO,
    CommonVolume,
    Instalment,
    Line,
    LinePart,
    MeterReading,
    Payee,
    PayeeTotal,
    PaymentDocument,
)
from meterline.errors import NotFound
from meterline.money import kopecks
from meterline.units import Service

UNITS = {"m3": "м³", "kWh": "кВт·ч", "Gcal": "Гкал", "m2": "м²", "person": "чел.",
         "resident": "чел."}
# the charge for a month is due on this day of the next month, unless the provider's payment
# terms set another (DOMAIN §1: the management contract may; table payment_terms)
DUE_DAY = 10

_ACCOUNTS = """
SELECT a.id, a.els, a.holder_name, ad.full_text, a.area, a.residents, ad.time_zone,
       p.house_id, c.region_code, h.common_area
  FROM accounts a
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN premises p ON p.id = a.premises_id
  LEFT JOIN houses h ON h.id = p.house_id
  LEFT JOIN streets s ON s.id = h.street_id
  LEFT JOIN cities c ON c.id = s.city_id
 WHERE a.id = ANY(%(accounts)s)
"""

_LINES = """
SELECT * FROM bill_lines WHERE period = %(period)s AND account_id = ANY(%(accounts)s)
 ORDER BY account_id, CASE service WHEN 'maintenance' THEN 0 WHEN 'capital_repair' THEN 9
          ELSE 1 END, service, common, rated
"""

_PROVIDERS = """
SELECT p.id, p.name, p.inn, p.kpp, p.bank_name, p.bic, p.corr_account, p.settlement_account,
       p.address, p.phone, p.email, p.website, t.due_day
  FROM providers p LEFT JOIN payment_terms t ON t.provider_id = p.id
 WHERE p.id = ANY(%(providers)s)
"""

# The readings of each meter read by people that the period's line rests on.
_READINGS = """
SELECT m.id AS meter_id, m.account_id, m.utility, cur.ts AS cur_ts, cur.value AS cur_value,
       prev.value AS prev_value, cur.source, v.volume AS substituted, v.method AS substitution
  FROM meters m
  JOIN accounts a ON a.id = m.account_id
  JOIN addresses ad ON ad.id = a.address_id
  JOIN providers pr ON pr.id = m.provider_id
  CROSS JOIN LATERAL (
      SELECT reading_window_end(%(previous)s, pr.reading_submission_day)::timestamp
                 AT TIME ZONE ad.time_zone AS opens,
             least(reading_window_end(%(period)s, pr.reading_submission_day)::timestamp
                       AT TIME ZONE ad.time_zone,
                   (least(m.out_of_order_since, m.verification_due)::timestamp
                       AT TIME ZONE ad.time_zone)) AS closes) w
  LEFT JOIN LATERAL (
      SELECT ts, value, source FROM readings r
       WHERE r.meter_id = m.id AND r.ts >= w.opens AND r.ts < w.closes
       ORDER BY ts DESC LIMIT 1) cur ON true
  LEFT JOIN LATERAL (
      SELECT value FROM readings r
       WHERE r.meter_id = m.id AND r.ts < w.opens ORDER BY ts DESC LIMIT 1) prev ON true
  LEFT JOIN meter_volumes v ON v.meter_id = m.id AND v.period = %(period)s
 WHERE m.account_id = ANY(%(accounts)s) AND m.gateway_id IS NULL
 ORDER BY m.id
"""

# Each house's volumes: its meters over the calendar month, the apartments' billed volumes,
# the common-property norm volume.
_COMMON = """
WITH houses AS (
    SELECT DISTINCT p.house_id, h.common_area, c.region_code, ad.time_zone
      FROM accounts a JOIN premises p ON p.id = a.premises_id
      JOIN houses h ON h.id = p.house_id JOIN streets s ON s.id = h.street_id
      JOIN cities c ON c.id = s.city_id JOIN addresses ad ON ad.id = a.address_id
     WHERE a.id = ANY(%(accounts)s)
)
SELECT h.house_id, hm.utility AS service, ends.value - starts.value AS house_volume,
       (SELECT coalesce(sum(l.volume), 0) FROM bill_lines l
          JOIN accounts a ON a.id = l.account_id JOIN premises p ON p.id = a.premises_id
         WHERE l.period = %(period)s AND p.house_id = h.house_id
           AND l.service = hm.utility AND NOT l.common) AS individual,
       coalesce((SELECT quantity FROM consumption_norms n
                  WHERE n.region_code = h.region_code AND n.service = hm.utility
                    AND n.scope = 'common' AND n.valid_from <= %(period)s
                    AND (n.valid_to IS NULL OR n.valid_to > %(period)s)
                  ORDER BY n.valid_from DESC LIMIT 1), 0) * h.common_area AS cap
  FROM houses h
  JOIN house_meters hm ON hm.house_id = h.house_id
                      AND hm.utility IN ('cold_water', 'hot_water', 'electricity')
  CROSS JOIN LATERAL (
      SELECT value FROM readings r WHERE r.meter_id = hm.id
         AND r.ts <= (%(period)s::date + interval '1 month')::timestamp AT TIME ZONE h.time_zone
       ORDER BY ts DESC LIMIT 1) ends
  CROSS JOIN LATERAL (
      SELECT value FROM readings r WHERE r.meter_id = hm.id
         AND r.ts <= %(period)s::timestamp AT TIME ZONE h.time_zone
       ORDER BY ts DESC LIMIT 1) starts
"""

# What the journal holds for each account, provider and service around the period.
_MONEY = """
SELECT p.account_id, p.provider_id, p.service,
       coalesce(sum(p.amount) FILTER (WHERE w.before), 0) AS before,
       coalesce(sum(p.amount) FILTER (WHERE w.paid), 0) AS paid,
       coalesce(-sum(p.amount) FILTER (WHERE e.kind = 'penalty'
                                        AND p.period = %(period)s), 0) AS penalties,
       coalesce(sum(p.amount) FILTER (WHERE p.period = %(period)s AND EXISTS (
           SELECT 1 FROM postings d
            WHERE d.entry_id = p.entry_id AND d.book = 'discounts')), 0) AS benefits
  FROM postings p
  JOIN entries e ON e.id = p.entry_id
  JOIN accounts a ON a.id = p.account_id
  JOIN addresses ad ON ad.id = a.address_id
  CROSS JOIN LATERAL (
      SELECT %(period)s::timestamp AT TIME ZONE ad.time_zone AS starts,
             %(next)s::timestamp AT TIME ZONE ad.time_zone AS ends) m
  CROSS JOIN LATERAL (
      SELECT e.kind IN ('payment', 'topup') AND e.booked_at >= m.starts
                 AND e.booked_at < m.ends AS paid) q
  CROSS JOIN LATERAL (
      SELECT q.paid,
             NOT q.paid
             AND (e.kind NOT IN ('payment', 'topup') OR e.booked_at < m.starts)
             AND coalesce(p.period, date_trunc('month', e.booked_at AT TIME ZONE ad.time_zone)
                                    ::date) < %(period)s AS before) w
 WHERE p.book = 'subscriber' AND p.account_id = ANY(%(accounts)s)
 GROUP BY p.account_id, p.provider_id, p.service
"""

_NORMS = """
SELECT DISTINCT ON (region_code, service, scope) region_code, service, scope, quantity, unit
  FROM consumption_norms
 WHERE region_code = ANY(%(regions)s) AND valid_from <= %(period)s
   AND (valid_to IS NULL OR valid_to > %(period)s)
 ORDER BY region_code, service, scope, valid_from DESC
"""


# Repayment agreements in force: signed before the period ended and kept (section 5).
_INSTALMENTS = """
SELECT account_id, provider_id, signed_on, debt, parts
  FROM instalment_agreements
 WHERE account_id = ANY(%(accounts)s) AND status = 'kept' AND signed_on < %(next)s
 ORDER BY account_id, provider_id, id
"""


def _payee(row: dict[str, Any]) -> Payee:
    return Payee(row["id"], row["name"], row["inn"] or "", row["kpp"], row["bank_name"] or "",
                 row["bic"] or "", row["corr_account"] or "", row["settlement_account"] or "",
                 row["address"], row["phone"], row["email"], row["website"])


def _line(row: dict[str, Any]) -> Line:
    return Line(Service(row["service"]), row["provider_id"], common=row["common"],
                unit=UNITS.get(row["unit"], row["unit"]), volume=row["volume"],
                tariff=row["tariff"], charged=row["charged"],
                recalculation=row["recalculation"],
                recalculation_reason=row["recalculation_reason"],
                method=row["method"],
                parts=tuple(LinePart(p["zone"], p["band"], Decimal(p["volume"]),
                                     Decimal(p["tariff"]), Decimal(p["charged"]))
                            for p in row["parts"] or ()))


async def _rows(conn: psycopg.AsyncConnection[Any], query: Any,
                params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, params)
    return await cur.fetchall()


def months_before(period: date, months: int) -> date:
    index = period.year * 12 + period.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def money_text(amount: Decimal) -> str:
    """``12345.6`` -> ``12 345,60``."""
    return f"{amount:,.2f}".replace(",", " ").replace(".", ",")


def due_date(period: date, due_day: int | None = None) -> date:
    """The day the charge for ``period`` is due: ``due_day`` (the provider's, default the
    10th) of the next month, its last day when the month is shorter (as SQL's
    ``charge_due``)."""
    year, month = period.year + period.month // 12, period.month % 12 + 1
    return date(year, month, min(due_day or DUE_DAY, calendar.monthrange(year, month)[1]))


async def payment_documents(
    conn: psycopg.AsyncConnection[Any], period: date, account_ids: Sequence[str],
) -> list[PaymentDocument]:
    """The documents of ``account_ids`` for ``period``, for the accounts that were billed
    (in the order given)."""
    params = {"period": period, "accounts": list(account_ids),
              "previous": months_before(period, 1),
              "next": date(period.year + period.month // 12, period.month % 12 + 1, 1)}
    accounts = {r["id"]: r for r in await _rows(conn, _ACCOUNTS, params)}
    lines: dict[str, list[Line]] = defaultdict(list)
    for row in await _rows(conn, _LINES, params):
        lines[row["account_id"]].append(_line(row))
    money: dict[tuple[str, str], dict[str | None, Money]] = defaultdict(dict)
    for r in await _rows(conn, _MONEY, params):
        money[(r["account_id"], r["provider_id"])][r["service"]] = Money(
            -r["before"], r["paid"], r["penalties"], kopecks(r["benefits"]))

    providers = {line.provider_id for found in lines.values() for line in found}
    providers |= {p for _, p in money}
    payee_rows = await _rows(conn, _PROVIDERS, {"providers": sorted(providers)})
    payees = {r["id"]: _payee(r) for r in payee_rows}
    due_days: dict[str, int | None] = {r["id"]: r["due_day"] for r in payee_rows}
    readings: dict[str, list[MeterReading]] = defaultdict(list)
    for r in await _rows(conn, _READINGS, params):
        service = Service.HEATING if r["utility"] == "heat" else Service(r["utility"])
        unit = UNITS["kWh" if r["utility"] == "electricity" else "m3"]
        if r["cur_ts"] is not None and r["prev_value"] is not None:
            readings[r["account_id"]].append(MeterReading(
                r["meter_id"], service, unit, r["prev_value"], r["cur_value"],
                r["cur_value"] - r["prev_value"], "meter", r["source"] or ""))
        elif r["substituted"] is not None:
            readings[r["account_id"]].append(MeterReading(
                r["meter_id"], service, unit, r["prev_value"], None, r["substituted"],
                r["substitution"]))
    common: dict[int, list[CommonVolume]] = defaultdict(list)
    for r in await _rows(conn, _COMMON, params):
        service = Service(r["service"])
        common[r["house_id"]].append(CommonVolume(
            service, UNITS["kWh" if service == Service.ELECTRICITY else "m3"],
            r["house_volume"], r["individual"],
            max(r["house_volume"] - r["individual"], Decimal(0)), r["cap"]))
    regions = sorted({a["region_code"] for a in accounts.values() if a["region_code"]})
    norms: dict[str, list[tuple[Service, str, Decimal, str]]] = defaultdict(list)
    for r in await _rows(conn, _NORMS, {**params, "regions": regions}):
        norms[r["region_code"]].append(
            (Service(r["service"]), r["scope"], r["quantity"], UNITS.get(r["unit"], r["unit"])))

    instalments: dict[str, list[Instalment]] = defaultdict(list)
    deferred: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in await _rows(conn, _INSTALMENTS, params):
        item, later = _instalment(r, period, due_days.get(r["provider_id"]))
        instalments[r["account_id"]].append(item)
        deferred[(r["account_id"], r["provider_id"])] += later

    documents = []
    for account_id in account_ids:
        account, own = accounts.get(account_id), lines.get(account_id)
        if account is None or not own:
            continue
        own = _with_money(own, money, account_id)
        sellers = sorted({line.provider_id for line in own})
        issuer = next((payees[line.provider_id] for line in own
                       if line.service == Service.MAINTENANCE), payees[sellers[0]])
        totals = tuple(_total(payees[p], own, money[(account_id, p)],
                              instalments[account_id], deferred[(account_id, p)])
                       for p in sellers)
        services = {line.service for line in own}
        documents.append(PaymentDocument(
            account_id=account_id, els=account["els"], period=period,
            payer_name=account["holder_name"], address=account["full_text"],
            area=account["area"], residents=account["residents"], issuer=issuer,
            lines=tuple(own), payees=totals, readings=tuple(readings[account_id]),
            common_volumes=tuple(v for v in common.get(account["house_id"], ())
                                 if v.service in services),
            norms=tuple(n for n in norms.get(account["region_code"], ()) if n[0] in services),
            instalments=tuple(i for i in instalments[account_id] if i.provider_id in sellers),
            # the earliest of its payees' due dates: paid by then, every part is in time
            due_on=min(due_date(period, due_days.get(p)) for p in sellers)))
    return documents


@dataclass(frozen=True)
class Money:
    """What the journal holds for one account, provider and service around the period."""

    debt: Decimal  # brought forward (negative: an advance)
    paid: Decimal  # in the period
    penalties: Decimal  # of the period
    benefits: Decimal  # of the period, in kopecks


def _instalment(row: dict[str, Any], period: date,
                due_day: int | None) -> tuple[Instalment, Decimal]:
    """An agreement's part falling due with this document (after the previous document's due
    date, up to this one's, on the provider's ``due_day``), and what falls due later (not
    asked for yet)."""
    previous = due_date(months_before(period, 1), due_day)
    due = due_date(period, due_day)
    parts = [(date.fromisoformat(p["due"]), Decimal(p["amount"])) for p in row["parts"]]
    now = sum((a for d, a in parts if previous < d <= due), ZERO)
    later = sum((a for d, a in parts if d > due), ZERO)
    return Instalment(
        row["provider_id"], f"соглашение о рассрочке от {row['signed_on']:%d.%m.%Y} на "
        f"{money_text(row['debt'])} руб., {len(parts)} платеж(а/ей)", now + later, now), later


def _total(payee: Payee, lines: list[Line], money: dict[str | None, Money],
           instalments: list[Instalment], deferred: Decimal) -> PayeeTotal:
    """What the payer owes one payee. Debt under a repayment agreement is asked for by its
    parts: the part due with this document is the instalment, the parts due later are left
    out of the debt brought forward."""
    instalment = sum((i.due_this_period for i in instalments
                      if i.provider_id == payee.provider_id), ZERO)
    return PayeeTotal(
        payee, sum((line.total for line in lines if line.provider_id == payee.provider_id), ZERO),
        debt=sum((m.debt for m in money.values()), ZERO) - deferred - instalment,
        paid=sum((m.paid for m in money.values()), ZERO),
        penalties=sum((m.penalties for m in money.values()), ZERO),
        instalment=instalment)


def _with_money(lines: list[Line], money: dict[tuple[str, str], dict[str | None, Money]],
                account_id: str) -> list[Line]:
    """Each service's own debt, penalties and benefits on its individual line (a line of its
    own when the service has none this period but a benefit)."""
    out: list[Line] = []
    seen: set[tuple[str, str]] = set()
    for line in lines:
        m = money[(account_id, line.provider_id)].get(line.service.value)
        if line.common or m is None or (line.provider_id, line.service) in seen:
            out.append(line)
            continue
        seen.add((line.provider_id, line.service))
        out.append(replace(line, debt=m.debt, penalties=m.penalties, benefit=m.benefits))
    for (account, provider), services in sorted(money.items()):
        if account != account_id:
            continue
        for service, m in sorted(services.items(), key=lambda x: x[0] or ""):
            if service is not None and m.benefits and (provider, service) not in seen:
                out.append(Line(Service(service), provider, benefit=m.benefits))
    return out


async def payment_document(conn: psycopg.AsyncConnection[Any], period: date,
                           account_id: str) -> PaymentDocument:
    """One account's document, or ``NotFound`` when the account was not billed then."""
    found = await payment_documents(conn, period, [account_id])
    if not found:
        raise NotFound(f"account {account_id} has no bill for {period:%Y-%m}")
    return found[0]
