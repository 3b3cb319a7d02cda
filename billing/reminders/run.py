"""A reminder run: debtors chosen by rules (`debtors.py`) start the statutory sequence with
a notice; open sequences take their next step when it is due; events from rating become
notices. Each run is idempotent: notices have natural keys, one sequence is open per account,
provider and service, so a rerun makes nothing new.

A debtor (DOMAIN.md §7) owes a provider for one service more than ``months`` months of
charges computed by the norm (`debtors.py`) and at least ``least`` roubles, overdue, with no
repayment agreement kept. Heating, and cold water in an apartment building, get a
reminder only (no restriction threat); prepaid accounts follow the prepaid rule, not this.
A restriction or suspension is carried out after its own notice (`meterline.restrictions`):
the service's relay meters get disconnect commands, a service without one a technician's work
order; an event (``restriction_due``, ``suspension_due``) tells the provider. A sequence
closed because the debt was paid or an agreement is kept lifts what its steps did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from billing.payments.agreements import review
from billing.penalties.rules import PenaltyRules
from billing.reminders.debtors import DebtorRule, find_debtors
from billing.reminders.delivery import make_notice
from billing.reminders.procedure import (
    Policy,
    Procedure,
    Situation,
    Stage,
    Step,
    Terms,
    next_step,
)
from meterline.restrictions import Action, lift, never_restricted, order_step

logger = logging.getLogger("meterline.reminders")


@dataclass
class RunResult:
    started: int = 0  # sequences started (notices made)
    restricted: int = 0
    suspended: int = 0
    closed: int = 0
    relay_commands: int = 0  # disconnect and reconnect commands ordered
    work_orders: int = 0  # technician's orders made (restrict, suspend, lift)
    events: int = 0  # rating events turned into notices
    notices: list[str] = field(default_factory=list)


_START = """
INSERT INTO debt_procedures (account_id, provider_id, service, policy, debt, started_at,
                             notice_key, monthly, monthly_basis)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

# Open sequences with what they need to decide: the notice's delivery, the overdue now.
_OPEN = """
SELECT p.id, p.account_id, p.provider_id, p.service, p.policy, p.stage, p.restricted_at,
       n.delivered_at, a.premises_id IS NOT NULL AS apartment_building,
       coalesce((SELECT dp.notice_days FROM contract_types ct
                   JOIN disconnection_policies dp ON dp.code = ct.policy
                  WHERE ct.code = a.contract_type), 10) AS notice_days,
       coalesce((SELECT sum(-x.amount) FROM (
            SELECT sum(q.amount) AS amount FROM postings q
             LEFT JOIN payment_terms t ON t.provider_id = q.provider_id
             WHERE q.book = 'subscriber' AND q.account_id = p.account_id
               AND q.provider_id = p.provider_id AND q.service = p.service
               AND q.period IS NOT NULL
               AND charge_due(q.period, coalesce(t.due_day, 10)) < %(today)s
             GROUP BY q.period HAVING sum(q.amount) < 0) x), 0) AS overdue,
       EXISTS (SELECT 1 FROM instalment_agreements g
                WHERE g.account_id = p.account_id AND g.provider_id = p.provider_id
                  AND g.status = 'kept') AS agreement_kept
  FROM debt_procedures p
  JOIN notices n ON n.key = p.notice_key
  JOIN accounts a ON a.id = p.account_id
 WHERE p.stage <> 'closed'
   AND (%(provider)s::text IS NULL OR p.provider_id = %(provider)s)
 ORDER BY p.id
   FOR UPDATE OF p
"""

_EVENT = """
INSERT INTO events (kind, key, account_id, provider_id, payload, occurred_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (key) DO NOTHING
"""


async def start_sequences(conn: psycopg.AsyncConnection[Any], now: datetime, rule: DebtorRule,
                          result: RunResult) -> None:
    for d in await find_debtors(conn, now, rule):
        policy = Policy(d.policy)
        reminder_only = never_restricted(d.service, d.apartment_building)
        kind = "debt_reminder" if reminder_only else "debt_notice"
        key = f"{kind}:{d.account_id}:{d.provider_id}:{d.service}:{now:%Y-%m-%d}"
        months = (d.overdue / d.monthly).quantize(Decimal("0.1")) if d.monthly else 0
        await make_notice(conn, key=key, kind=kind, account_id=d.account_id,
                          provider_id=d.provider_id, service=d.service,
                          context={"debt": str(d.overdue), "months": str(months)}, at=now)
        await conn.execute(_START, (d.account_id, d.provider_id, d.service, policy, d.overdue,
                                    now, key, d.monthly, d.basis))
        result.started += 1
        result.notices.append(key)


async def advance_sequences(conn: psycopg.AsyncConnection[Any], now: datetime,
                            rule: DebtorRule, rules: PenaltyRules, result: RunResult) -> None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_OPEN, {"today": now.date(), "provider": rule.provider})
    barred = rules.restrictions_barred(now.date())
    for p in await cur.fetchall():
        procedure = Procedure(p["service"], Stage(p["stage"]), p["delivered_at"],
                              p["restricted_at"])
        terms = Terms.of(Policy(p["policy"]), p["notice_days"])
        situation = Situation(now, owes=p["overdue"] >= rule.least,
                              agreement_kept=p["agreement_kept"],
                              apartment_building=p["apartment_building"],
                              restrictions_barred=barred)
        step = next_step(procedure, situation, terms)
        if step is None:
            continue
        if step is Step.CLOSE:
            why = "paid" if not situation.owes else "agreement kept" \
                if situation.agreement_kept else "policy"
            await conn.execute("UPDATE debt_procedures SET stage = 'closed', closed_at = %s, "
                               "closed_why = %s WHERE id = %s", (now, why, p["id"]))
            if p["stage"] != Stage.NOTICE:
                lifted = await lift(conn, p["id"], now, why)
                result.relay_commands += len(lifted.relay)
                result.work_orders += len(lifted.work_orders)
            result.closed += 1
            continue
        restricted = step is Step.RESTRICT
        kind = "restriction_notice" if restricted else "suspension_notice"
        key = f"{kind}:{p['id']}"
        context = {"debt": str(p["overdue"]), "restrict_on": now.date().isoformat(),
                   "suspend_on": now.date().isoformat()}
        await make_notice(conn, key=key, kind=kind, account_id=p["account_id"],
                          provider_id=p["provider_id"], service=p["service"], context=context,
                          at=now)
        ordered = await order_step(conn, p["id"],
                                   Action.RESTRICT if restricted else Action.SUSPEND, now)
        result.relay_commands += len(ordered.relay)
        result.work_orders += len(ordered.work_orders)
        await conn.execute(_EVENT, (
            "restriction_due" if restricted else "suspension_due", f"{kind}:{p['id']}:event",
            p["account_id"], p["provider_id"],
            Jsonb({"service": p["service"], "debt": str(p["overdue"]), "procedure": p["id"],
                   "relay_meters": [m for m, _ in ordered.relay],
                   "work_orders": ordered.work_orders}),
            now))
        column = "restricted_at" if restricted else "suspended_at"
        stage = "restricted" if restricted else "suspended"
        await conn.execute(f"UPDATE debt_procedures SET stage = %s, {column} = %s "
                           "WHERE id = %s", (stage, now, p["id"]))
        if restricted:
            result.restricted += 1
        else:
            result.suspended += 1
        result.notices.append(key)
        logger.info("account %s, %s, %s: %s ordered (debt %s)", p["account_id"],
                    p["provider_id"], p["service"], stage, p["overdue"])


# Events of rating that people must hear of, as notices: each once (keyed by the event).
EVENT_NOTICES = {"low_balance": "low_balance", "credit_days": "credit_days",
                 "disconnection_ahead": "disconnection_ahead", "disconnected": "disconnected",
                 "tamper": "tamper"}

_EVENTS = """
SELECT e.id, e.kind, e.account_id, e.provider_id, e.meter_id, e.payload
  FROM events e
 WHERE e.id > coalesce((SELECT last_id FROM notice_cursors WHERE name = 'events'), 0)
   AND e.kind = ANY(%s) AND e.account_id IS NOT NULL AND e.provider_id IS NOT NULL
 ORDER BY e.id
 LIMIT %s
"""

_CURSOR = """
INSERT INTO notice_cursors (name, last_id) VALUES ('events', %s)
ON CONFLICT (name) DO UPDATE SET last_id = greatest(notice_cursors.last_id, EXCLUDED.last_id)
"""


async def events_to_notices(conn: psycopg.AsyncConnection[Any], now: datetime,
                            *, limit: int = 5000) -> int:
    """Turn new events of rating into notices; returns how many."""
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT pg_advisory_xact_lock(hashtext('notice_cursors:events'))")
        await cur.execute(_EVENTS, (list(EVENT_NOTICES), limit))
        events = await cur.fetchall()
        for e in events:
            payload = dict(e["payload"] or {})
            context = {**payload, "meter_id": e["meter_id"] or "",
                       "balance": payload.get("balance", "0"),
                       "days_left": payload.get("days_left")}
            await make_notice(conn, key=f"event:{e['id']}", kind=EVENT_NOTICES[e["kind"]],
                              account_id=e["account_id"], provider_id=e["provider_id"],
                              service=None, context=context, at=now)
        if events:
            await cur.execute(_CURSOR, (events[-1]["id"],))
    return len(events)


async def run_reminders(conn: psycopg.AsyncConnection[Any], now: datetime, rules: PenaltyRules,
                        rule: DebtorRule | None = None) -> RunResult:
    """One run, in one transaction: start sequences for new debtors, advance open ones."""
    rule = rule or DebtorRule()
    result = RunResult()
    await review(conn, now.date())  # agreements kept, broken or completed as of today
    async with conn.transaction():
        await start_sequences(conn, now, rule, result)
        await advance_sequences(conn, now, rule, rules, result)
    result.events = await events_to_notices(conn, now)
    return result

