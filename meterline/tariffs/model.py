"""What a tariff is, as validated and immutable data (DOMAIN.md §4).

A provider's **book** holds its **plans** (e.g. household flat, two-zone, three-zone). A plan
prices one service on one **basis**: a metered unit (kWh, m³, Gcal), the area (m²) or the
registered residents, per month. A plan has **versions**, each valid from a date (a local date:
it takes effect at midnight in each account's own time zone) until the next version starts or
its own ``valid_to``. A version says:

- ``zones``: time-of-use windows on the wall clock (one ``all_day`` zone for a flat rate);
- ``bands``: monthly volume bands, as the upper limits of every band but the last
  (households from 2025: 3,900 and 6,000 kWh), or ``social_norm``: one limit that depends on
  the registered residents (decree 614: a price within the norm and one above it);
- ``prices``: the base (urban) price per unit for each zone and band, in roubles;
- ``groups``: coefficients of the other consumer groups (rural, electric stove) against the
  base price; a group's price is the base price times its coefficient, half-up to 6 places;
- ``standing_charge``: roubles per account per day; ``negative_limit``: how far a prepaid
  balance may go below zero (the prepaid policy reads it).

Money here is ``Decimal`` only; pricing turns prices into integer micro-roubles exactly.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from meterline.units import SERVICE_OF_UTILITY, Service, Unit, Utility

ALL_DAY = "all_day"
MICRO = Decimal("0.000001")

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
ZoneName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# a benefit's code is the category of the grants (account_benefits.category) that use it
BenefitCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]


class Basis(StrEnum):
    """What one unit of a plan's price is."""

    KWH = "kWh"
    M3 = "m3"
    GCAL = "Gcal"
    M2 = "m2"  # a square metre of the premises' area, per month
    RESIDENT = "resident"  # a registered resident, per month

    @property
    def unit(self) -> Unit | None:
        """The meter unit of a metered basis; None for area and residents."""
        return _METERED.get(self)


_METERED = {Basis.KWH: Unit.KWH, Basis.M3: Unit.M3, Basis.GCAL: Unit.GCAL}


class ConsumerGroup(StrEnum):
    """Household consumer groups of DOMAIN §4; ``urban`` pays the base price."""

    URBAN = "urban"
    RURAL = "rural"
    ELECTRIC_STOVE = "electric_stove"


UTILITY_OF_SERVICE: dict[Service, Utility] = {s: u for u, s in SERVICE_OF_UTILITY.items()}


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Zone(Frozen):
    name: ZoneName
    windows: tuple[str, ...] = Field(
        description="Local wall-clock windows, `HH:MM-HH:MM`; one may run past midnight.",
        examples=[("07:00-10:00", "17:00-21:00")],
    )


class TariffVersion(Frozen):
    valid_from: date = Field(description="First local day in force.")
    valid_to: date | None = Field(
        None, description="First local day no longer in force, when the version ends on its own "
        "(otherwise the next version's valid_from ends it).")
    zones: tuple[Zone, ...]
    bands: tuple[Decimal, ...] = Field(
        (), description="Upper limits of every monthly volume band but the last, in the "
        "plan's unit per month (3900, 6000: up to 3,900; 3,900 to 6,000; above 6,000).")
    social_norm: tuple[Decimal, ...] = Field(
        (), description="Social norm per month by registered residents (1, 2, 3 ... the last "
        "for more): one band within the norm, one above it.")
    groups: dict[ConsumerGroup, Decimal] = Field(
        default_factory=dict,
        description="Coefficients of consumer groups against the base (urban) price.")
    prices: tuple[tuple[Decimal, ...], ...] = Field(
        description="Base price per unit in roubles, [zone][band], zones in the order above.")
    standing_charge: Decimal = Field(Decimal(0), description="Roubles per account per day.")
    negative_limit: Decimal = Field(
        Decimal(0), description="Lowest balance a prepaid account may reach (0 or negative).")

    @property
    def band_count(self) -> int:
        return 2 if self.social_norm else len(self.bands) + 1

    def band_limits(self, residents: int | None = None) -> tuple[Decimal, ...]:
        """The upper limits of all bands but the last, for an account with ``residents``
        registered (only a social norm depends on them; none registered counts as one)."""
        if not self.social_norm:
            return self.bands
        people = max(residents or 1, 1)
        return (self.social_norm[min(people, len(self.social_norm)) - 1],)

    def coefficient(self, group: ConsumerGroup) -> Decimal:
        return self.groups.get(group, Decimal(1))

    def price(self, zone: int, band: int, group: ConsumerGroup = ConsumerGroup.URBAN) -> Decimal:
        """Price per unit for a zone, band and consumer group, exact to the micro-rouble."""
        base = self.prices[zone][band]
        return (base * self.coefficient(group)).quantize(MICRO, rounding=ROUND_HALF_UP)


class TariffPlan(Frozen):
    provider_id: Code
    code: Code
    name: str
    description: str = ""
    service: Service
    utility: Utility | None = Field(
        description="The metered utility priced; none for area, residents and derived volumes.")
    basis: Basis
    default: bool = Field(
        False, description="The plan of accounts that chose none, for its service.")
    derived_from: tuple[Utility, ...] = Field(
        (), description="Utilities whose metered volume this plan prices (sewerage: cold and "
        "hot water).")
    versions: tuple[TariffVersion, ...] = Field(description="In order of valid_from.")

    def ends(self, index: int) -> date | None:
        """The first day version ``index`` is no longer in force (None: open-ended)."""
        version = self.versions[index]
        if version.valid_to is not None:
            return version.valid_to
        return self.versions[index + 1].valid_from if index + 1 < len(self.versions) else None

    def version_on(self, day: date) -> int | None:
        """Index of the version in force on a local day, or None."""
        for index in range(len(self.versions) - 1, -1, -1):
            if self.versions[index].valid_from <= day:
                end = self.ends(index)
                return index if end is None or day < end else None
        return None


class BenefitRule(Frozen):
    """A benefit (льгота) on one service: ``percent`` of the charge of the beneficiaries' share,
    within ``norm`` units of ``norm_basis`` per beneficiary per month (area in m², or the
    service's metered volume)."""

    provider_id: Code
    code: BenefitCode
    name: str
    service: Service
    percent: Decimal = Field(gt=0, le=100)
    norm: Decimal = Field(gt=0)
    norm_basis: Basis


class ProviderInfo(Frozen):
    id: Code
    name: str
    inn: str | None = None


class Book(Frozen):
    """A provider's tariff book as loaded from a file."""

    provider: ProviderInfo
    plans: tuple[TariffPlan, ...]
    benefits: tuple[BenefitRule, ...] = ()
