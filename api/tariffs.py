"""Tariffs: the providers' plans with their versions and prices (GET /tariffs), and an account's
plan among its provider's plans (GET and POST /accounts/{account_id}/plans).

The rules live in the kernel (``meterline.tariffs``): this module maps HTTP to them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Security
from pydantic import BaseModel, ConfigDict, Field

from api.amounts import Exact
from api.auth.access import ReadableAccount, account_with
from api.auth.callers import current_caller
from api.auth.tokens import Caller
from api.problems import problem_responses
from api.state import Pool, read_snapshot
from meterline.contracts import ProviderId
from meterline.tariffs.choices import AccountPlan, account_plans, choose_plan
from meterline.tariffs.model import Basis, ConsumerGroup, Zone
from meterline.tariffs.store import StoredPlan, read_plans
from meterline.units import Service, Unit, Utility
from meterline.users import Scope

router = APIRouter(tags=["tariffs"])

Reader = Annotated[Caller, Security(current_caller, scopes=[Scope.ACCOUNTS_READ])]
PlanAccount = Annotated[str, Depends(account_with(Scope.PLANS))]


class Band(BaseModel):
    band: int = Field(description="0 for the first band.")
    from_: Exact = Field(serialization_alias="from", description="Monthly volume it starts at.")
    to: Exact | None = Field(description="Monthly volume it ends at; null for the last band.")


class Price(BaseModel):
    zone: str
    band: int
    consumer_group: ConsumerGroup
    price: Exact = Field(description="Roubles per unit of the plan's basis.")


class Version(BaseModel):
    id: int
    valid_from: date = Field(description="First local day in force (in the account's zone).")
    valid_to: date | None = Field(
        description="First local day no longer in force; null while open-ended.")
    zones: list[Zone]
    bands: list[Band] = Field(description="Monthly volume bands (one band when none).")
    social_norm: list[Exact] = Field(
        description="When set, two bands: within and above a norm that depends on the "
        "registered residents (1, 2, 3 ... the last for more), per month.")
    group_coefficients: dict[ConsumerGroup, Exact]
    standing_charge: Exact = Field(description="Roubles per account per day.")
    negative_limit: Exact = Field(description="Lowest balance a prepaid account may reach.")
    prices: list[Price]


class Plan(BaseModel):
    id: int
    provider_id: str
    code: str
    name: str
    description: str
    service: Service
    utility: Utility | None = Field(description="The metered utility priced, if any.")
    basis: Basis = Field(description="What one unit of the price is: kWh, m3, Gcal, m2 of "
                         "area per month, or a registered resident per month.")
    unit: Unit | None = Field(description="The meter unit, for a metered basis.")
    default: bool = Field(description="The plan of accounts that chose none.")
    derived_from: list[Utility] = Field(
        description="Utilities whose metered volume the plan prices (sewerage).")
    versions: list[Version]


def _plan(stored: StoredPlan) -> Plan:
    plan = stored.plan
    versions = []
    for i, (vid, v) in enumerate(zip(stored.version_ids, plan.versions, strict=True)):
        edges = [Decimal(0), *v.bands]
        versions.append(Version(
            id=vid, valid_from=v.valid_from, valid_to=plan.ends(i), zones=list(v.zones),
            bands=[Band(band=k, from_=edges[k], to=edges[k + 1] if k + 1 < len(edges) else None)
                   for k in range(len(edges))] if not v.social_norm else [],
            social_norm=list(v.social_norm),
            group_coefficients={g: v.coefficient(g) for g in ConsumerGroup},
            standing_charge=v.standing_charge, negative_limit=v.negative_limit,
            prices=[Price(zone=zone.name, band=b, consumer_group=g, price=v.price(z, b, g))
                    for z, zone in enumerate(v.zones) for b in range(v.band_count)
                    for g in ConsumerGroup],
        ))
    return Plan(id=stored.id, provider_id=plan.provider_id, code=plan.code, name=plan.name,
                description=plan.description, service=plan.service, utility=plan.utility,
                basis=plan.basis, unit=plan.basis.unit, default=plan.default,
                derived_from=list(plan.derived_from), versions=versions)


@router.get("/tariffs", response_model=list[Plan], responses=problem_responses(401, 403, 422),
            summary="Tariff plans with their versions, zones, bands and prices")
async def list_tariffs(
    _: Reader,
    pool: Pool,
    provider_id: Annotated[ProviderId | None, Query(description="Only this provider.")] = None,
    utility: Annotated[Utility | None, Query(
        description="Only plans pricing this utility (sewerage counts for water).")] = None,
    service: Annotated[Service | None, Query(description="Only plans of this service.")] = None,
) -> list[Plan]:
    """Every plan (or those of one provider, utility or service) with all its versions: when
    each is in force, its time-of-use zones (local wall-clock windows), monthly volume bands,
    and the price per unit for every zone, band and consumer group."""
    async with pool.connection() as conn, conn.transaction():
        await read_snapshot(conn)
        stored = await read_plans(conn, provider=provider_id, utility=utility, service=service)
    return [_plan(s) for s in stored]


class AccountPlanOut(BaseModel):
    provider_id: str
    service: Service
    plan: str = Field(description="Plan code.")
    plan_name: str
    consumer_group: ConsumerGroup
    since: date | None = Field(description="First day it applies; null for a default plan "
                               "the account never chose.")
    chosen: bool = Field(description="False: the provider's default plan.")


def _out(p: AccountPlan) -> AccountPlanOut:
    return AccountPlanOut(provider_id=p.provider_id, service=p.service, plan=p.plan_code,
                          plan_name=p.plan_name, consumer_group=p.consumer_group,
                          since=p.since, chosen=p.chosen)


class AccountPlans(BaseModel):
    account_id: str
    plans: list[AccountPlanOut] = Field(description="In force today, per provider and service.")
    pending: list[AccountPlanOut] = Field(
        description="Chosen for the next billing period, where they differ.")


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(description="Code of one of the provider's plans.",
                      examples=["household-3zone"])
    provider_id: ProviderId | None = Field(
        None, description="Needed only when several of the account's providers have a plan "
        "with this code.")
    consumer_group: ConsumerGroup | None = Field(
        None, description="Urban, rural or electric stove; unchanged when left out.")


class PlanChoiceOut(BaseModel):
    account_id: str
    plan: AccountPlanOut = Field(description="The plan chosen, from its first day.")
    previous: AccountPlanOut | None = Field(description="The plan in force until then.")


@router.get("/accounts/{account_id}/plans", response_model=AccountPlans,
            responses=problem_responses(401, 403, 404, 422), tags=["accounts"],
            summary="An account's tariff plans, in force and chosen for the next period")
async def get_account_plans(account_id: ReadableAccount, pool: Pool) -> AccountPlans:
    async with pool.connection() as conn, conn.transaction():
        await read_snapshot(conn)
        current, pending = await account_plans(conn, account_id)
    return AccountPlans(account_id=account_id, plans=[_out(p) for p in current],
                        pending=[_out(p) for p in pending])


@router.post("/accounts/{account_id}/plans", response_model=PlanChoiceOut,
             responses=problem_responses(401, 403, 404, 422), tags=["accounts"],
             summary="Choose an account's tariff plan from the next billing period")
async def post_account_plan(account_id: PlanAccount, body: PlanRequest,
                            pool: Pool) -> PlanChoiceOut:
    """Put the account on one of its provider's plans (e.g. `household-3zone`) from the first
    day of its next billing period, in the account's time zone. Choosing again before then
    replaces the choice.

    Needs the scope `plans:choose` (subscribers for their own accounts, operators).

    - **404**: no such account, or one the caller does not see.
    - **422**: no plan with that code among the account's providers' plans, a provider the
      account does not buy from, or a plan with no tariff in force from the next period.
    """
    async with pool.connection() as conn, conn.transaction():
        done = await choose_plan(conn, account_id, body.plan, provider_id=body.provider_id,
                                 consumer_group=body.consumer_group)
    return PlanChoiceOut(account_id=account_id, plan=_out(done.choice),
                         previous=_out(done.previous) if done.previous else None)
