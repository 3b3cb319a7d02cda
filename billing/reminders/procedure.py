"""The statutory sequence for a debt on one service (DOMAIN.md §7, decree 354 pp. 117–119),
pure: notice → (20 days after the notice was delivered) restriction → (10 days after the
restriction) suspension, each step only while the debt is still owed and no repayment
agreement is kept; never for heating, nor for cold water in an apartment building, nor for
a service with nothing to cut (`meterline.restrictions`); never while a moratorium on
restrictions is in force.

Contracts choose their policy (DOMAIN.md §8): ``statutory`` (the sequence above, the default
for households), ``notice_then_restrict`` (a business: notice, then restriction after a notice
period, default 10 days; no suspension step) and ``prepay_cutoff`` (no procedure here: the
prepaid rule cuts off at zero balance).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from meterline.restrictions import never_restricted


class Policy(StrEnum):
    STATUTORY = "statutory"
    NOTICE_THEN_RESTRICT = "notice_then_restrict"
    PREPAY_CUTOFF = "prepay_cutoff"


class Stage(StrEnum):
    NOTICE = "notice"  # the notice is being delivered, or its period runs
    RESTRICTED = "restricted"
    SUSPENDED = "suspended"
    CLOSED = "closed"  # paid, agreed, or never to be restricted


class Step(StrEnum):
    RESTRICT = "restrict"
    SUSPEND = "suspend"
    CLOSE = "close"


@dataclass(frozen=True)
class Terms:
    policy: Policy = Policy.STATUTORY
    notice_days: int = 20  # from delivery of the notice to restriction
    suspension_days: int | None = 10  # from restriction to suspension; None: no suspension

    @classmethod
    def of(cls, policy: Policy, business_notice_days: int = 10) -> Terms:
        if policy is Policy.NOTICE_THEN_RESTRICT:
            return cls(policy, business_notice_days, None)
        return cls(policy)


@dataclass(frozen=True)
class Procedure:
    """Where one account's debt to one provider for one service stands."""

    service: str
    stage: Stage
    notice_delivered_at: datetime | None = None
    restricted_at: datetime | None = None


@dataclass(frozen=True)
class Situation:
    now: datetime
    owes: bool  # the debt is still at or above the threshold that started the procedure
    agreement_kept: bool = False  # a repayment (instalment) agreement is being kept
    apartment_building: bool = True
    restrictions_barred: bool = False  # a moratorium on restrictions is in force today


def next_step(p: Procedure, s: Situation, terms: Terms) -> Step | None:
    """What is due now, if anything."""
    if p.stage is Stage.CLOSED:
        return None
    if not s.owes or s.agreement_kept or terms.policy is Policy.PREPAY_CUTOFF:
        return Step.CLOSE
    if never_restricted(p.service, s.apartment_building) or s.restrictions_barred:
        return None  # the notice stands; nothing more may be done now
    if p.stage is Stage.NOTICE:
        if p.notice_delivered_at is None:
            return None  # the 20 days run from delivery, not from sending
        if s.now >= p.notice_delivered_at + timedelta(days=terms.notice_days):
            return Step.RESTRICT
        return None
    if p.stage is Stage.RESTRICTED and terms.suspension_days is not None:
        assert p.restricted_at is not None
        if s.now >= p.restricted_at + timedelta(days=terms.suspension_days):
            return Step.SUSPEND
    return None


def earliest_restriction(p: Procedure, terms: Terms) -> date | None:
    """The first day the service may be restricted (for the notice's text), once delivered."""
    if p.notice_delivered_at is None:
        return None
    return (p.notice_delivered_at + timedelta(days=terms.notice_days)).date()
