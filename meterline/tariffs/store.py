"""Tariff books in PostgreSQL: loading a book (idempotent, append-only) and reading plans back.

Loading a book, in one transaction:
- the provider is registered if it is new (an existing provider is left as it is);
- a new plan is added; a known plan (same provider and code) may change its name and
  description, never its service, utility or basis;
- a version already stored (same plan and valid_from) must be identical: tariffs once loaded
  are never edited. A new version must start after the plan's last stored one: it adds a
  validity period and ends the one before it, whose stored row does not change;
- a plan marked default becomes its provider's default for its service;
- benefit rules are added, and a known one must be identical.
Anything refused refuses the whole book (``BookConflict``), and nothing is stored. Loading the
same book twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from meterline.errors import Conflict
from meterline.tariffs.model import (
    Basis,
    BenefitRule,
    Book,
    ConsumerGroup,
    ProviderInfo,
    TariffPlan,
    TariffVersion,
    Zone,
)
from meterline.tariffs.zones import FLAT
from meterline.units import SERVICE_OF_UTILITY, Service, Utility


class BookConflict(Conflict):
    """A book that contradicts what is stored: (where, what) for every contradiction."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {where}: {what}" for where, what in self.problems)
        super().__init__(f"the tariff book contradicts the stored one "
                         f"({len(self.problems)} problems):\n{lines}",
                         code="tariff-book-conflict")


@dataclass(frozen=True)
class StoredPlan:
    id: int
    plan: TariffPlan
    version_ids: tuple[int, ...]


@dataclass
class LoadReport:
    provider: str
    provider_added: bool = False
    plans_added: list[str] = field(default_factory=list)
    versions_added: list[tuple[str, date]] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)
    benefits_added: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.provider_added or self.plans_added or self.versions_added
                    or self.renamed or self.defaults or self.benefits_added)

    def lines(self) -> list[str]:
        if not self.changed:
            return [f"{self.provider}: nothing new (the book is loaded already)"]
        out = [f"provider {self.provider} registered"] if self.provider_added else []
        out += [f"plan {code} added" for code in self.plans_added]
        out += [f"plan {code}: version from {day} added" for code, day in self.versions_added]
        out += [f"plan {code}: name or description updated" for code in self.renamed]
        out += [f"plan {code} is now the default for its service" for code in self.defaults]
        out += [f"benefit {code} added" for code in self.benefits_added]
        return out


# --- reading ---------------------------------------------------------------------------------

_PLANS = """
SELECT id, provider_id, code, name, description, service, utility, basis, derived_from,
       is_default
  FROM tariff_plans
 WHERE (%(provider)s::text IS NULL OR provider_id = %(provider)s)
   AND (%(utility)s::text IS NULL OR utility = %(utility)s OR %(utility)s = ANY(derived_from))
   AND (%(service)s::text IS NULL OR service = %(service)s)
   AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s))
 ORDER BY provider_id, service, code
"""

_VERSIONS = """
SELECT v.id, v.plan_id, v.valid_from, v.valid_to, v.zones, v.band_limits, v.social_norm,
       v.group_coefficients, v.standing_charge, v.negative_limit,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(zone, band, price::text)), '[]')
          FROM tariff_prices p
         WHERE p.version_id = v.id AND p.consumer_group = 'urban') AS prices
  FROM tariff_versions v
 WHERE v.plan_id = ANY(%s)
 ORDER BY v.plan_id, v.valid_from
"""


def _version(row: Sequence[Any]) -> TariffVersion:
    (_, _, valid_from, valid_to, zones, bands, social_norm, groups, standing, negative,
     prices) = row
    zone_list = tuple(Zone(name=z["name"], windows=tuple(z["windows"])) for z in zones)
    names = [z.name for z in zone_list]
    band_count = 2 if social_norm else len(bands) + 1
    grid = [[Decimal(0)] * band_count for _ in names]
    for zone, band, price in prices:
        grid[names.index(zone)][band] = Decimal(price)
    return TariffVersion(
        valid_from=valid_from, valid_to=valid_to, zones=zone_list, bands=tuple(bands),
        social_norm=tuple(social_norm),
        groups={ConsumerGroup(k): Decimal(v) for k, v in groups.items()},
        prices=tuple(tuple(row) for row in grid), standing_charge=standing,
        negative_limit=negative,
    )


async def read_plans(
    conn: psycopg.AsyncConnection[Any], *, provider: str | None = None,
    utility: Utility | None = None, service: Service | None = None,
    ids: Sequence[int] | None = None,
) -> list[StoredPlan]:
    """Plans with their versions, optionally of one provider, utility (a plan derived from a
    utility's volume counts as one of it) or service, or with the given ids."""
    cur = await conn.execute(_PLANS, {"provider": provider, "utility": utility,
                                      "service": service, "ids": list(ids) if ids else None})
    plans = await cur.fetchall()
    cur = await conn.execute(_VERSIONS, ([p[0] for p in plans],))
    versions: dict[int, list[tuple[int, TariffVersion]]] = {}
    for row in await cur.fetchall():
        versions.setdefault(row[1], []).append((row[0], _version(row)))
    stored = []
    for pid, provider_id, code, name, description, svc, util, basis, derived, default in plans:
        own = versions.get(pid, [])
        stored.append(StoredPlan(
            id=pid,
            plan=TariffPlan(
                provider_id=provider_id, code=code, name=name, description=description,
                service=Service(svc), utility=Utility(util) if util else None,
                basis=Basis(basis), default=default,
                derived_from=tuple(Utility(u) for u in derived),
                versions=tuple(v for _, v in own)),
            version_ids=tuple(vid for vid, _ in own),
        ))
    return stored


# --- loading ---------------------------------------------------------------------------------

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('meterline.tariffs:' || %s))"

_ADD_PROVIDER = """
INSERT INTO providers (id, name, inn) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING
RETURNING id
"""

_ADD_PLAN = """
INSERT INTO tariff_plans (provider_id, code, name, description, service, utility, basis,
                          derived_from)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""

_RENAME = "UPDATE tariff_plans SET name = %s, description = %s WHERE id = %s"

_ADD_VERSION = """
INSERT INTO tariff_versions (plan_id, valid_from, valid_to, zones, band_limits, social_norm,
                             group_coefficients, standing_charge, negative_limit)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""

_ADD_PRICES = """
INSERT INTO tariff_prices (version_id, zone, band, consumer_group, price)
SELECT %s, * FROM unnest(%s::text[], %s::smallint[], %s::text[], %s::numeric[])
"""

_CLEAR_DEFAULT = """
UPDATE tariff_plans SET is_default = false
 WHERE provider_id = %s AND service = %s AND is_default AND id <> %s
"""

_SET_DEFAULT = """
UPDATE tariff_plans SET is_default = true WHERE id = %s AND NOT is_default RETURNING id
"""

_BENEFIT = """
SELECT name, service, percent, norm, norm_basis FROM benefit_rules
 WHERE provider_id = %s AND code = %s
"""

_ADD_BENEFIT = """
INSERT INTO benefit_rules (provider_id, code, name, service, percent, norm, norm_basis)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""


async def load_book(conn: psycopg.AsyncConnection[Any], book: Book) -> LoadReport:
    """Store ``book``: all of it or, with a ``BookConflict``, nothing."""
    report = LoadReport(provider=book.provider.id)
    problems: list[tuple[str, str]] = []
    async with conn.transaction():
        await conn.execute(_LOCK, (book.provider.id,))
        p = book.provider
        cur = await conn.execute(_ADD_PROVIDER, (p.id, p.name, p.inn))
        report.provider_added = await cur.fetchone() is not None
        known = {s.plan.code: s for s in await read_plans(conn, provider=p.id)}
        for plan in book.plans:
            await _load_plan(conn, plan, known.get(plan.code), report, problems)
        for rule in book.benefits:
            await _load_benefit(conn, rule, report, problems)
        if problems:
            raise BookConflict(problems)
    return report


async def _load_plan(conn: psycopg.AsyncConnection[Any], plan: TariffPlan,
                     stored: StoredPlan | None, report: LoadReport,
                     problems: list[tuple[str, str]]) -> None:
    where = f"plan {plan.code}"
    if stored is None:
        cur = await conn.execute(_ADD_PLAN, (
            plan.provider_id, plan.code, plan.name, plan.description, plan.service,
            plan.utility, plan.basis, list(plan.derived_from)))
        row = await cur.fetchone()
        assert row is not None
        plan_id: int = row[0]
        versions: tuple[TariffVersion, ...] = ()
        report.plans_added.append(plan.code)
    else:
        plan_id, versions = stored.id, stored.plan.versions
        old = stored.plan
        for name in ("service", "utility", "basis", "derived_from"):
            if getattr(old, name) != getattr(plan, name):
                problems.append((f"{where} > {name}",
                                 f"is {getattr(old, name)} in the stored book, "
                                 f"{getattr(plan, name)} here: a plan keeps what it prices "
                                 "(give a new plan a new code)"))
        if (old.name, old.description) != (plan.name, plan.description):
            await conn.execute(_RENAME, (plan.name, plan.description, plan_id))
            report.renamed.append(plan.code)
    by_day = {v.valid_from: v for v in versions}
    last = versions[-1] if versions else None
    for version in plan.versions:
        at = f"{where} > version from {version.valid_from}"
        if version.valid_from in by_day:
            if by_day[version.valid_from] != version:
                problems.append((at, "differs from the version stored for that day; a tariff "
                                     "once loaded is never edited: add a new version with a "
                                     "later valid_from"))
            continue
        if last is not None and version.valid_from <= last.valid_from:
            problems.append((at, f"starts before the stored version from {last.valid_from}; "
                                 "a new version must start after the last one"))
            continue
        if last is not None and last.valid_to is not None and version.valid_from < last.valid_to:
            problems.append((at, f"overlaps the stored version valid to {last.valid_to}"))
            continue
        await _add_version(conn, plan_id, version)
        report.versions_added.append((plan.code, version.valid_from))
        last = version
    if plan.default:
        await conn.execute(_CLEAR_DEFAULT, (plan.provider_id, plan.service, plan_id))
        cur = await conn.execute(_SET_DEFAULT, (plan_id,))
        if await cur.fetchone():
            report.defaults.append(plan.code)


async def _add_version(conn: psycopg.AsyncConnection[Any], plan_id: int,
                       version: TariffVersion) -> None:
    cur = await conn.execute(_ADD_VERSION, (
        plan_id, version.valid_from, version.valid_to,
        Jsonb([z.model_dump(mode="json") for z in version.zones]),
        list(version.bands), list(version.social_norm),
        Jsonb({g.value: str(c) for g, c in version.groups.items()}),
        version.standing_charge, version.negative_limit))
    row = await cur.fetchone()
    assert row is not None
    zones, bands, groups, prices = [], [], [], []
    for z, zone in enumerate(version.zones):
        for b in range(version.band_count):
            for group in ConsumerGroup:
                zones.append(zone.name)
                bands.append(b)
                groups.append(group.value)
                prices.append(version.price(z, b, group))
    await conn.execute(_ADD_PRICES, (row[0], zones, bands, groups, prices))


async def _load_benefit(conn: psycopg.AsyncConnection[Any], rule: BenefitRule,
                        report: LoadReport, problems: list[tuple[str, str]]) -> None:
    cur = await conn.execute(_BENEFIT, (rule.provider_id, rule.code))
    row = await cur.fetchone()
    if row is None:
        await conn.execute(_ADD_BENEFIT, (rule.provider_id, rule.code, rule.name, rule.service,
                                          rule.percent, rule.norm, rule.norm_basis))
        report.benefits_added.append(rule.code)
    elif tuple(row) != (rule.name, rule.service, rule.percent, rule.norm, rule.norm_basis):
        problems.append((f"benefit {rule.code}", "differs from the stored rule; a benefit rule "
                                                 "once loaded is never edited: give it a new code"))


_DEFAULT_CODE = """
SELECT code FROM tariff_plans WHERE provider_id = %s AND service = %s AND is_default
"""


async def register_flat_rate(conn: psycopg.AsyncConnection[Any], provider: ProviderInfo,
                             utility: Utility, price: Decimal, valid_from: date) -> None:
    """A one-rate plan ``flat-<utility>`` of the provider's metered utility from
    ``valid_from``: its default for the service unless another plan (a tariff book's) is.
    Registering the same rate again changes nothing; another price for the same day is a
    ``BookConflict``, and a later day adds a version."""
    service = SERVICE_OF_UTILITY[utility]
    code = "flat-" + utility.value.replace("_", "-")
    cur = await conn.execute(_DEFAULT_CODE, (provider.id, service))
    row = await cur.fetchone()
    unit = {Utility.ELECTRICITY: Basis.KWH, Utility.HEAT: Basis.GCAL}.get(utility, Basis.M3)
    plan = TariffPlan(
        provider_id=provider.id, code=code, name="Flat rate", service=service, utility=utility,
        basis=unit, default=row is None or row[0] == code,
        versions=(TariffVersion(valid_from=valid_from, zones=FLAT, prices=((price,),)),))
    await load_book(conn, Book(provider=provider, plans=(plan,)))


async def read_benefits(conn: psycopg.AsyncConnection[Any],
                        provider: str | None = None) -> list[BenefitRule]:
    cur = await conn.execute(
        "SELECT provider_id, code, name, service, percent, norm, norm_basis FROM benefit_rules"
        " WHERE %(p)s::text IS NULL OR provider_id = %(p)s ORDER BY provider_id, code",
        {"p": provider})
    return [BenefitRule(provider_id=r[0], code=r[1], name=r[2], service=Service(r[3]),
                        percent=r[4], norm=r[5], norm_basis=Basis(r[6]))
            for r in await cur.fetchall()]
