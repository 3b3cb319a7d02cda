"""An account's plan among its provider's plans (e.g. one rate, two zones, three zones).

A choice takes effect from the next billing period: the first day of the next month in the
account's own time zone. Choosing again before then replaces the pending choice (choosing the
plan in force cancels a pending change). Until an account chooses, its provider's default plan
for the service applies. The consumer group (urban, rural, electric stove) goes with the choice
and carries over when a choice does not name one.

Service functions: they run on the caller's connection and transaction, raise domain errors
(``meterline.errors``), and know nothing of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from meterline.errors import Invalid, NotFound
from meterline.tariffs.model import ConsumerGroup
from meterline.tariffs.pricing import month_id, month_start
from meterline.tariffs.zones import time_zone
from meterline.units import Service


@dataclass(frozen=True)
class AccountPlan:
    provider_id: str
    service: Service
    plan_code: str
    plan_name: str
    consumer_group: ConsumerGroup
    since: date | None  # first day it applies; None: the provider's default, never chosen
    chosen: bool  # False: the provider's default plan


@dataclass(frozen=True)
class PlanChoice:
    account_id: str
    choice: AccountPlan  # what applies from choice.since
    previous: AccountPlan | None  # what applies until then (None: no plan at all)


_ACCOUNT = """
SELECT ad.time_zone FROM accounts a JOIN addresses ad ON ad.id = a.address_id WHERE a.id = %s
"""

_PROVIDERS = "SELECT provider_id FROM balances WHERE account_id = %s ORDER BY provider_id"

_PLANS_CODED = """
SELECT id, provider_id, service, code, name FROM tariff_plans
 WHERE code = %s AND provider_id = ANY(%s)
"""

_ENDED = """
SELECT valid_to FROM tariff_versions
 WHERE plan_id = %(plan)s AND valid_from <= %(day)s
 ORDER BY valid_from DESC LIMIT 1
"""

# the plan of each (provider, service) on a day: the latest choice from then, else the default
_PLANS_ON = """
WITH chosen AS (
    SELECT DISTINCT ON (c.provider_id, c.service)
           c.provider_id, c.service, c.plan_id, c.consumer_group, c.valid_from
      FROM account_plans c
     WHERE c.account_id = %(account)s AND c.valid_from <= %(day)s
     ORDER BY c.provider_id, c.service, c.valid_from DESC
), defaults AS (
    SELECT p.provider_id, p.service, p.id AS plan_id
      FROM tariff_plans p
      JOIN balances b ON b.provider_id = p.provider_id AND b.account_id = %(account)s
     WHERE p.is_default
)
SELECT coalesce(c.provider_id, d.provider_id), coalesce(c.service, d.service), p.code, p.name,
       coalesce(c.consumer_group, 'urban'), c.valid_from, c.plan_id IS NOT NULL
  FROM chosen c
  FULL JOIN defaults d ON d.provider_id = c.provider_id AND d.service = c.service
  JOIN tariff_plans p ON p.id = coalesce(c.plan_id, d.plan_id)
 ORDER BY 1, 2
"""

_CHOOSE = """
INSERT INTO account_plans (account_id, provider_id, service, valid_from, plan_id,
                           consumer_group)
VALUES (%(account)s, %(provider)s, %(service)s, %(day)s, %(plan)s, %(group)s)
ON CONFLICT (account_id, provider_id, service, valid_from) DO UPDATE
   SET plan_id = excluded.plan_id, consumer_group = excluded.consumer_group,
       chosen_at = now()
"""

_UNCHOOSE = """
DELETE FROM account_plans
 WHERE account_id = %(account)s AND provider_id = %(provider)s AND service = %(service)s
   AND valid_from = %(day)s
"""


async def _time_zone(conn: psycopg.AsyncConnection[Any], account_id: str) -> str:
    cur = await conn.execute(_ACCOUNT, (account_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"No account {account_id}")
    zone: str = row[0]
    return zone


def local_today(zone: str, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(time_zone(zone)).date()


async def plans_on(conn: psycopg.AsyncConnection[Any], account_id: str,
                   day: date) -> list[AccountPlan]:
    """The account's plan for each service of each provider it buys from, on a local day."""
    cur = await conn.execute(_PLANS_ON, {"account": account_id, "day": day})
    return [AccountPlan(provider_id=r[0], service=Service(r[1]), plan_code=r[2],
                        plan_name=r[3], consumer_group=ConsumerGroup(r[4]), since=r[5],
                        chosen=r[6])
            for r in await cur.fetchall()]


async def account_plans(conn: psycopg.AsyncConnection[Any], account_id: str,
                        now: datetime | None = None) -> tuple[list[AccountPlan],
                                                              list[AccountPlan]]:
    """(plans in force today, plans chosen from the next period that differ from them)."""
    today = local_today(await _time_zone(conn, account_id), now)
    current = await plans_on(conn, account_id, today)
    following = await plans_on(conn, account_id, month_start(month_id(today) + 1))
    now_on = {(p.provider_id, p.service, p.plan_code, p.consumer_group) for p in current}
    return current, [p for p in following
                     if (p.provider_id, p.service, p.plan_code, p.consumer_group) not in now_on]


async def choose_plan(
    conn: psycopg.AsyncConnection[Any],
    account_id: str,
    plan_code: str,
    *,
    provider_id: str | None = None,
    consumer_group: ConsumerGroup | None = None,
    now: datetime | None = None,
) -> PlanChoice:
    """Put the account on plan ``plan_code`` from its next billing period."""
    zone = await _time_zone(conn, account_id)
    cur = await conn.execute(_PROVIDERS, (account_id,))
    providers = [p for (p,) in await cur.fetchall()]
    if provider_id is not None and provider_id not in providers:
        raise Invalid(f"account {account_id} does not buy from provider {provider_id} "
                      f"(it buys from: {', '.join(providers) or 'none'})",
                      field=("body", "provider_id"), error_type="unknown_provider")
    cur = await conn.execute(_PLANS_CODED, (plan_code, [provider_id] if provider_id
                                            else providers))
    found = await cur.fetchall()
    if not found:
        raise Invalid(f"no plan {plan_code} among the plans of "
                      f"{provider_id or ', '.join(providers) or 'the account providers'}",
                      field=("body", "plan"), error_type="unknown_plan")
    if len(found) > 1:
        raise Invalid(f"providers {', '.join(r[1] for r in found)} all have a plan "
                      f"{plan_code}: name the provider_id", field=("body", "provider_id"),
                      error_type="missing")
    plan_id, provider, service, code, name = found[0]
    today = local_today(zone, now)
    start = month_start(month_id(today) + 1)
    cur = await conn.execute(_ENDED, {"plan": plan_id, "day": start})
    version = await cur.fetchone()
    if version is None or (version[0] is not None and version[0] <= start):
        raise Invalid(f"plan {code} has no tariff in force from {start}, when a choice made "
                      f"today would apply", field=("body", "plan"), error_type="not_in_force")
    previous = next((p for p in await plans_on(conn, account_id, today)
                     if (p.provider_id, p.service) == (provider, service)), None)
    group = consumer_group or (previous.consumer_group if previous else ConsumerGroup.URBAN)
    if previous is not None and (previous.plan_code, previous.consumer_group) == (code, group):
        # the plan in force stays: nothing changes from the next period
        await conn.execute(_UNCHOOSE, {"account": account_id, "provider": provider,
                                       "service": service, "day": start})
        return PlanChoice(account_id=account_id, choice=previous, previous=previous)
    await conn.execute(_CHOOSE, {"account": account_id, "provider": provider,
                                 "service": service, "day": start, "plan": plan_id,
                                 "group": group})
    choice = AccountPlan(provider_id=provider, service=Service(service), plan_code=code,
                         plan_name=name, consumer_group=group, since=start, chosen=True)
    return PlanChoice(account_id=account_id, choice=choice, previous=previous)


_ASSIGN = """
INSERT INTO account_plans (account_id, provider_id, service, valid_from, plan_id,
                           consumer_group)
SELECT %(account)s, p.provider_id, p.service, %(day)s, p.id, %(group)s
  FROM tariff_plans p WHERE p.provider_id = %(provider)s AND p.code = %(plan)s
ON CONFLICT (account_id, provider_id, service, valid_from) DO UPDATE
   SET plan_id = excluded.plan_id, consumer_group = excluded.consumer_group
RETURNING service
"""


async def assign_plan(conn: psycopg.AsyncConnection[Any], account_id: str, provider_id: str,
                      plan_code: str, since: date,
                      consumer_group: ConsumerGroup = ConsumerGroup.URBAN) -> None:
    """Put an account on a plan from ``since``, as the account's registration or an operator
    does (a subscriber's choice waits for the next period: ``choose_plan``). Idempotent."""
    await _time_zone(conn, account_id)
    cur = await conn.execute(_ASSIGN, {"account": account_id, "provider": provider_id,
                                       "plan": plan_code, "day": since,
                                       "group": consumer_group})
    if await cur.fetchone() is None:
        raise Invalid(f"provider {provider_id} has no plan {plan_code}", field=("plan",),
                      error_type="unknown_plan")
