"""The rows of the account files an operator imports, one model per kind of file.

Each model is one CSV row, checked on its own (formats, ranges, known services); what a row
refers to (an account, a provider, a house) is checked against the database when it is
imported. Column names are the field names; empty cells are missing values.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from meterline.contracts import AccountId, MeterId, ProviderId, Timestamp
from meterline.units import Register, Service, Unit, Utility

# The cumulative register a meter of each utility is read on, and its unit.
READ_REGISTER: dict[Utility, tuple[Register, Unit]] = {
    Utility.ELECTRICITY: (Register.ACTIVE_IMPORT, Unit.KWH),
    Utility.COLD_WATER: (Register.VOLUME, Unit.M3),
    Utility.HOT_WATER: (Register.VOLUME, Unit.M3),
    Utility.GAS: (Register.VOLUME, Unit.M3),
    Utility.HEAT: (Register.HEAT_ENERGY, Unit.GCAL),
}


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
RegionCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_-]{1,16}$")]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Els = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True,
                                       pattern=r"^[0-9A-ZА-Я]{10}$")]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    def key(self) -> tuple[object, ...]:
        """What identifies the row: two rows of one file with the same key are refused."""
        raise NotImplementedError


class ProviderRecord(Record):
    """A provider (поставщик, исполнитель) with what documents and payment QR codes show."""

    provider_id: ProviderId
    name: Annotated[str, StringConstraints(min_length=1, max_length=160)]
    inn: Annotated[str, StringConstraints(pattern=r"^[0-9]{10}([0-9]{2})?$")]
    kpp: Annotated[str, StringConstraints(pattern=r"^[0-9]{9}$")] | None = None
    bank_name: Annotated[str, StringConstraints(min_length=1, max_length=45)]
    bic: Annotated[str, StringConstraints(pattern=r"^[0-9]{9}$")]
    corr_account: Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")]
    settlement_account: Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")]
    address: Text | None = None
    phone: Text | None = None
    email: Text | None = None
    website: Text | None = None

    def key(self) -> tuple[object, ...]:
        return (self.provider_id,)


class AccountRecord(Record):
    """A personal account on its apartment, with what it is billed on."""

    account_id: AccountId
    els: Els | None = None
    holder_name: Text
    billing_mode: Literal["prepaid", "postpaid"] = "postpaid"
    region: RegionCode
    region_name: Text | None = None
    time_zone: TimeZone | None = None  # of the region, when the region is new
    city: Text
    street: Text
    house: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    apartment: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    area: Decimal = Field(gt=0, max_digits=10, decimal_places=2)
    residents: int = Field(ge=0, le=100)

    def key(self) -> tuple[object, ...]:
        return (self.account_id,)


class Validity(Record):
    """A row valid from a date (inclusive) until another (exclusive; none: still valid)."""

    valid_from: date
    valid_to: date | None = None

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Validity:
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        return self


class ServiceRecord(Validity):
    """A service a provider sells on an account, from a date (and until one, exclusive)."""

    account_id: AccountId
    service: Service
    provider_id: ProviderId

    def key(self) -> tuple[object, ...]:
        return (self.account_id, self.service, self.valid_from)


class MeterRecord(Record):
    """A meter of an account: read by people when it has no gateway, else polled by one."""

    meter_id: MeterId
    account_id: AccountId
    provider_id: ProviderId
    utility: Utility
    model: Text = "manual"
    gateway_id: MeterId | None = None
    installed_at: Timestamp
    installation_reading: Decimal = Field(ge=0, max_digits=20, decimal_places=6)
    # from this day its readings are not used (decree 354 p. 59(a)): verification due, or
    # out of order; changed by importing the meter again
    verification_due: date | None = None
    out_of_order_since: date | None = None

    def key(self) -> tuple[object, ...]:
        return (self.meter_id,)


class HouseMeterRecord(Record):
    """A house meter (общедомовой прибор учёта) of one utility."""

    meter_id: MeterId
    region: RegionCode
    city: Text
    street: Text
    house: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    utility: Utility
    installed_at: Timestamp

    def key(self) -> tuple[object, ...]:
        return (self.meter_id,)


class BenefitRecord(Validity):
    """A benefit: a share of one service's charge the account does not pay, for so many of
    its residents (``category``: the benefit rule's code)."""

    account_id: AccountId
    category: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]
    service: Service
    share: Decimal = Field(gt=0, le=1, max_digits=5, decimal_places=4)
    beneficiaries: int = Field(1, ge=1, le=100)  # residents the benefit is for

    def key(self) -> tuple[object, ...]:
        return (self.account_id, self.category, self.service, self.valid_from)


class NormRecord(Validity):
    """A consumption norm of a region (per resident, or per m²), per month."""

    region: RegionCode
    service: Service
    scope: Literal["individual", "common"]
    basis: Literal["resident", "m2"]
    quantity: Decimal = Field(ge=0, max_digits=14, decimal_places=6)
    unit: Unit

    def key(self) -> tuple[object, ...]:
        return (self.region, self.service, self.scope, self.valid_from)


class ReadingRecord(Record):
    """A reading of a meter (an account's or a house's) taken by a person."""

    meter_id: MeterId
    ts: Timestamp
    value: Decimal = Field(ge=0, max_digits=20, decimal_places=6)
    source: Literal["app", "web", "phone", "operator"] = "operator"

    def key(self) -> tuple[object, ...]:
        return (self.meter_id, self.ts)
