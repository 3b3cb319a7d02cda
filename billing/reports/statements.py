"""The back office's reports, read from the journal: the turnover sheet (оборотно-сальдовая
ведомость) of a provider for a month, the debtors list, the penalties register.

The turnover sheet takes every subscriber posting of the provider booked before the end of the
month (midnight in the agent's time zone) and shows it from the subscriber's debt side: the
debt at the start, what was charged, paid, accrued as penalties, anything else (benefits,
corrections), and the debt at the end. Every posting falls in exactly one column, so the
closing debt is the opening debt plus the month's columns, and the totals equal the journal
to the kopeck.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from billing.payments.debts import debtors
from billing.payments.settlement import period_end
from billing.reports.tables import Cell, Column, Report, column_total
from meterline.periods import check_period

SERVICE_TITLES = {
    "electricity": "Электроснабжение", "cold_water": "Холодное водоснабжение",
    "hot_water": "Горячее водоснабжение", "sewerage": "Водоотведение",
    "gas": "Газоснабжение", "heating": "Отопление", "waste": "Обращение с ТКО",
    "maintenance": "Содержание жилого помещения", "capital_repair": "Капитальный ремонт",
    "": "Аванс без услуги",
}
MONTHS = ["январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь",
          "октябрь", "ноябрь", "декабрь"]

_TURNOVER = """
SELECT p.account_id, coalesce(p.service, '') AS service,
       -sum(p.amount) FILTER (WHERE e.booked_at < %(start)s) AS opening,
       -sum(p.amount) FILTER (WHERE e.booked_at >= %(start)s AND k.kind IN ('charge', 'usage'))
           AS charged,
       sum(p.amount) FILTER (WHERE e.booked_at >= %(start)s AND k.kind IN ('payment', 'topup'))
           AS paid,
       -sum(p.amount) FILTER (WHERE e.booked_at >= %(start)s AND k.kind = 'penalty')
           AS penalties,
       -sum(p.amount) FILTER (WHERE e.booked_at >= %(start)s AND k.kind NOT IN
                              ('charge', 'usage', 'payment', 'topup', 'penalty')) AS other,
       -sum(p.amount) AS closing
  FROM postings p
  JOIN entries e ON e.id = p.entry_id
  LEFT JOIN entries r ON r.id = e.reverses
 CROSS JOIN LATERAL (SELECT coalesce(r.kind, e.kind) AS kind) k
 WHERE p.book = 'subscriber' AND p.provider_id = %(provider)s AND e.booked_at < %(end)s
   AND (%(service)s::text IS NULL OR p.service = %(service)s)
 GROUP BY p.account_id, coalesce(p.service, '')
 ORDER BY p.account_id, coalesce(p.service, '')
"""

ZERO = Decimal(0)


def month_name(period: date) -> str:
    return f"{MONTHS[period.month - 1]} {period.year}"


async def turnover_sheet(conn: psycopg.AsyncConnection[Any], provider_id: str, period: date,
                         *, time_zone: str, service: str | None = None) -> Report:
    start = datetime.combine(check_period(period), time(0), ZoneInfo(time_zone))
    cur = await conn.execute(_TURNOVER, {"provider": provider_id, "service": service,
                                         "start": start, "end": period_end(period, time_zone)})
    rows: list[list[Cell]] = [
        [account, SERVICE_TITLES.get(svc, svc),
         *(amount if amount is not None else ZERO for amount in amounts)]
        for account, svc, *amounts in await cur.fetchall()]
    totals: list[Cell] = ["Итого", "", *(column_total(rows, n) for n in range(2, 8))]
    return Report(
        "Оборотно-сальдовая ведомость",
        f"Поставщик {provider_id}, {month_name(period)}; суммы — задолженность абонента "
        "(минус — переплата)",
        [Column("Лицевой счёт"), Column("Услуга"), Column("Долг на начало", money=True),
         Column("Начислено", money=True), Column("Оплачено", money=True),
         Column("Пени", money=True), Column("Прочее", money=True),
         Column("Долг на конец", money=True)],
        rows, totals)


async def debtors_list(conn: psycopg.AsyncConnection[Any], as_of: date, *,
                       provider: str | None = None, region: str | None = None,
                       house: int | None = None, least: Decimal = Decimal("0.01")) -> Report:
    found = await debtors(conn, as_of, provider=provider, region=region, house=house,
                          least=least)
    rows: list[list[Cell]] = [
        [d.account_id, d.holder_name, d.address, d.provider_id,
         ", ".join(SERVICE_TITLES.get(s, s) for s in d.services), d.oldest, d.days_0_30,
         d.days_31_90, d.days_91, d.overdue, d.penalties] for d in found]
    totals: list[Cell] = ["Итого", f"{len(rows)} должников", "", "", "", None,
                          *(column_total(rows, n) for n in range(6, 11))]
    filters = ", ".join(f for f in (
        f"поставщик {provider}" if provider else "", f"регион {region}" if region else "",
        f"дом {house}" if house else "", f"от {least:.2f} ₽") if f)
    return Report(
        "Список должников", f"На {as_of:%d.%m.%Y}; {filters}",
        [Column("Лицевой счёт"), Column("Плательщик"), Column("Адрес"), Column("Поставщик"),
         Column("Услуги"), Column("С периода"), Column("0–30 дн.", money=True),
         Column("31–90 дн.", money=True), Column("91+ дн.", money=True),
         Column("Просрочено", money=True), Column("Пени", money=True)],
        rows, totals)


# The register keeps a row per charge and month (the month's last accrual that changed it).
_REGISTER = """
SELECT a.account_id, a.provider_id, a.service, a.period, a.as_of, a.principal, a.total,
       a.total - coalesce((SELECT b.total FROM penalty_accruals b
                            WHERE (b.account_id, b.provider_id, b.service, b.period)
                                  = (a.account_id, a.provider_id, a.service, a.period)
                              AND b.month < %(start)s
                            ORDER BY b.month DESC LIMIT 1), 0) AS in_month
  FROM penalty_accruals a
 WHERE a.month >= %(start)s AND a.month < %(end)s
   AND (%(provider)s::text IS NULL OR a.provider_id = %(provider)s)
 ORDER BY a.account_id, a.provider_id, a.service, a.period
"""


async def penalties_register(conn: psycopg.AsyncConnection[Any], period: date, *,
                             provider: str | None = None) -> Report:
    following = period_end(period, "UTC").date()
    cur = await conn.execute(_REGISTER, {"start": period, "end": following,
                                         "provider": provider})
    rows: list[list[Cell]] = [
        [account, prov, SERVICE_TITLES.get(service, service), f"{debt:%m.%Y}", as_of,
         principal, total, in_month]
        for account, prov, service, debt, as_of, principal, total, in_month
        in await cur.fetchall()]
    totals: list[Cell] = ["Итого", "", "", "", None,
                          *(column_total(rows, n) for n in range(5, 8))]
    return Report(
        "Реестр начисленных пеней",
        f"{month_name(period)}" + (f", поставщик {provider}" if provider else ""),
        [Column("Лицевой счёт"), Column("Поставщик"), Column("Услуга"),
         Column("Долг за период"), Column("Расчёт на"), Column("Неоплачено", money=True),
         Column("Пени всего", money=True), Column("Начислено за месяц", money=True)],
        rows, totals)
