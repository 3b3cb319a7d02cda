"""Penalties on what the journal says is owed: the unpaid charges of postpaid accounts, their
due dates, the payments that repaid them and when; accrued as ledger lines, set-based, and
explained line by line for one account.

A charge is a month's subscriber postings on (provider, service, period) other than payments
(a reversal counts as the kind it reverses); a repayment is a payment's posting on the same
key, on the day it was booked in the account's time zone. Due date: the provider's due day
(`payment_terms`, default the 10th) of the month after the period. Penalties are posted
``subscriber -p, penalties +p`` per provider and service without a period (so money paying
them is told apart from money paying a month), one entry per accrual run; the penalties
register (`penalty_accruals`) keeps the total per charge and day, and each run posts the
difference from the last total (a charge accrued to a later day is left as it is).
Prepaid accounts accrue none: their debts are handled by
the prepaid policy. While a repayment agreement with the provider is kept, the charges due
before it was signed accrue nothing from the day of signing (the agreement says what is
owed); once it is broken they accrue as if it had never been.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from billing.penalties.accrual import DEBT_TOTALS, load_rules
from billing.penalties.calculation import ChargePenalty, Debt, Repayment, penalty
from billing.penalties.rules import PayerGroup, PenaltyRules
from meterline.errors import NotFound
from meterline.ledger import Book, EntryKind, lines_table, post_lines

# Each unpaid-at-some-point charge, with what repaid it by day, for the accounts chosen.
_DEBTS = """
CREATE TEMP TABLE IF NOT EXISTS penalty_debts (
    debt bigint NOT NULL, account_id text NOT NULL, provider_id text NOT NULL,
    service text NOT NULL, period date NOT NULL, amount numeric NOT NULL, due date NOT NULL,
    grp text NOT NULL, law text,
    stop date,  -- a kept repayment agreement covers it: no penalty from this day
    time_zone text NOT NULL);  -- the account's: a repayment's day is its day there
CREATE TEMP TABLE IF NOT EXISTS penalty_repaid (
    debt bigint NOT NULL, day date NOT NULL, amount numeric NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS penalty_service_law (service text PRIMARY KEY, law text);
TRUNCATE penalty_debts, penalty_repaid, penalty_service_law;
"""

_FILL_DEBTS = """
INSERT INTO penalty_debts
SELECT row_number() OVER (), c.account_id, c.provider_id, c.service, c.period, c.amount,
       charge_due(c.period, coalesce(t.due_day, 10)), a.payer_group, l.law,
       CASE WHEN k.account_id IS NOT NULL THEN
           (SELECT min(signed) FROM unnest(k.signed) signed
             WHERE signed > charge_due(c.period, coalesce(t.due_day, 10))) END,
       ad.time_zone
  FROM (SELECT p.account_id, p.provider_id, p.service, p.period, -sum(p.amount) AS amount
          FROM postings p
          JOIN entries e ON e.id = p.entry_id
          LEFT JOIN entries r ON r.id = e.reverses
         WHERE p.book = 'subscriber' AND p.period IS NOT NULL AND p.service IS NOT NULL
           AND coalesce(r.kind, e.kind) <> 'payment'
           AND (%(account)s::text IS NULL OR p.account_id = %(account)s)
         GROUP BY p.account_id, p.provider_id, p.service, p.period
        HAVING sum(p.amount) < 0) c
  JOIN accounts a ON a.id = c.account_id AND a.billing_mode = 'postpaid'
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN payment_terms t ON t.provider_id = c.provider_id
  LEFT JOIN penalty_service_law l ON l.service = c.service
  LEFT JOIN (SELECT account_id, provider_id, array_agg(signed_on) AS signed
               FROM instalment_agreements WHERE status = 'kept'
              GROUP BY account_id, provider_id) k
         ON k.account_id = c.account_id AND k.provider_id = c.provider_id
"""

_FILL_REPAID = """
INSERT INTO penalty_repaid
SELECT d.debt, (e.booked_at AT TIME ZONE d.time_zone)::date, sum(p.amount)
  FROM penalty_debts d
  JOIN postings p ON p.book = 'subscriber' AND p.account_id = d.account_id
                 AND p.provider_id = d.provider_id AND p.service = d.service
                 AND p.period = d.period
  JOIN entries e ON e.id = p.entry_id
  LEFT JOIN entries r ON r.id = e.reverses
 WHERE coalesce(r.kind, e.kind) = 'payment'
 GROUP BY d.debt, (e.booked_at AT TIME ZONE d.time_zone)::date
"""

# Tranches: each repayment's part of the charge accrues to its day with its day's rate; what
# is unpaid on the day of calculation accrues to that day.
_FILL_TRANCHES = """
WITH running AS (
    SELECT r.debt, r.day, d.amount AS charged,
           sum(r.amount) OVER (PARTITION BY r.debt ORDER BY r.day) AS paid_to_day,
           sum(r.amount) OVER (PARTITION BY r.debt ORDER BY r.day) - r.amount AS paid_before
      FROM penalty_repaid r JOIN penalty_debts d ON d.debt = r.debt
     WHERE r.day <= %(as_of)s
), paid_parts AS (
    SELECT debt, day, least(greatest(paid_to_day, 0), charged)
                      - least(greatest(paid_before, 0), charged) AS amount
      FROM running
), unpaid AS (  -- the repayments summed per debt, not every debt grouped
    SELECT d.debt, d.amount - least(greatest(coalesce(r.amount, 0), 0), d.amount) AS amount
      FROM penalty_debts d
      LEFT JOIN (SELECT debt, sum(amount) AS amount FROM penalty_repaid
                  WHERE day <= %(as_of)s GROUP BY debt) r ON r.debt = d.debt
)
INSERT INTO penalty_tranches (id, law, grp, due, last_day, base, rate_day, debt)
SELECT row_number() OVER (), d.law, d.grp, d.due,
       CASE WHEN d.stop IS NULL THEN t.last_day ELSE least(t.last_day, d.stop - 1) END,
       t.amount, t.rate_day, d.debt
  FROM (SELECT debt, CASE WHEN %(count_day)s THEN day ELSE day - 1 END AS last_day,
               amount, day AS rate_day
          FROM paid_parts WHERE amount > 0
        UNION ALL
        SELECT debt, %(as_of)s, amount, %(as_of)s FROM unpaid WHERE amount > 0) t
  JOIN penalty_debts d ON d.debt = t.debt
 WHERE d.law IS NOT NULL
"""


async def fill_debts(conn: psycopg.AsyncConnection[Any], rules: PenaltyRules, as_of: date,
                     *, account: str | None, count_payment_day: bool) -> None:
    """The session's tables of debts, repayments and tranches for ``as_of``."""
    await load_rules(conn, rules)
    await conn.execute(_DEBTS)
    async with conn.cursor() as cur:
        await cur.executemany("INSERT INTO penalty_service_law VALUES (%s, %s)",
                              [(str(s), law) for s, law in rules.service_law.items()])
    await conn.execute(_FILL_DEBTS, {"account": account})
    await conn.execute("ANALYZE penalty_debts")  # the repayments join it by hash, not per row
    await conn.execute(_FILL_REPAID)
    await conn.execute("ANALYZE penalty_repaid")
    await conn.execute(_FILL_TRANCHES, {"as_of": as_of, "count_day": count_payment_day})
    await conn.execute("ANALYZE penalty_tranches")


# Each charge's penalty now, and its latest total in the register, kept by its address for the
# update. The latest row is the month's when the month has one and no later month does (the
# usual day: one hash join over the month's rows); else the charge's last row, found by one
# index probe (a month's first day, a new charge, a day accrued again after later ones).
_LATER_MONTHS = """
SELECT EXISTS (SELECT 1 FROM penalty_accruals
                WHERE month > date_trunc('month', %(as_of)s::date)::date)
"""

_BY_DEBT = f"""
CREATE TEMP TABLE penalty_due ON COMMIT DROP AS
WITH totals AS ({DEBT_TOTALS}), repaid AS (
    SELECT debt, sum(amount) AS amount FROM penalty_repaid WHERE day <= %(as_of)s
     GROUP BY debt
)
SELECT d.debt, d.account_id, d.provider_id, d.service, d.period,
       CASE WHEN coalesce(m.as_of, b.as_of) > %(as_of)s THEN coalesce(m.total, b.total)
            ELSE coalesce(t.total, 0) END AS total,
       coalesce(m.total, b.total, 0) AS before,
       d.amount - least(greatest(coalesce(r.amount, 0), 0), d.amount) AS unpaid,
       coalesce(m.ctid, b.ctid) AS register_row, coalesce(m.month, b.month) AS register_month
  FROM penalty_debts d
  LEFT JOIN totals t ON t.debt = d.debt
  LEFT JOIN repaid r ON r.debt = d.debt
  LEFT JOIN (SELECT ctid, account_id, provider_id, service, period, month, as_of, total
               FROM penalty_accruals
              WHERE month = date_trunc('month', %(as_of)s::date)::date
                AND NOT %(later)s) m
         ON (m.account_id, m.provider_id, m.service, m.period)
            = (d.account_id, d.provider_id, d.service, d.period)
  LEFT JOIN LATERAL (
      SELECT a.ctid, a.month, a.as_of, a.total FROM penalty_accruals a
       WHERE m.ctid IS NULL
         AND (a.account_id, a.provider_id, a.service, a.period)
             = (d.account_id, d.provider_id, d.service, d.period)
       ORDER BY a.month DESC LIMIT 1) b ON true
"""

_STAGE = """
INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
SELECT account_id, provider_id, service, NULL, -(total - before)
  FROM penalty_due WHERE total <> before
"""

# The month's row of each charge whose penalty changed: moved to this day where the month has
# one (by its address, in the order of the pages), else opened (in the register's key order,
# sorted by bytes as the database's C.UTF-8 collation orders them: its index is walked once,
# not probed at random). One accrual at a time (the lock), so the rows found are the rows
# updated.
_ONE_AT_A_TIME = "SELECT pg_advisory_xact_lock(hashtext('meterline.penalties:accrual'))"

_REGISTER_MOVED = """
UPDATE penalty_accruals a
   SET as_of = %(as_of)s, principal = d.unpaid, total = d.total, entry_id = %(entry)s
  FROM (SELECT register_row, unpaid, total FROM penalty_due
         WHERE total <> before AND register_month = date_trunc('month', %(as_of)s::date)::date
         ORDER BY register_row) d
 WHERE a.ctid = d.register_row
"""

_REGISTER_OPENED = """
INSERT INTO penalty_accruals (account_id, provider_id, service, period, month, as_of,
                              principal, total, entry_id)
SELECT account_id, provider_id, service, period, date_trunc('month', %(as_of)s::date)::date,
       %(as_of)s, unpaid, total, %(entry)s
  FROM penalty_due
 WHERE total <> before
   AND (register_month IS NULL OR register_month < date_trunc('month', %(as_of)s::date)::date)
 ORDER BY account_id COLLATE "C", provider_id COLLATE "C", service COLLATE "C", period
"""

_SUMMARY = """
SELECT count(*) FILTER (WHERE total <> before), coalesce(sum(total - before), 0)
  FROM penalty_due
"""


# Every postpaid account in a handful of statements: sorts and hashes of a million rows kept in
# memory rather than spilled to disk, and no JIT compilation (the planner's estimates over the
# session's tables are far off, and compiling costs seconds for plans that run once).
_BULK_SESSION = "SET LOCAL work_mem = '256MB'; SET LOCAL jit = off"


# The session's temporary tables (debts, tranches, what is due, the staged lines: hundreds of
# megabytes for a million accounts) kept in memory rather than written out and read back; a
# session's temporary buffers are sized before its first temporary table, so a session that
# used one already keeps its size.
_TEMP_BUFFERS = "SET temp_buffers = '1GB'"


async def _bulk_session(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        async with conn.transaction():
            await conn.execute(_TEMP_BUFFERS)
    except psycopg.errors.InvalidParameterValue:
        pass
    await conn.execute(_BULK_SESSION)


@dataclass(frozen=True)
class Accrued:
    as_of: date
    charges: int  # charges whose penalty changed
    amount: Decimal  # posted now (the sum of the differences)
    entry_id: int | None


async def accrue(conn: psycopg.AsyncConnection[Any], rules: PenaltyRules, as_of: date, *,
                 account: str | None = None, count_payment_day: bool = True,
                 time_zone: str = "Europe/Moscow") -> Accrued:
    """Accrue penalties up to ``as_of`` (every postpaid account, or one) as one entry booked
    at the end of that day (in ``time_zone``, the agent's books), in one transaction; running
    it again for the same day posts nothing more."""
    key = f"penalties:{as_of.isoformat()}" + (f":{account}" if account else "")
    async with conn.transaction():
        await conn.execute(_ONE_AT_A_TIME)
        await _bulk_session(conn)
        await fill_debts(conn, rules, as_of, account=account,
                         count_payment_day=count_payment_day)
        cur = await conn.execute(_LATER_MONTHS, {"as_of": as_of})
        later = await cur.fetchone()
        assert later is not None
        await conn.execute(_BY_DEBT, {"as_of": as_of, "later": later[0]})
        await lines_table(conn)
        await conn.execute(_STAGE)
        cur = await conn.execute(_SUMMARY)
        row = await cur.fetchone()
        assert row is not None
        charges, amount = row
        posted = await post_lines(conn, kind=EntryKind.PENALTY, key=key,
                                  counter=Book.PENALTIES,
                                  reason=f"penalties accrued to {as_of:%Y-%m-%d}",
                                  booked_at=datetime.combine(as_of, time(23, 59, 59),
                                                             ZoneInfo(time_zone)))
        if posted is None or not posted.new:
            await conn.execute("TRUNCATE ledger_lines")
            return Accrued(as_of, 0, Decimal(0), posted.id if posted else None)
        await conn.execute(_REGISTER_MOVED, {"as_of": as_of, "entry": posted.id})
        await conn.execute(_REGISTER_OPENED, {"as_of": as_of, "entry": posted.id})
    return Accrued(as_of, int(charges), Decimal(amount), posted.id)


_ACCOUNT = "SELECT payer_group FROM accounts WHERE id = %s"


async def explain_account(
    conn: psycopg.AsyncConnection[Any], rules: PenaltyRules, account_id: str, as_of: date, *,
    count_payment_day: bool = True, stale_after_days: int = 120,
) -> list[ChargePenalty]:
    """The calculation for every charge of the account that was paid late or is overdue."""
    cur = await conn.execute(_ACCOUNT, (account_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no account {account_id}")
    group = PayerGroup(row[0])
    async with conn.transaction():
        await fill_debts(conn, rules, as_of, account=account_id,
                         count_payment_day=count_payment_day)
        dcur = conn.cursor(row_factory=dict_row)
        await dcur.execute("SELECT * FROM penalty_debts WHERE law IS NOT NULL "
                           "ORDER BY period, provider_id, service")
        debts = await dcur.fetchall()
        await dcur.execute("SELECT debt, day, amount FROM penalty_repaid ORDER BY debt, day")
        repaid: dict[int, list[Repayment]] = {}
        for r in await dcur.fetchall():
            repaid.setdefault(r["debt"], []).append(Repayment(r["day"], r["amount"]))
    results = []
    for d in debts:
        result = penalty(
            Debt(d["provider_id"], d["service"], d["period"], d["amount"], d["due"]),
            _positive(repaid.get(d["debt"], [])), as_of=as_of, group=group, rules=rules,
            count_payment_day=count_payment_day, stale_after_days=stale_after_days,
            stop=d["stop"])
        if result.total or any(t.lines for t in result.tranches):
            results.append(result)
    return results


def _positive(repayments: Sequence[Repayment]) -> list[Repayment]:
    """Repayments as the set-based path counts them: a reversed payment takes back from the
    running total; a day's net is what moved that day."""
    out: list[Repayment] = []
    running = Decimal(0)
    for r in repayments:
        before, running = running, running + r.amount
        part = max(running, Decimal(0)) - max(before, Decimal(0))
        if part > 0:
            out.append(Repayment(r.day, part))
    return out
