"""Which relays should be open, and what subscribers must hear of: the disconnection policy,
applied inside the caller's transaction.

Every account has a contract type, and the type a policy (``contract_types``,
``disconnection_policies``, migration 0011; README "The money model"). A prepaid account's
balance with a provider is measured against the negative limit of its plan
(``tariff_negative_limit``; 0 without one):

- ``prepay_cutoff``: at or below the limit the pair's meters are cut, within the friendly
  hours; a cut due outside them waits in ``disconnections_due`` until the window opens;
- ``notice_then_restrict`` and ``statutory`` (§7, Russian households): at or below the limit a
  notice (``disconnection_ahead`` with the day), the cut no earlier than ``notice_days`` later
  and within the friendly hours, if the balance is still at or below the limit then; under
  ``statutory`` never of heating, nor of cold water in an apartment building;
- above the limit, meters cut before are connected again at once, and a waiting cut is dropped.

Warnings (``low_balance`` per threshold, ``credit_days`` from the forecast of days of credit
left, the notice) are events written once per crossing (``balance_alerts``). Commands are
rows of ``relay_commands`` (an outbox; the bridge delivers them), events rows of ``events``,
both in the same transaction as the money movement that caused them, so nothing is lost or told
for money that was rolled back.

``decide_relays`` runs after every movement of money (rating's booking, top-ups, emergency
credit); ``fire_due`` runs when time passes (the bridge's relay delivery loop calls it every few
seconds) and makes the cuts whose time has come.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from meterline.errors import Invalid, NotFound
from meterline.events import Event, EventKind, emit
from meterline.friendly_hours import Calendar, FriendlyHours

NOTICE_RECHECK = timedelta(hours=1)  # how often a cut waiting for its notice's delivery looks


class Rule(StrEnum):
    PREPAY_CUTOFF = "prepay_cutoff"
    NOTICE_THEN_RESTRICT = "notice_then_restrict"
    STATUTORY = "statutory"


@dataclass(frozen=True)
class Policy:
    code: str
    rule: Rule
    notice_days: int = 0
    hours: FriendlyHours = field(default_factory=FriendlyHours)
    low_balance: tuple[Decimal, ...] = ()
    credit_days: int | None = None
    forecast_days: int = 7


@dataclass(frozen=True)
class Meter:
    id: str
    utility: str
    relay_state: str


@dataclass
class Pair:
    """What one decision about an account's balance with a provider rests on."""

    account_id: str
    provider_id: str
    balance: Decimal
    limit: Decimal
    policy: Policy
    time_zone: str
    calendar: Calendar
    apartment_building: bool
    meters: list[Meter]
    spent: Decimal | None  # charged over the forecast's last full days
    spent_days: Decimal  # how many days that was (at least 1 when anything was charged)
    due_since: datetime | None
    due_not_before: datetime | None
    due_notice: str | None  # the key of the event that gave the notice
    notice_delivered_at: datetime | None  # when that notice reached the subscriber
    alerts: dict[str, tuple[int, bool]]  # alert -> (crossing, armed)

    def days_left(self) -> Decimal | None:
        """Days of credit left before the limit at the recent average daily charge."""
        if not self.spent or self.spent <= 0 or self.balance <= self.limit:
            return None
        daily = self.spent / self.spent_days
        return ((self.balance - self.limit) / daily).quantize(Decimal("0.1"))

    def restrictable(self, meter: Meter) -> bool:
        """Under §7 heating, and cold water in an apartment building, are never restricted."""
        if self.policy.rule is not Rule.STATUTORY:
            return True
        return not (meter.utility == "heat"
                    or (meter.utility == "cold_water" and self.apartment_building))


@dataclass
class Decisions:
    """What a decision writes, gathered for all pairs and then written set-based."""

    commands: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    # (meter, action, reason, account, provider)
    due: list[tuple[str, str, datetime, datetime, str, str | None]] = field(
        default_factory=list)
    undue: list[tuple[str, str]] = field(default_factory=list)
    alerts: list[tuple[str, str, str, int, bool]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def _money(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.01")), "f")


def _alert(pair: Pair, out: Decisions, alert: str, below: bool) -> int | None:
    """Track an alert; the crossing number when it fires now, else None."""
    crossing, armed = pair.alerts.get(alert, (0, True))
    if below and armed:
        out.alerts.append((pair.account_id, pair.provider_id, alert, crossing, False))
        return crossing
    if not below and not armed:
        out.alerts.append((pair.account_id, pair.provider_id, alert, crossing + 1, True))
    return None


def _warnings(pair: Pair, out: Decisions, days_left: Decimal | None) -> None:
    base = {"balance": _money(pair.balance), "limit": _money(pair.limit),
            "days_left": None if days_left is None else str(days_left)}
    key = f"{pair.account_id}:{pair.provider_id}"
    for threshold in pair.policy.low_balance:
        name = f"low_balance:{_money(threshold)}"
        crossing = _alert(pair, out, name, pair.balance < threshold)
        if crossing is not None:
            out.events.append(Event(
                EventKind.LOW_BALANCE, pair.account_id, pair.provider_id,
                payload={**base, "threshold": _money(threshold)},
                key=f"{name}:{key}:{crossing}"))
    if pair.policy.credit_days is not None:
        short = days_left is not None and days_left <= pair.policy.credit_days
        crossing = _alert(pair, out, "credit_days", short)
        if crossing is not None:
            out.events.append(Event(EventKind.CREDIT_DAYS, pair.account_id, pair.provider_id,
                                    payload=base, key=f"credit_days:{key}:{crossing}"))


def decide(pair: Pair, now: datetime, out: Decisions) -> None:
    """The policy applied to one account's balance with one provider at ``now``."""
    days_left = pair.days_left()
    _warnings(pair, out, days_left)
    relays = pair.meters
    exhausted = pair.balance <= pair.limit
    payload = {"balance": _money(pair.balance), "limit": _money(pair.limit),
               "rule": pair.policy.rule.value}
    if not exhausted:
        _alert(pair, out, "limit", False)
        if pair.due_since is not None:
            out.undue.append((pair.account_id, pair.provider_id))
        for meter in relays:
            if meter.relay_state == "disconnected":
                reason = ("balance positive" if pair.balance > 0
                          else "balance above the negative limit")
                out.commands.append((meter.id, "connect", reason, pair.account_id,
                                     pair.provider_id))
        return
    to_cut = [m for m in relays if m.relay_state == "connected" and pair.restrictable(m)]
    policy = pair.policy
    since = pair.due_since or now
    not_before = pair.due_not_before
    if to_cut and not_before is None:
        not_before = policy.hours.next_open(since + timedelta(days=policy.notice_days),
                                            pair.time_zone, pair.calendar)
    crossing = _alert(pair, out, "limit", True)
    key = f"{pair.account_id}:{pair.provider_id}"
    notice = pair.due_notice
    if crossing is not None:
        if to_cut and not_before is not None and not_before > now:
            local = not_before.astimezone(ZoneInfo(pair.time_zone))
            notice = f"disconnection_ahead:{key}:{crossing}"
            out.events.append(Event(
                EventKind.DISCONNECTION_AHEAD, pair.account_id, pair.provider_id,
                payload={**payload, "disconnect_on": local.date(), "not_before": not_before},
                key=notice))
        elif not to_cut and not any(m.relay_state == "disconnected" for m in relays):
            # nothing may be cut (or nothing can be): the notice is a warning at the limit
            out.events.append(Event(
                EventKind.LOW_BALANCE, pair.account_id, pair.provider_id,
                payload={**payload, "threshold": _money(pair.limit), "restriction": False,
                         "days_left": None},
                key=f"low_balance:limit:{key}:{crossing}"))
    if not to_cut:
        if pair.due_since is not None:
            out.undue.append((pair.account_id, pair.provider_id))
        return
    assert not_before is not None
    if not_before <= now and policy.rule is not Rule.PREPAY_CUTOFF:
        # the notice period runs from the notice's delivery: not delivered yet, look again
        # in an hour; delivered, no cut before its period ends
        if pair.notice_delivered_at is None:
            not_before = now + NOTICE_RECHECK
        else:
            not_before = max(not_before, policy.hours.next_open(
                pair.notice_delivered_at + timedelta(days=policy.notice_days),
                pair.time_zone, pair.calendar))
    if not_before <= now:
        opens = policy.hours.next_open(now, pair.time_zone, pair.calendar)
        if opens == now:
            reason = ("balance exhausted" if policy.rule is Rule.PREPAY_CUTOFF
                      else f"restricted {policy.notice_days} days after the notice "
                           f"({policy.rule.value})")
            for meter in to_cut:
                out.commands.append((meter.id, "disconnect", reason, pair.account_id,
                                     pair.provider_id))
            if pair.due_since is not None:
                out.undue.append((pair.account_id, pair.provider_id))
            return
        not_before = opens
    if (pair.due_since, pair.due_not_before, pair.due_notice) != (since, not_before, notice):
        out.due.append((pair.account_id, pair.provider_id, since, not_before,
                        policy.rule.value, notice))


# --- loading and writing ---------------------------------------------------------------------

# The accounts' relay meters, locked in id order: decisions about one meter are serialised
# (rating's booking, top-ups and the timer all come through here), and the state read after the
# lock is the latest.
_LOCK = """
SELECT m.id FROM meters m JOIN accounts a ON a.id = m.account_id
 WHERE m.account_id = ANY(%(accounts)b::text[]) AND a.billing_mode = 'prepaid' AND m.has_relay
 ORDER BY m.id
   FOR UPDATE OF m
"""

_STATE = """
SELECT b.account_id, b.provider_id, b.amount, ad.time_zone, ad.country, ad.region,
       a.premises_id IS NOT NULL AS apartment_building,
       p.code, p.rule, p.notice_days, p.friendly_from, p.friendly_until, p.working_days_only,
       p.low_balance, p.credit_days, p.forecast_days,
       coalesce(lim.negative_limit, 0),
       s.spent, s.first_day,
       d.since, d.not_before, d.rule, d.notice_event,
       (SELECT n.delivered_at FROM events e JOIN notices n ON n.key = 'event:' || e.id
         WHERE e.key = d.notice_event AND n.status = 'delivered'),
       coalesce((SELECT array_agg(ARRAY[m.id, m.utility, m.relay_state] ORDER BY m.id)
                   FROM meters m
                  WHERE m.account_id = b.account_id AND m.provider_id = b.provider_id
                    AND m.has_relay), '{}'),
       coalesce((SELECT array_agg(ARRAY[x.alert, x.crossing::text, x.armed::text])
                   FROM balance_alerts x
                  WHERE x.account_id = b.account_id AND x.provider_id = b.provider_id), '{}'),
       coalesce((SELECT array_agg(ARRAY[o.day::text, o.day_off::text])
                   FROM holiday_overrides o
                  WHERE o.region = ad.region
                    AND o.day BETWEEN (%(now)s AT TIME ZONE ad.time_zone)::date - 1
                                  AND (%(now)s AT TIME ZONE ad.time_zone)::date
                                      + p.notice_days + 60), '{}')
  FROM balances b
  JOIN accounts a ON a.id = b.account_id
  JOIN addresses ad ON ad.id = a.address_id
  JOIN contract_types c ON c.code = a.contract_type
  JOIN disconnection_policies p ON p.code = c.policy
  LEFT JOIN disconnections_due d
         ON d.account_id = b.account_id AND d.provider_id = b.provider_id
  -- the negative limit of the pair's plans for its meters' services in force today, the least
  -- negative of them: tariff_negative_limit(), set-based (a function call per row costs
  -- more than the rest of this query)
  LEFT JOIN LATERAL (
        SELECT max(v.negative_limit) AS negative_limit
          FROM (SELECT DISTINCT CASE utility WHEN 'heat' THEN 'heating' ELSE utility END
                  FROM meters
                 WHERE account_id = b.account_id AND provider_id = b.provider_id) sv(service)
         CROSS JOIN LATERAL (
               SELECT coalesce(
                   (SELECT c.plan_id FROM account_plans c
                     WHERE c.account_id = b.account_id AND c.provider_id = b.provider_id
                       AND c.service = sv.service
                       AND c.valid_from <= (%(now)s AT TIME ZONE ad.time_zone)::date
                     ORDER BY c.valid_from DESC LIMIT 1),
                   (SELECT t.id FROM tariff_plans t
                     WHERE t.provider_id = b.provider_id AND t.service = sv.service
                       AND t.is_default)) AS plan_id) pl
         CROSS JOIN LATERAL (
               SELECT tv.negative_limit, tv.valid_to FROM tariff_versions tv
                WHERE tv.plan_id = pl.plan_id
                  AND tv.valid_from <= (%(now)s AT TIME ZONE ad.time_zone)::date
                ORDER BY tv.valid_from DESC LIMIT 1) v
         WHERE v.valid_to IS NULL OR v.valid_to > (%(now)s AT TIME ZONE ad.time_zone)::date
  ) lim ON true
  LEFT JOIN LATERAL (
        SELECT sum(x.amount) AS spent, min(x.day) AS first_day
          FROM daily_spend x
         WHERE x.account_id = b.account_id AND x.provider_id = b.provider_id
           AND x.day >= (%(now)s AT TIME ZONE 'UTC')::date - p.forecast_days
           AND x.day < (%(now)s AT TIME ZONE 'UTC')::date) s ON true
 WHERE <accounts> AND a.billing_mode = 'prepaid'
 ORDER BY b.account_id, b.provider_id
"""

# One account (a top-up, emergency credit) is named by `=`: PostgreSQL then keeps one plan of
# the prepared statement, where with `= ANY(array)` it plans every execution anew (a generic
# plan for an array of unknown length looks dearer), 0.4 ms and more of planning each time.
_STATE_OF_ONE = _STATE.replace("<accounts>", "b.account_id = %(account)s")
_STATE_OF_MANY = _STATE.replace("<accounts>", "b.account_id = ANY(%(accounts)b::text[])")

_RELAYS = """
WITH wanted AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
             AS w(meter_id, action, reason, account_id, provider_id)
), changed AS (
    UPDATE meters m
       SET relay_state = CASE w.action WHEN 'connect' THEN 'connected' ELSE 'disconnected' END
      FROM wanted w
     WHERE m.id = w.meter_id
    RETURNING m.id
)
INSERT INTO relay_commands (meter_id, action, reason)
SELECT w.meter_id, w.action, w.reason FROM wanted w JOIN changed c ON c.id = w.meter_id
 ORDER BY w.meter_id
RETURNING id, meter_id, action
"""

_DUE = """
INSERT INTO disconnections_due (account_id, provider_id, since, not_before, rule, notice_event)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[],
                     %s::text[])
ON CONFLICT (account_id, provider_id)
   DO UPDATE SET since = excluded.since, not_before = excluded.not_before, rule = excluded.rule,
                 notice_event = excluded.notice_event
"""

_UNDUE = """
DELETE FROM disconnections_due d
 USING unnest(%s::text[], %s::text[]) AS k(account_id, provider_id)
 WHERE d.account_id = k.account_id AND d.provider_id = k.provider_id
"""

_ALERTS = """
INSERT INTO balance_alerts (account_id, provider_id, alert, crossing, armed)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::boolean[])
ON CONFLICT (account_id, provider_id, alert)
   DO UPDATE SET crossing = excluded.crossing, armed = excluded.armed
"""


def _pair(row: Sequence[Any], now: datetime) -> Pair:
    (account, provider, balance, time_zone, country, _region, apartment, code, rule,
     notice_days, friendly_from, friendly_until, working_days_only, low_balance, credit_days,
     forecast_days, limit, spent, first_day, since, not_before, due_rule, due_notice,
     delivered_at, meters, alerts, overrides) = row
    if due_rule is not None and due_rule != rule:
        not_before = None  # the contract changed: its notice period counts from the notice
    window: tuple[time, time] | None = (
        None if friendly_from is None else (friendly_from, friendly_until))
    policy = Policy(code, Rule(rule), notice_days, FriendlyHours(window, working_days_only),
                    tuple(sorted(low_balance, reverse=True)), credit_days, forecast_days)
    # the average over the last full days (UTC), or over the days since the first charge
    spent_days = Decimal(forecast_days)
    if first_day is not None:
        spent_days = Decimal(min(forecast_days, (now.astimezone(UTC).date() - first_day).days))
    return Pair(
        account, provider, balance, limit, policy, time_zone,
        Calendar(country, {date.fromisoformat(d): off == "true" for d, off in overrides}),
        apartment, [Meter(m, u, s) for m, u, s in meters], spent, spent_days, since,
        not_before, due_notice, delivered_at,
        {a: (int(c), armed == "true") for a, c, armed in alerts})


async def _write(conn: psycopg.AsyncConnection[Any], out: Decisions) -> list[tuple[str, str]]:
    if out.undue:
        await conn.execute(_UNDUE, ([a for a, _ in out.undue], [p for _, p in out.undue]))
    if out.due:
        await conn.execute(_DUE, tuple(list(col) for col in zip(*out.due, strict=True)))
    if out.alerts:
        await conn.execute(_ALERTS, tuple(list(col) for col in zip(*out.alerts, strict=True)))
    issued: list[tuple[str, str]] = []
    if out.commands:
        cur = await conn.execute(
            _RELAYS, tuple(list(col) for col in zip(*out.commands, strict=True)))
        owner = {meter: (account, provider, reason)
                 for meter, _, reason, account, provider in out.commands}
        for command_id, meter, action in await cur.fetchall():
            account, provider, reason = owner[meter]
            issued.append((meter, action))
            kind = EventKind.DISCONNECTED if action == "disconnect" else EventKind.RECONNECTED
            out.events.append(Event(kind, account, provider, meter,
                                    payload={"reason": reason, "command_id": str(command_id)},
                                    key=f"{kind.value}:{command_id}"))
    await emit(conn, out.events)
    return issued


async def decide_relays(
    conn: psycopg.AsyncConnection[Any], account_ids: Collection[str], *,
    now: datetime | None = None,
) -> list[tuple[str, str]]:
    """Apply the accounts' policies to their balances at ``now`` (default: the transaction's
    time): relay commands, waiting cuts and warnings; (meter, action) of each command."""
    if not account_ids:
        return []
    accounts = sorted(set(account_ids))
    if now is None:
        cur = await conn.execute("SELECT now()")
        row = await cur.fetchone()
        assert row is not None
        now = row[0]
    assert now is not None
    await conn.execute(_LOCK, {"accounts": accounts})
    if len(accounts) == 1:
        cur = await conn.execute(_STATE_OF_ONE, {"account": accounts[0], "now": now})
    else:
        cur = await conn.execute(_STATE_OF_MANY, {"accounts": accounts, "now": now})
    out = Decisions()
    for row in await cur.fetchall():
        decide(_pair(row, now), now, out)
    return await _write(conn, out)


_DUE_NOW = """
SELECT DISTINCT account_id FROM disconnections_due
 WHERE not_before <= coalesce(%s::timestamptz, now())
 ORDER BY account_id
 LIMIT %s
"""


async def fire_due(conn: psycopg.AsyncConnection[Any], *, now: datetime | None = None,
                   limit: int = 1000) -> list[tuple[str, str]]:
    """Decide again for the accounts whose waiting cut is due at ``now``: the cut is made if
    the balance is still at or below the limit and the friendly hours are open (else it waits
    for them again). Runs in a transaction of its own; (meter, action) of each command."""
    async with conn.transaction():
        cur = await conn.execute(_DUE_NOW, (now, limit))
        accounts = [a for (a,) in await cur.fetchall()]
        return await decide_relays(conn, accounts, now=now)


# --- contract types, for operators ---------------------------------------------------------

@dataclass(frozen=True)
class ContractType:
    code: str
    name: str
    policy: str
    rule: Rule
    accounts: int
    description: str


_CONTRACT_TYPES = """
SELECT c.code, c.name, c.policy, p.rule,
       (SELECT count(*) FROM accounts a WHERE a.contract_type = c.code), p.description
  FROM contract_types c JOIN disconnection_policies p ON p.code = c.policy
 ORDER BY c.code
"""


async def contract_types(conn: psycopg.AsyncConnection[Any]) -> list[ContractType]:
    """Every contract type with its policy and how many accounts have it."""
    cur = await conn.execute(_CONTRACT_TYPES)
    return [ContractType(code, name, policy, Rule(rule), int(n), description)
            for code, name, policy, rule, n, description in await cur.fetchall()]


async def assign_contract_type(conn: psycopg.AsyncConnection[Any], account_id: str,
                               code: str) -> str:
    """Put an account on a contract type (its policy applies from the next decision, made here
    at once); the type it had. ``NotFound`` for an unknown account, ``Invalid`` for an
    unknown type."""
    cur = await conn.execute("SELECT 1 FROM contract_types WHERE code = %s", (code,))
    if await cur.fetchone() is None:
        known = ", ".join(c.code for c in await contract_types(conn))
        raise Invalid(f"no contract type {code!r} (there are: {known})",
                      field=["contract_type"])
    cur = await conn.execute(
        "UPDATE accounts a SET contract_type = %s FROM accounts old "
        "WHERE a.id = %s AND old.id = a.id RETURNING old.contract_type", (code, account_id))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No account {account_id}")
    await decide_relays(conn, [account_id])
    before: str = row[0]
    return before
