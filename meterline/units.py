"""Utilities, their units, and the register codes meters report."""

from __future__ import annotations

from enum import StrEnum


class Utility(StrEnum):
    """What a meter measures and a tariff prices. Sewerage is not metered: the bill run derives
    it from cold and hot water."""

    ELECTRICITY = "electricity"
    COLD_WATER = "cold_water"
    HOT_WATER = "hot_water"
    GAS = "gas"
    HEAT = "heat"


class Unit(StrEnum):
    KWH = "kWh"
    M3 = "m3"
    GCAL = "Gcal"


class Register(StrEnum):
    """Cumulative registers a meter reports; each has one unit."""

    ACTIVE_IMPORT = "active_import"  # total import active energy, kWh
    VOLUME = "volume"  # total volume, m3 (water, gas)
    HEAT_ENERGY = "heat_energy"  # total heat energy, Gcal


REGISTER_UNITS: dict[Register, Unit] = {
    Register.ACTIVE_IMPORT: Unit.KWH,
    Register.VOLUME: Unit.M3,
    Register.HEAT_ENERGY: Unit.GCAL,
}


class Service(StrEnum):
    """What a provider sells on a personal account and a bill shows as a line; ledger postings
    carry it. Metered utilities are services, and so are sewerage (derived from water), waste
    removal (per resident), building maintenance and capital repair (per m²)."""

    ELECTRICITY = "electricity"
    COLD_WATER = "cold_water"
    HOT_WATER = "hot_water"
    SEWERAGE = "sewerage"
    GAS = "gas"
    HEATING = "heating"
    WASTE = "waste"
    MAINTENANCE = "maintenance"
    CAPITAL_REPAIR = "capital_repair"


SERVICE_OF_UTILITY: dict[Utility, Service] = {
    Utility.ELECTRICITY: Service.ELECTRICITY,
    Utility.COLD_WATER: Service.COLD_WATER,
    Utility.HOT_WATER: Service.HOT_WATER,
    Utility.GAS: Service.GAS,
    Utility.HEAT: Service.HEATING,
}
