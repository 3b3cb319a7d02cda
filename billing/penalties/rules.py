"""The penalty rules as data (DOMAIN.md §1): laws and their tiers per payer group, the law of
each service, moratoria, and the table of rates. Loaded from ``rules.toml`` and
``key_rates.csv`` beside this module, or from files an operator keeps (settings
``penalty_rules_file`` and ``penalty_rates_file``)."""

from __future__ import annotations

import csv
import tomllib
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Any

from meterline.errors import Invalid
from meterline.units import Service

HERE = Path(__file__).parent
RULES_FILE = HERE / "rules.toml"
RATES_FILE = HERE / "key_rates.csv"


class PayerGroup(StrEnum):
    """Who owes, which sets the penalty tiers (35-ФЗ art. 37 p. 2 and its twins)."""

    CITIZEN = "citizen"  # owners and users of premises
    HOUSING_ORG = "housing_org"  # УК, ТСЖ, ЖСК buying for communal services
    OTHER = "other"


@dataclass(frozen=True)
class Tier:
    """From ``first_day`` of delay on, 1/``per`` of the rate per day (``per`` 0: none)."""

    first_day: int
    per: int


@dataclass(frozen=True)
class Schedule:
    valid_from: date
    tiers: Mapping[PayerGroup, tuple[Tier, ...]]

    def tier(self, group: PayerGroup, day_of_delay: int) -> Tier:
        found = Tier(1, 0)
        for tier in self.tiers[group]:
            if tier.first_day <= day_of_delay:
                found = tier
        return found


@dataclass(frozen=True)
class Law:
    id: str
    title: str
    schedules: tuple[Schedule, ...]  # by valid_from

    def schedule_on(self, day: date) -> Schedule:
        current = [s for s in self.schedules if s.valid_from <= day]
        if not current:
            raise Invalid(f"penalty law {self.id} has no tiers in force on {day}")
        return current[-1]


class MoratoriumKind(StrEnum):
    NO_ACCRUAL = "no_accrual"  # no penalty accrues on its days
    RATE_CAP = "rate_cap"  # the rate is at most its cap on its days
    NO_RESTRICTION = "no_restriction"  # no service is restricted or suspended for debt


@dataclass(frozen=True)
class Moratorium:
    kind: MoratoriumKind
    start: date
    end: date  # inclusive
    source: str
    cap: Decimal | None = None
    laws: frozenset[str] | None = None  # None: every law

    def covers(self, day: date, law: str) -> bool:
        return self.start <= day <= self.end and (self.laws is None or law in self.laws)


@dataclass(frozen=True)
class RateChange:
    effective_from: date
    rate: Decimal  # percent per year
    kind: str  # refinancing | key


@dataclass(frozen=True)
class RateTable:
    """The rate penalties use on a day: the refinancing rate before ``key_rate_from``, the key
    rate from it on; each is the last decision in force on that day."""

    changes: tuple[RateChange, ...]
    key_rate_from: date

    def _series(self, day: date) -> list[RateChange]:
        kind = "key" if day >= self.key_rate_from else "refinancing"
        return [c for c in self.changes if c.kind == kind]

    def rate_on(self, day: date) -> RateChange:
        series = self._series(day)
        at = bisect_right([c.effective_from for c in series], day)
        if at == 0:
            raise Invalid(f"the penalty rate table starts after {day}: no rate in force then")
        return series[at - 1]

    @property
    def last_entry(self) -> date:
        return max(c.effective_from for c in self.changes)


@dataclass(frozen=True)
class PenaltyRules:
    laws: Mapping[str, Law]
    service_law: Mapping[Service, str]
    moratoria: tuple[Moratorium, ...]
    rates: RateTable

    def restrictions_barred(self, day: date) -> bool:
        """Whether a moratorium forbids restricting or suspending a service for debt."""
        return any(m.kind is MoratoriumKind.NO_RESTRICTION and m.start <= day <= m.end
                   for m in self.moratoria)

    def law_for(self, service: Service | str) -> Law:
        try:
            return self.laws[self.service_law[Service(service)]]
        except (KeyError, ValueError) as exc:
            raise Invalid(f"no penalty law is set for service {service}") from exc


def _decimal(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise Invalid(f"{where}: {text!r} is not a number") from exc
    if not value.is_finite() or value < 0:
        raise Invalid(f"{where}: {text!r} is not a rate")
    return value


def load_rates(path: Path, key_rate_from: date) -> RateTable:
    changes: list[RateChange] = []
    with path.open(encoding="utf-8", newline="") as file:
        lines = (line for line in file if line.strip() and not line.lstrip().startswith("#"))
        for n, row in enumerate(csv.DictReader(lines), start=2):
            where = f"{path.name} row {n}"
            try:
                day = date.fromisoformat(row["effective_from"].strip())
                kind = row["kind"].strip()
            except (KeyError, ValueError, AttributeError) as exc:
                raise Invalid(f"{where}: expected effective_from,rate,kind") from exc
            if kind not in ("refinancing", "key"):
                raise Invalid(f"{where}: kind must be refinancing or key, not {kind!r}")
            changes.append(RateChange(day, _decimal(row["rate"], where), kind))
    if not changes:
        raise Invalid(f"{path.name} has no rates")
    changes.sort(key=lambda c: (c.kind, c.effective_from))
    return RateTable(tuple(changes), key_rate_from)


def _tiers(raw: Sequence[Sequence[int]], where: str) -> tuple[Tier, ...]:
    tiers = tuple(Tier(int(first), int(per)) for first, per in raw)
    if not tiers or tiers[0].first_day != 1 or any(
        a.first_day >= b.first_day for a, b in pairwise(tiers)
    ):
        raise Invalid(f"{where}: tiers must start on day 1 and go up")
    return tiers


def _law(raw: Mapping[str, Any]) -> Law:
    schedules = []
    for s in raw["schedules"]:
        where = f"law {raw['id']} from {s['valid_from']}"
        tiers = {group: _tiers(s[group.value], f"{where}, {group}") for group in PayerGroup}
        schedules.append(Schedule(s["valid_from"], tiers))
    schedules.sort(key=lambda s: s.valid_from)
    return Law(raw["id"], raw.get("title", raw["id"]), tuple(schedules))


def _moratorium(raw: Mapping[str, Any]) -> Moratorium:
    kind = MoratoriumKind(raw["kind"])
    cap = _decimal(str(raw["cap"]), "moratorium cap") if "cap" in raw else None
    if kind is MoratoriumKind.RATE_CAP and cap is None:
        raise Invalid(f"rate_cap moratorium from {raw['from']} has no cap")
    laws = frozenset(raw["laws"]) if "laws" in raw else None
    return Moratorium(kind, raw["from"], raw["to"], raw.get("source", ""), cap, laws)


def load_rules(rules_file: Path | None = None, rates_file: Path | None = None) -> PenaltyRules:
    rules_file = rules_file or RULES_FILE
    try:
        raw = tomllib.loads(rules_file.read_text(encoding="utf-8"))
        laws = {law.id: law for law in map(_law, raw["laws"])}
        service_law = {Service(s): law for s, law in raw["service_law"].items()}
        moratoria = tuple(_moratorium(m) for m in raw.get("moratoria", ()))
        key_rate_from = raw["key_rate_from"]
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
        raise Invalid(f"{rules_file}: {exc}") from exc
    for service, law in service_law.items():
        if law not in laws:
            raise Invalid(f"{rules_file}: service {service} names unknown law {law}")
    rates = load_rates(rates_file or RATES_FILE, key_rate_from)
    return PenaltyRules(laws, service_law, moratoria, rates)
