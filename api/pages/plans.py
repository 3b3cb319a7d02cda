"""The cabinet's tariff plan page: the account's plan per provider and service, the one chosen
from the next billing period, and a choice among each provider's plans for that service. The
rules are the kernel's (`meterline.tariffs.choices`), as for ``POST /accounts/{id}/plans``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response

from api.auth.access import sees_account
from api.pages.session import Page, allowed, page
from api.state import Pool, read_snapshot
from meterline.errors import DomainError
from meterline.tariffs.choices import account_plans, choose_plan
from meterline.tariffs.model import ConsumerGroup
from meterline.tariffs.store import read_plans
from meterline.users import Scope

router = APIRouter(include_in_schema=False)

View = Annotated[Page, Depends(page)]
Text = Annotated[str, Form(max_length=200)]


@router.get("/cabinet/accounts/{account_id}/plans")
async def plans_page(account_id: str, view: View, pool: Pool) -> Response:
    async with pool.connection() as conn:
        if not await sees_account(conn, view.viewer, account_id):
            return view.render("missing.html", status=404, account_id=account_id)
    async with pool.connection() as conn, conn.transaction():  # one snapshot for all
        await read_snapshot(conn)
        current, pending = await account_plans(conn, account_id)
        offers = []
        for plan in current:
            stored = await read_plans(conn, provider=plan.provider_id, service=plan.service)
            following = next((p for p in pending if (p.provider_id, p.service) ==
                              (plan.provider_id, plan.service)), None)
            offers.append({"now": plan, "next": following, "plans": [s.plan for s in stored]})
    return view.render("plans.html", account_id=account_id, offers=offers,
                       groups=list(ConsumerGroup),
                       can_choose=Scope.PLANS in view.viewer.scopes)


@router.post("/cabinet/accounts/{account_id}/plans")
async def choose(account_id: str, view: View, pool: Pool, provider_id: Text, plan: Text,
                 csrf: Text, consumer_group: Text = "") -> Response:
    view.check_csrf(csrf)
    here = f"/cabinet/accounts/{account_id}/plans"
    async with pool.connection() as conn:
        if not await allowed(view, conn, account_id, Scope.PLANS):
            return view.render("missing.html", status=404, account_id=account_id)
        try:
            group = ConsumerGroup(consumer_group) if consumer_group else None
            async with conn.transaction():
                done = await choose_plan(conn, account_id, plan, provider_id=provider_id,
                                         consumer_group=group)
        except (ValueError, DomainError) as exc:
            view.flash(exc.detail if isinstance(exc, DomainError) else str(exc))
            return view.redirect(here)
    view.flash(view.t("plan_chosen", plan=done.choice.plan_name,
                      date=done.choice.since or ""))
    return view.redirect(here)
