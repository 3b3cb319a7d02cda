"""Penalties computed set-based in PostgreSQL, for every unpaid part of every charge at once,
by the same rules and with the same cuts and rounding as `calculation.py` (the tests hold the
two equal).

The rules go into small session tables (`load_rules`): rate ranges, per law the regimes
between its absolute cuts (schedule in force, no-accrual moratorium, rate cap), the tiers per
law, payer group and schedule, and the cuts in days of delay. The caller fills
``penalty_tranches`` (one row per part of a charge: its law, payer group, due date, last day
of delay, unpaid base and the day whose rate applies), then `LINES` cuts each into lines and
`TOTALS` adds them up per tranche.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import Any

import psycopg

from billing.penalties.calculation import date_cuts, tier_cuts
from billing.penalties.rules import MoratoriumKind, PayerGroup, PenaltyRules
from meterline.errors import Invalid

BEGINNING = date(1, 1, 1)
END = date(9999, 12, 31)
NO_END_DAY = 10**9

_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS penalty_rates (
    valid_from date NOT NULL, valid_to date NOT NULL, rate numeric NOT NULL, kind text NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS penalty_regimes (
    law text NOT NULL, valid_from date NOT NULL, valid_to date NOT NULL,
    schedule_from date NOT NULL, no_accrual boolean NOT NULL, cap numeric);
CREATE TEMP TABLE IF NOT EXISTS penalty_tiers (
    law text NOT NULL, grp text NOT NULL, schedule_from date NOT NULL,
    first_day integer NOT NULL, last_day integer NOT NULL, per integer NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS penalty_day_cuts (
    law text NOT NULL, grp text NOT NULL, valid_from date NOT NULL, valid_to date NOT NULL,
    day integer NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS penalty_date_cuts (law text NOT NULL, day date NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS penalty_tranches (
    id bigint NOT NULL, law text NOT NULL, grp text NOT NULL, due date NOT NULL,
    last_day date NOT NULL, base numeric NOT NULL, rate_day date NOT NULL,
    debt bigint);  -- the charge it is a part of, when the caller keeps one
TRUNCATE penalty_rates, penalty_regimes, penalty_tiers, penalty_day_cuts, penalty_date_cuts,
         penalty_tranches;
"""


def _rate_rows(rules: PenaltyRules) -> list[tuple[date, date, Decimal, str]]:
    table = rules.rates
    starts = sorted({c.effective_from for c in table.changes if c.kind == "refinancing"
                     and c.effective_from < table.key_rate_from}
                    | {table.key_rate_from}
                    | {c.effective_from for c in table.changes if c.kind == "key"
                       and c.effective_from > table.key_rate_from})
    rows = []
    for n, start in enumerate(starts):
        try:
            change = table.rate_on(start)
        except Invalid:  # no rate in force there: no range
            continue
        end = starts[n + 1] if n + 1 < len(starts) else END
        rows.append((start, end, change.rate, change.kind))
    return rows


def _regime_rows(rules: PenaltyRules) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for law in rules.laws.values():
        bounds = [BEGINNING, *date_cuts(law, rules), END]
        for start, end in pairwise(bounds):
            current = [s for s in law.schedules if s.valid_from <= start]
            if not current:
                continue
            applying = [m for m in rules.moratoria if m.covers(start, law.id)]
            caps = [m.cap for m in applying if m.kind is MoratoriumKind.RATE_CAP and m.cap]
            no_accrual = any(m.kind is MoratoriumKind.NO_ACCRUAL for m in applying)
            rows.append((law.id, start, end, current[-1].valid_from, no_accrual,
                         min(caps) if caps else None))
    return rows


def _tier_rows(rules: PenaltyRules) -> list[tuple[Any, ...]]:
    rows = []
    for law in rules.laws.values():
        for schedule in law.schedules:
            for group, tiers in schedule.tiers.items():
                for n, tier in enumerate(tiers):
                    last = tiers[n + 1].first_day - 1 if n + 1 < len(tiers) else NO_END_DAY
                    rows.append((law.id, group.value, schedule.valid_from, tier.first_day,
                                 last, tier.per))
    return rows


async def load_rules(conn: psycopg.AsyncConnection[Any], rules: PenaltyRules) -> None:
    """The rules into this session's tables; ``penalty_tranches`` emptied for the caller."""
    await conn.execute(_TABLES)
    async with conn.cursor() as cur:
        await cur.executemany("INSERT INTO penalty_rates VALUES (%s, %s, %s, %s)",
                              _rate_rows(rules))
        await cur.executemany("INSERT INTO penalty_regimes VALUES (%s, %s, %s, %s, %s, %s)",
                              _regime_rows(rules))
        await cur.executemany("INSERT INTO penalty_tiers VALUES (%s, %s, %s, %s, %s, %s)",
                              _tier_rows(rules))
        by_day, by_date = [], []
        for law in rules.laws.values():
            for group in PayerGroup:
                by_day += [(law.id, group.value, start, until or END, day)
                           for start, until, day in tier_cuts(law, group)]
            by_date += [(law.id, d) for d in date_cuts(law, rules)]
        await cur.executemany("INSERT INTO penalty_day_cuts VALUES (%s, %s, %s, %s, %s)", by_day)
        await cur.executemany("INSERT INTO penalty_date_cuts VALUES (%s, %s)", by_date)
    await conn.execute("ANALYZE penalty_rates, penalty_regimes, penalty_tiers, "
                       "penalty_day_cuts, penalty_date_cuts")


# Every tranche's days of delay cut into lines, each rounded to kopecks (half-up; numeric
# round() rounds half away from zero, the same for these positive amounts). Where the cuts
# fall and which tier and rate each line has depend only on a tranche's shape (law, payer
# group, due date, last day, rate day), and a run's tranches share few shapes (a month's
# charges fall due on one day and accrue to one day), so the lines are cut once per shape and
# only the amounts are computed per tranche.
LINES = """
WITH shapes AS MATERIALIZED (
    SELECT row_number() OVER () AS shape, s.law, s.grp, s.due, s.last_day, r.rate,
           r.kind AS rate_kind, s.rate_day
      FROM (SELECT DISTINCT law, grp, due, last_day, rate_day FROM penalty_tranches
             WHERE last_day > due) s
      JOIN penalty_rates r ON s.rate_day >= r.valid_from AND s.rate_day < r.valid_to
),
cuts AS (
    SELECT t.shape, t.due + 1 AS day FROM shapes t
    UNION
    SELECT t.shape, t.due + c.day FROM shapes t
      JOIN penalty_day_cuts c ON c.law = t.law AND c.grp = t.grp
     WHERE t.due + c.day <= t.last_day
       AND t.due + c.day >= c.valid_from AND t.due + c.day < c.valid_to
    UNION
    SELECT t.shape, c.day FROM shapes t JOIN penalty_date_cuts c ON c.law = t.law
     WHERE c.day > t.due + 1 AND c.day <= t.last_day
),
segments AS (
    SELECT c.shape, c.day AS start,
           coalesce(lead(c.day) OVER (PARTITION BY c.shape ORDER BY c.day) - 1, t.last_day)
               AS finish
      FROM cuts c JOIN shapes t ON t.shape = c.shape
),
shape_lines AS MATERIALIZED (
    SELECT t.law, t.grp, t.due, t.last_day, t.rate_day, s.start, s.finish,
           s.finish - s.start + 1 AS days, s.start - t.due AS delay_day, lines.per,
           lines.rate, t.rate AS rate_in_force, t.rate_kind
      FROM segments s
      JOIN shapes t ON t.shape = s.shape
      JOIN penalty_regimes g ON g.law = t.law AND s.start >= g.valid_from
                            AND s.start < g.valid_to
      JOIN penalty_tiers p ON p.law = t.law AND p.grp = t.grp
                          AND p.schedule_from = g.schedule_from
                          AND s.start - t.due BETWEEN p.first_day AND p.last_day
      CROSS JOIN LATERAL (
          SELECT CASE WHEN g.no_accrual THEN 0 ELSE p.per END AS per,
                 CASE WHEN g.cap < t.rate THEN g.cap ELSE t.rate END AS rate
      ) lines
)
SELECT tr.id, tr.debt, l.start, l.finish, l.days, l.delay_day, tr.base, l.per, l.rate,
       l.rate_in_force, l.rate_kind,
       CASE WHEN l.per = 0 THEN 0
            ELSE round(tr.base * l.days * l.rate / 100 / l.per, 2)
       END AS amount
  FROM penalty_tranches tr
  JOIN shape_lines l ON (l.law, l.grp, l.due, l.last_day, l.rate_day)
                        = (tr.law, tr.grp, tr.due, tr.last_day, tr.rate_day)
"""

TOTALS = f"""
SELECT id, sum(amount) AS penalty FROM ({LINES}) lines GROUP BY id
"""

# The penalty of each charge (``penalty_tranches.debt``), all its tranches' lines added up.
DEBT_TOTALS = f"""
SELECT debt, sum(amount) AS total FROM ({LINES}) lines GROUP BY debt
"""

