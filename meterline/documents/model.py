"""The single payment document (ЕПД, order 43/пр of the Ministry of Construction, 2018) as
data: what every renderer and export shows, assembled from the bill run and the ledger.

Money here is what the document shows: roubles with kopecks (the ledger keeps more
precision; the bill run rounds each line half-up once, and the totals are sums of the lines
shown, so a document always adds up). Sections (DOMAIN.md §5): 1 payer and provider, 2
payment details for each payee, 3 the calculation of charges, 4 reference information,
5 instalments and deferrals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from meterline.units import Service

ZERO = Decimal("0.00")

SERVICE_NAMES: dict[Service, str] = {
    Service.MAINTENANCE: "Содержание жилого помещения",
    Service.CAPITAL_REPAIR: "Взнос на капитальный ремонт",
    Service.COLD_WATER: "Холодное водоснабжение",
    Service.HOT_WATER: "Горячее водоснабжение",
    Service.SEWERAGE: "Водоотведение",
    Service.HEATING: "Отопление",
    Service.ELECTRICITY: "Электроснабжение",
    Service.GAS: "Газоснабжение",
    Service.WASTE: "Обращение с ТКО",
}

MONTHS = ("январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь",
          "октябрь", "ноябрь", "декабрь")


def period_name(period: date) -> str:
    """``2026-01-01`` -> ``январь 2026``."""
    return f"{MONTHS[period.month - 1]} {period.year}"


@dataclass(frozen=True)
class Payee:
    """A provider the payer pays through this document, with its bank details."""

    provider_id: str
    name: str
    inn: str
    kpp: str | None
    bank_name: str
    bic: str
    corr_account: str
    settlement_account: str
    address: str | None = None
    phone: str | None = None
    email: str | None = None
    website: str | None = None


ZONE_NAMES = {"day": "день", "night": "ночь", "peak": "пик", "semi_peak": "полупик",
              "all_day": "круглосуточно"}


@dataclass(frozen=True)
class LinePart:
    """A part of a line priced at one price of its plan: a time-of-use zone, a monthly volume
    band (0 = the first), or the days of one tariff version."""

    zone: str
    band: int
    volume: Decimal
    tariff: Decimal
    charged: Decimal

    @property
    def name(self) -> str:
        zone = "" if self.zone == "all_day" else f"зона «{ZONE_NAMES.get(self.zone, self.zone)}»"
        band = f"диапазон {self.band + 1}" if self.band else ""
        return ", ".join(x for x in (zone, band) if x) or "по тарифу"


@dataclass(frozen=True)
class Line:
    """One line of the calculation (section 3): a service, individual or common-property."""

    service: Service
    provider_id: str
    common: bool = False  # consumption for common property (КР на СОИ): a line of its own
    unit: str = ""  # what the volume is in: m3, kWh, Gcal, m2, person
    volume: Decimal | None = None
    tariff: Decimal | None = None
    charged: Decimal = ZERO
    recalculation: Decimal = ZERO
    recalculation_reason: str = ""
    benefit: Decimal = ZERO  # shown positive; it lowers the total
    method: str = ""  # how the volume was found: meter, average, norm, house meter
    debt: Decimal = ZERO  # of the service, for earlier periods (the ledger's subscriber book)
    penalties: Decimal = ZERO  # of the service, accrued to the period
    parts: tuple[LinePart, ...] = ()  # when more than one price made the charge

    @property
    def total(self) -> Decimal:
        return self.charged + self.recalculation - self.benefit

    @property
    def name(self) -> str:
        base = SERVICE_NAMES[self.service]
        return f"{base} (СОИ)" if self.common else base


@dataclass(frozen=True)
class PayeeTotal:
    """What the payer owes one payee: this period's lines, then what came before."""

    payee: Payee
    charged: Decimal  # sum of the payee's line totals
    debt: Decimal = ZERO  # brought forward from earlier periods (negative: an advance)
    paid: Decimal = ZERO  # payments received in the period
    penalties: Decimal = ZERO
    instalment: Decimal = ZERO  # the instalment due this period

    @property
    def to_pay(self) -> Decimal:
        return max(ZERO, self.charged + self.debt - self.paid + self.penalties + self.instalment)


@dataclass(frozen=True)
class MeterReading:
    """Reference (section 4): an individual meter's readings used for the period."""

    meter_id: str
    service: Service
    unit: str
    previous: Decimal | None
    current: Decimal | None
    consumption: Decimal
    method: str  # meter, average, norm
    source: str = ""  # gateway, app, web, phone, operator


@dataclass(frozen=True)
class CommonVolume:
    """Reference (section 4): a house meter's volume and how the common part was found."""

    service: Service
    unit: str
    house_volume: Decimal
    individual_volume: Decimal
    common_volume: Decimal  # house minus individual, before the cap
    norm_cap: Decimal  # the house's common-property norm volume


@dataclass(frozen=True)
class Instalment:
    """Section 5: an instalment or deferral agreement."""

    provider_id: str
    description: str
    remaining: Decimal
    due_this_period: Decimal


@dataclass(frozen=True)
class PaymentDocument:
    account_id: str
    els: str | None
    period: date  # first day of the month billed
    payer_name: str
    address: str
    area: Decimal | None
    residents: int
    issuer: Payee  # who issues the document (the management company, or a settlement centre)
    lines: tuple[Line, ...]
    payees: tuple[PayeeTotal, ...]
    readings: tuple[MeterReading, ...] = ()
    common_volumes: tuple[CommonVolume, ...] = ()
    norms: tuple[tuple[Service, str, Decimal, str], ...] = ()  # service, scope, quantity, unit
    instalments: tuple[Instalment, ...] = ()
    issued_on: date | None = None
    due_on: date | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def document_id(self) -> str:
        """ИПД (payment document identifier of the state system): ЕЛС, month and year, and
        a document number within the period (one document a period here: 001)."""
        base = self.els or self.account_id
        return f"{base}-{self.period:%m%y}-001"

    @property
    def housing_id(self) -> str:
        """ИЖКУ (identifier of housing and utility services): ЕЛС and the premises index
        (one premises per account here: 01)."""
        base = self.els or self.account_id
        return f"{base}-01"

    @property
    def to_pay(self) -> Decimal:
        return sum((p.to_pay for p in self.payees), ZERO)

    def lines_of(self, provider_id: str) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.provider_id == provider_id)
