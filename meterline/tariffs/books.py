"""A provider's tariff book as a readable TOML file, checked whole before anything is stored.

```toml
[provider]
id = "energosbyt"
name = "Energosbyt"

[[plans]]
code = "household-3zone"
name = "Households, three zones"
service = "electricity"
basis = "kWh"                 # kWh, m3, Gcal, m2 (area, per month), resident (per month)

[[plans.versions]]
valid_from = 2026-01-01       # a local date: midnight in each account's time zone
bands = [3900, 6000]          # or social_norm = [90, 140, 170] (by registered residents)
groups = { rural = 0.7, electric_stove = 0.7 }
standing_charge = 0           # roubles per account per day
negative_limit = -300         # how low a prepaid balance may go

[plans.versions.zones]
peak = ["07:00-10:00", "17:00-21:00"]
semi_peak = ["10:00-17:00", "21:00-23:00"]
night = ["23:00-07:00"]

[plans.versions.prices]       # per zone, one price per band; `price = 6.43` when flat
peak = [9.52, 11.10, 13.05]
semi_peak = [6.43, 7.50, 8.80]
night = [3.20, 3.73, 4.39]
```

Numbers are read as exact decimals (never through float). A file with anything wrong is
refused whole, with every problem named by where it is (``plans[1] household-3zone >
versions[0] 2026-01-01 > prices > peak``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meterline.errors import Invalid
from meterline.tariffs.model import (
    ALL_DAY,
    UTILITY_OF_SERVICE,
    Basis,
    BenefitCode,
    BenefitRule,
    Book,
    Code,
    ConsumerGroup,
    ProviderInfo,
    TariffPlan,
    TariffVersion,
    Zone,
    ZoneName,
)
from meterline.tariffs.zones import FLAT, zone_of_minute
from meterline.units import Service, Unit, Utility

EXAMPLES = Path(__file__).parent / "examples"  # the example books shipped for the demo

UNIT_OF_UTILITY: dict[Utility, Unit] = {
    Utility.ELECTRICITY: Unit.KWH,
    Utility.COLD_WATER: Unit.M3,
    Utility.HOT_WATER: Unit.M3,
    Utility.GAS: Unit.M3,
    Utility.HEAT: Unit.GCAL,
}

Roubles = Annotated[Decimal, Field(allow_inf_nan=False, max_digits=18, decimal_places=6)]
Price = Annotated[Decimal, Field(ge=0, allow_inf_nan=False, max_digits=18, decimal_places=6)]
Limit = Annotated[Decimal, Field(gt=0, allow_inf_nan=False, max_digits=20, decimal_places=6)]
Coefficient = Annotated[Decimal, Field(gt=0, le=10, allow_inf_nan=False, decimal_places=6)]


class BookError(Invalid):
    """A tariff book refused, with every problem found: (where, what)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {where}: {what}" for where, what in self.problems)
        super().__init__(f"the tariff book is refused ({len(self.problems)} problems):\n{lines}",
                         field=("book", self.problems[0][0]), code="tariff-book-invalid")


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Version(_File):
    valid_from: date
    valid_to: date | None = None
    zones: dict[ZoneName, list[str]] | None = None
    bands: list[Limit] | None = None
    social_norm: list[Limit] | None = None
    groups: dict[ConsumerGroup, Coefficient] = Field(default_factory=dict)
    price: Price | None = None
    prices: dict[ZoneName, list[Price]] | None = None
    standing_charge: Annotated[Roubles, Field(ge=0)] = Decimal(0)
    negative_limit: Annotated[Roubles, Field(le=0)] = Decimal(0)


class _Plan(_File):
    code: Code
    name: str = Field(min_length=1)
    description: str = ""
    service: Service
    basis: Basis
    default: bool = False
    derived_from: list[Utility] = Field(default_factory=list)
    versions: list[_Version] = Field(min_length=1)


class _Benefit(_File):
    code: BenefitCode
    name: str = Field(min_length=1)
    service: Service
    percent: Decimal = Field(gt=0, le=100, allow_inf_nan=False)
    norm: Limit
    norm_basis: Basis


class _Book(_File):
    provider: ProviderInfo
    plans: list[_Plan] = Field(default_factory=list)
    benefits: list[_Benefit] = Field(default_factory=list)


def _where(loc: Sequence[str | int], data: Any) -> str:
    """``("plans", 1, "versions", 0, "prices")`` -> ``plans[1] household-3zone > versions[0]
    2026-01-01 > prices``: indices named by the code or date found in the data."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int) and parts:
            label = ""
            if isinstance(node, list) and 0 <= key < len(node):
                node = node[key]
                if isinstance(node, Mapping):
                    label = str(node.get("code") or node.get("valid_from") or "")
            else:
                node = None
            parts[-1] += f"[{key}]" + (f" {label}" if label else "")
        else:
            node = node.get(key) if isinstance(node, Mapping) else None
            parts.append(str(key))
    return " > ".join(parts) or "book"


def parse_book(text: str) -> Book:
    """Read a book from TOML text; raise ``BookError`` naming every problem."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise BookError([("file", f"not valid TOML: {exc}")]) from exc
    try:
        raw = _Book.model_validate(data)
    except ValidationError as exc:
        raise BookError([(_where(e["loc"], data), e["msg"]) for e in exc.errors()]) from exc
    problems: list[tuple[str, str]] = []
    plans = []
    for i, plan in enumerate(raw.plans):
        where = _where(("plans", i), data)
        plans.append(_plan(raw.provider.id, plan, where, problems, data, i))
    _check_book(raw, data, problems)
    benefits = [_benefit(raw.provider.id, b, _where(("benefits", i), data), problems)
                for i, b in enumerate(raw.benefits)]
    if problems:
        raise BookError(problems)
    return Book(provider=raw.provider, plans=tuple(p for p in plans if p is not None),
                benefits=tuple(benefits))


def read_book(path: Path) -> Book:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BookError([("file", f"cannot read {path}: {exc.strerror}")]) from exc
    return parse_book(text)


def _check_book(raw: _Book, data: Any, problems: list[tuple[str, str]]) -> None:
    seen: dict[str, int] = {}
    defaults: dict[Service, str] = {}
    for i, plan in enumerate(raw.plans):
        where = _where(("plans", i), data)
        if plan.code in seen:
            problems.append((where, f"plan code {plan.code} is used twice"))
        seen[plan.code] = i
        if plan.default:
            if plan.service in defaults:
                problems.append((where, f"{defaults[plan.service]} is already the default "
                                        f"{plan.service} plan; one default per service"))
            defaults[plan.service] = plan.code
    codes = [b.code for b in raw.benefits]
    for i, code in enumerate(codes):
        if code in codes[:i]:
            problems.append((_where(("benefits", i), data), f"benefit code {code} is used twice"))


def _utility(plan: _Plan, where: str, problems: list[tuple[str, str]]) -> Utility | None:
    """The metered utility a plan prices, checking its basis and service agree."""
    unit = plan.basis.unit
    utility = UTILITY_OF_SERVICE.get(plan.service)
    if plan.derived_from:
        if unit is None:
            problems.append((f"{where} > derived_from", "only a metered basis can be derived "
                                                         "from other utilities' volume"))
        for source in plan.derived_from:
            if UNIT_OF_UTILITY[source] != unit:
                problems.append((f"{where} > derived_from",
                                 f"{source} is metered in {UNIT_OF_UTILITY[source]}, "
                                 f"not {plan.basis}"))
        return None
    if unit is None:
        return None
    if utility is None:
        problems.append((f"{where} > basis", f"{plan.service} is not metered: price it per m2 "
                                             "or resident, or name derived_from utilities"))
        return None
    if UNIT_OF_UTILITY[utility] != unit:
        problems.append((f"{where} > basis",
                         f"{plan.service} is metered in {UNIT_OF_UTILITY[utility]}, "
                         f"not {plan.basis}"))
    return utility


def _plan(provider_id: str, plan: _Plan, where: str, problems: list[tuple[str, str]],
          data: Any, index: int) -> TariffPlan | None:
    before = len(problems)
    utility = _utility(plan, where, problems)
    versions = [
        _version(plan, v, _where(("plans", index, "versions", k), data), problems)
        for k, v in enumerate(plan.versions)
    ]
    for k in range(1, len(plan.versions)):
        previous, this = plan.versions[k - 1], plan.versions[k]
        at = _where(("plans", index, "versions", k, "valid_from"), data)
        if this.valid_from <= previous.valid_from:
            problems.append((at, "versions must be in order of valid_from, each later than "
                                 "the one before"))
        elif previous.valid_to is not None and this.valid_from < previous.valid_to:
            problems.append((at, f"overlaps the version before, valid to {previous.valid_to}"))
    if len(problems) > before:
        return None
    return TariffPlan(
        provider_id=provider_id, code=plan.code, name=plan.name, description=plan.description,
        service=plan.service, utility=utility, basis=plan.basis, default=plan.default,
        derived_from=tuple(plan.derived_from),
        versions=tuple(v for v in versions if v is not None),
    )


def _version(plan: _Plan, v: _Version, where: str,
             problems: list[tuple[str, str]]) -> TariffVersion | None:
    before = len(problems)
    metered = plan.basis.unit is not None
    if v.valid_to is not None and v.valid_to <= v.valid_from:
        problems.append((f"{where} > valid_to", "must be later than valid_from"))
    zones = FLAT
    if v.zones is not None:
        if not metered:
            problems.append((f"{where} > zones", f"a plan per {plan.basis} has no time zones"))
        zones = tuple(Zone(name=name, windows=tuple(w)) for name, w in v.zones.items())
        try:
            zone_of_minute(zones)
        except ValueError as exc:
            problems.append((f"{where} > zones", str(exc)))
    if (v.bands or v.social_norm) and not metered:
        problems.append((where, f"a plan per {plan.basis} has no volume bands"))
    if v.bands and v.social_norm:
        problems.append((where, "bands and social_norm exclude each other"))
    if v.bands and any(b <= a for a, b in zip(v.bands, v.bands[1:], strict=False)):
        problems.append((f"{where} > bands", "band limits must increase"))
    bands = 2 if v.social_norm else len(v.bands or ()) + 1
    if ConsumerGroup.URBAN in v.groups:
        problems.append((f"{where} > groups > urban",
                         "urban pays the base price; list only the other groups"))
    names = [z.name for z in zones]
    prices: dict[str, list[Decimal]] = {}
    if (v.price is None) == (v.prices is None):
        problems.append((where, "give either price (one flat price) or prices (per zone)"))
    elif v.price is not None:
        if names != [ALL_DAY] or bands != 1:
            problems.append((f"{where} > price", "one price for zones or bands: use prices, "
                                                 "a list per zone with one price per band"))
        prices = {ALL_DAY: [v.price]}
    else:
        prices = v.prices or {}
        if sorted(prices) != sorted(names):
            problems.append((f"{where} > prices", f"prices are for zones {', '.join(prices)}; "
                                                  f"the zones are {', '.join(names)}"))
        for name, row in prices.items():
            if len(row) != bands:
                problems.append((f"{where} > prices > {name}",
                                 f"{len(row)} prices for {bands} bands"))
    if len(problems) > before:
        return None
    return TariffVersion(
        valid_from=v.valid_from, valid_to=v.valid_to, zones=zones, bands=tuple(v.bands or ()),
        social_norm=tuple(v.social_norm or ()), groups=dict(v.groups),
        prices=tuple(tuple(prices[name]) for name in names),
        standing_charge=v.standing_charge, negative_limit=v.negative_limit,
    )


def _benefit(provider_id: str, b: _Benefit, where: str,
             problems: list[tuple[str, str]]) -> BenefitRule:
    utility = UTILITY_OF_SERVICE.get(b.service)
    allowed = {Basis.M2}
    if utility is not None:
        allowed.add(Basis(UNIT_OF_UTILITY[utility].value))
    elif b.service is Service.SEWERAGE:
        allowed.add(Basis.M3)
    if b.norm_basis not in allowed:
        problems.append((f"{where} > norm_basis",
                         f"a norm of {b.service} is in {' or '.join(sorted(allowed))}, "
                         f"not {b.norm_basis}"))
    return BenefitRule(provider_id=provider_id, code=b.code, name=b.name, service=b.service,
                       percent=b.percent, norm=b.norm, norm_basis=b.norm_basis)
