"""The bill run's rules (DOMAIN.md §3), each written from the rule on a house built for it.

Prices of the test town's tariff books (billing.accounts.town.PRICES): cold water 52.30/m³,
hot water 245.60/m³, sewerage 41.80/m³, electricity 6.83/kWh, heating 2930.50/Gcal,
maintenance 34.20/m², capital repair 18.90/m², waste 165.40/resident. Norms: cold water 6.935
m³ a resident, common-property cold water 0.03 m³ per m² of common area, heating 0.0156 Gcal
per m².
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from billing.billrun.run import bill
from meterline.bill_runs import Selection
from meterline.documents.assemble import payment_document
from meterline.errors import Conflict, Invalid
from meterline.fleet import Provider
from meterline.tariffs.benefit_entries import book_benefits
from meterline.tariffs.choices import assign_plan
from meterline.tariffs.model import ConsumerGroup
from meterline.tariffs.store import load_book
from meterline.units import Service
from tests.factories import (
    Housing,
    grant_benefit,
    house_meter,
    housing,
    reading,
    tariff_book,
)

D = Decimal
Lines = dict[tuple[str, str, bool], dict[str, Any]]


async def bill_month(conn: psycopg.AsyncConnection[Any], house: Housing, month: int,
                     **selection: Any) -> Lines:
    """Bill the house's region for month ``month`` of 2026; its lines afterwards."""
    await bill(conn, date(2026, month, 1), Selection(region=house.region, **selection),
               "test")
    return await lines_of(conn, house, month)


async def lines_of(conn: psycopg.AsyncConnection[Any], house: Housing, month: int) -> Lines:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    await cur.execute("""
        SELECT * FROM bill_lines WHERE period = %s AND account_id = ANY(%s)""",
        (date(2026, month, 1), house.accounts))
    return {(r["account_id"], r["service"], r["common"]): r for r in await cur.fetchall()}


async def test_per_square_metre_and_per_resident_lines(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("54.3", 3)], services=(
        Service.MAINTENANCE, Service.CAPITAL_REPAIR, Service.WASTE), metered=())
    (flat,) = house.accounts
    lines = await bill_month(conn, house, 1)
    assert {k[1]: (r["volume"], r["tariff"], r["charged"], r["method"])
            for k, r in lines.items()} == {
        "maintenance": (D("54.3"), D("34.2"), D("1857.06"), "area"),
        "capital_repair": (D("54.3"), D("18.9"), D("1026.27"), "area"),
        "waste": (D("3"), D("165.4"), D("496.20"), "residents"),
    }
    assert lines[(flat, "maintenance", False)]["provider_id"] == house.providers[
        Service.MAINTENANCE]


async def test_metered_water_and_sewerage_as_cold_plus_hot(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(
        Service.COLD_WATER, Service.HOT_WATER, Service.SEWERAGE))
    (flat,) = house.accounts
    await reading(conn, house.meter(flat, Service.COLD_WATER), "2026-01-20T10:00+03:00", "5.5")
    await reading(conn, house.meter(flat, Service.HOT_WATER), "2026-01-20T10:00+03:00", "2")
    lines = await bill_month(conn, house, 1)
    cold, hot = lines[(flat, "cold_water", False)], lines[(flat, "hot_water", False)]
    assert (cold["volume"], cold["charged"], cold["method"]) == (D("5.5"), D("287.65"), "meter")
    assert (hot["volume"], hot["charged"]) == (D("2"), D("491.20"))
    sewerage = lines[(flat, "sewerage", False)]
    assert (sewerage["volume"], sewerage["charged"]) == (D("7.5"), D("313.50"))


async def test_a_reading_after_the_cutoff_day_counts_for_the_next_month(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.COLD_WATER,))
    (flat,) = house.accounts
    meter = house.meter(flat, Service.COLD_WATER)
    await reading(conn, meter, "2026-01-25T23:00+03:00", "4")  # the 25th: January
    await reading(conn, meter, "2026-01-26T09:00+03:00", "6")  # the 26th: February
    assert (await bill_month(conn, house, 1))[(flat, "cold_water", False)]["volume"] == D("4")
    assert (await bill_month(conn, house, 2))[(flat, "cold_water", False)]["volume"] == D("2")


async def test_missing_readings_average_three_times_then_norm_then_reconciliation(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.COLD_WATER,))
    (flat,) = house.accounts
    meter = house.meter(flat, Service.COLD_WATER)
    for month, value in ((1, "10"), (2, "20"), (3, "30"), (4, "40")):
        await reading(conn, meter, f"2026-{month:02d}-20T10:00+03:00", value)
    methods = []
    for month in range(1, 9):
        line = (await bill_month(conn, house, month))[(flat, "cold_water", False)]
        methods.append((line["method"], line["volume"]))
    # four months of readings since installation (December): 40 / 4 = 10 a month, for at
    # most three periods; then the norm: 6.935 m³ x 2 residents
    assert methods == [("meter", D("10"))] * 4 + [("average", D("10"))] * 3 + [
        ("norm", D("13.87"))]

    await reading(conn, meter, "2026-09-18T10:00+03:00", "95")
    line = (await bill_month(conn, house, 9))[(flat, "cold_water", False)]
    # real consumption since April: 95 - 40 = 55; substitution billed 10 + 10 + 10 + 13.87
    assert line["volume"] == 0 and line["charged"] == 0
    assert line["recalculation"] == D("582.10")  # (55 - 43.87) x 52.30 = 582.099
    assert line["recalculation_reason"] == (
        "показания от 18.09.2026: расход по счётчику 55.000 минус 43.870, "
        "начисленные без показаний")
    # and then back to plain readings
    await reading(conn, meter, "2026-10-20T10:00+03:00", "101")
    line = (await bill_month(conn, house, 10))[(flat, "cold_water", False)]
    assert (line["method"], line["volume"], line["recalculation"]) == ("meter", D("6"), 0)


async def test_a_reconciliation_can_credit(conn: psycopg.AsyncConnection[Any]) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.COLD_WATER,))
    (flat,) = house.accounts
    meter = house.meter(flat, Service.COLD_WATER)
    for month, value in ((1, "10"), (2, "20"), (3, "30")):
        await reading(conn, meter, f"2026-{month:02d}-20T10:00+03:00", value)
    for month in range(1, 5):
        await bill_month(conn, house, month)  # April: average 30 / 3 = 10
    await reading(conn, meter, "2026-05-20T10:00+03:00", "32")
    line = (await bill_month(conn, house, 5))[(flat, "cold_water", False)]
    assert line["recalculation"] == D("-418.40")  # (2 - 10) x 52.30


async def test_a_young_meter_without_three_months_of_readings_goes_to_the_norm(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 3)], services=(Service.COLD_WATER,))
    (flat,) = house.accounts
    await reading(conn, house.meter(flat, Service.COLD_WATER), "2026-01-20T10:00+03:00", "7")
    await bill_month(conn, house, 1)
    line = (await bill_month(conn, house, 2))[(flat, "cold_water", False)]
    assert (line["method"], line["volume"]) == ("norm", D("20.805"))  # 6.935 x 3


async def test_a_service_without_a_meter_is_billed_by_the_norm(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.COLD_WATER,), metered=())
    (flat,) = house.accounts
    line = (await bill_month(conn, house, 1))[(flat, "cold_water", False)]
    assert (line["method"], line["volume"], line["charged"]) == ("norm", D("13.87"),
                                                                 D("725.40"))


@pytest.mark.parametrize(("house_volume", "common"), [
    ("9", ("0.9375", "0.5625")),    # 9 - 7.5 = 1.5 under the cap, split 50 : 30
    ("17.5", ("1.875", "1.125")),   # 17.5 - 7.5 = 10, capped at 0.03 x 100 m² = 3
    ("7", ("0", "0")),              # the house meter under the apartments': nothing
])
async def test_common_property_is_house_minus_apartments_capped_at_the_norm_split_by_area(
    conn: psycopg.AsyncConnection[Any], house_volume: str, common: tuple[str, str],
) -> None:
    house = await housing(conn, [("50", 2), ("30", 1)], services=(Service.COLD_WATER,),
                          common_area="100")
    one, two = house.accounts
    await reading(conn, house.meter(one, Service.COLD_WATER), "2026-01-20T10:00+03:00", "5")
    await reading(conn, house.meter(two, Service.COLD_WATER), "2026-01-20T10:00+03:00", "2.5")
    await house_meter(conn, house, "cold_water", [("2026-01-01T00:00+03:00", "100"),
                                                  ("2026-02-01T00:00+03:00",
                                                   str(100 + D(house_volume)))])
    lines = await bill_month(conn, house, 1)
    assert (lines[(one, "cold_water", True)]["volume"],
            lines[(two, "cold_water", True)]["volume"]) == (D(common[0]), D(common[1]))
    assert lines[(one, "cold_water", True)]["method"] == "house_meter"
    assert lines[(one, "cold_water", False)]["volume"] == D("5")  # individual apart


async def test_common_property_without_a_house_meter_is_the_norm_volume(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2), ("30", 1)], services=(Service.COLD_WATER,))
    one, _ = house.accounts
    line = (await bill_month(conn, house, 1))[(one, "cold_water", True)]
    assert (line["method"], line["volume"], line["charged"]) == ("norm", D("1.875"),
                                                                 D("98.06"))


async def test_heating_splits_the_house_meter_by_area_or_takes_the_norm_by_area(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    metered = await housing(conn, [("50", 2), ("30", 1)], services=(Service.HEATING,),
                            metered=())
    await house_meter(conn, metered, "heat", [("2026-01-01T00:00+03:00", "10"),
                                              ("2026-02-01T00:00+03:00", "18")])
    lines = await bill_month(conn, metered, 1)
    one, two = metered.accounts
    assert lines[(one, "heating", False)]["volume"] == D("5")  # 8 Gcal x 50 / 80
    assert lines[(two, "heating", False)]["volume"] == D("3")
    assert lines[(one, "heating", False)]["charged"] == D("14652.50")

    unmetered = await housing(conn, [("50", 2)], services=(Service.HEATING,), metered=())
    (flat,) = unmetered.accounts
    line = (await bill_month(conn, unmetered, 1))[(flat, "heating", False)]
    assert (line["method"], line["volume"], line["charged"]) == ("norm", D("0.78"),
                                                                 D("2285.79"))


async def test_billing_again_changes_nothing_and_a_late_reading_rebills_only_its_account(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2), ("30", 1)], services=(
        Service.COLD_WATER, Service.MAINTENANCE))
    one, two = house.accounts
    first = await bill_month(conn, house, 1)
    run = await bill(conn, date(2026, 1, 1), Selection(region=house.region), "again")
    cur = await conn.execute("SELECT accounts, changed FROM bill_runs WHERE id = %s", (run.id,))
    assert await cur.fetchone() == (2, 0)
    assert await lines_of(conn, house, 1) == first

    await reading(conn, house.meter(two, Service.COLD_WATER), "2026-01-24T10:00+03:00", "3")
    run = await bill(conn, date(2026, 1, 1), Selection(region=house.region), "late reading")
    cur = await conn.execute("SELECT changed FROM bill_runs WHERE id = %s", (run.id,))
    assert await cur.fetchone() == (1,)
    again = await lines_of(conn, house, 1)
    assert again[(two, "cold_water", False)]["volume"] == D("3")
    assert again[(two, "cold_water", False)]["run_id"] == run.id
    assert {k: v for k, v in again.items() if k[0] == one} == {
        k: v for k, v in first.items() if k[0] == one}


async def test_a_selection_by_account_or_provider_bills_only_that(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2), ("30", 1)], services=(
        Service.MAINTENANCE, Service.WASTE), metered=())
    one, _ = house.accounts
    lines = await bill_month(conn, house, 1, accounts=(one,),
                             provider=house.providers[Service.WASTE])
    assert set(lines) == {(one, "waste", False)}


async def test_a_run_refuses_services_without_a_price(conn: psycopg.AsyncConnection[Any]) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.GAS,), metered=())
    await conn.execute("UPDATE tariff_plans SET is_default = false WHERE provider_id = %s",
                       (house.providers[Service.GAS],))
    with pytest.raises(Invalid, match=f"no price in force on 2026-01-01: gas of "
                                      f"{house.providers[Service.GAS]}"):
        await bill_month(conn, house, 1)


async def test_one_run_of_a_period_at_a_time(conn: psycopg.AsyncConnection[Any],
                                             pg_url: str) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
        await other.execute("SELECT pg_advisory_lock(%s, %s)", (0x62696C6C, 2026 * 12 + 11))
        with pytest.raises(Conflict, match="a bill run of 2026-11 is running"):
            await bill_month(conn, house, 11)


async def test_a_service_metered_behind_a_gateway_is_left_to_rating(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.ELECTRICITY, Service.WASTE),
                          metered=())
    (flat,) = house.accounts
    await conn.execute("""
        INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id)
        VALUES (%s, %s, %s, 'electricity', 'SDM120', 'gw-1')""",
        (f"{flat}-smart", flat, house.providers[Service.ELECTRICITY]))
    lines = await bill_month(conn, house, 1)
    # rating charges the apartment's electricity; common property's is the bill run's
    assert set(lines) == {(flat, "waste", False), (flat, "electricity", True)}


async def test_benefits_are_the_tariffs_benefits_jobs_and_documents_show_them(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("54", 3)], services=(Service.MAINTENANCE,), metered=())
    (flat,) = house.accounts
    await grant_benefit(conn, flat, "veteran_maintenance", "maintenance", date(2026, 1, 1))
    line = (await bill_month(conn, house, 1))[(flat, "maintenance", False)]
    assert (line["charged"], line["benefit"]) == (D("1846.80"), 0)  # 54 m² x 34.20
    await book_benefits(conn, date(2026, 1, 1))
    doc = await payment_document(conn, date(2026, 1, 1), flat)
    (maintenance,) = doc.lines
    # the town's rule: 50 % within 18 m² a beneficiary; 54 m² / 3 = 18 m² each
    assert (maintenance.benefit, maintenance.total) == (D("307.80"), D("1539.00"))
    assert doc.to_pay == D("1539.00")


# --- prices of the tariff books (meterline.tariffs) -----------------------------------------

async def test_a_meter_read_by_people_on_a_zoned_plan_is_priced_by_zone_as_rating_would(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.ELECTRICITY,),
                          metered=(Service.ELECTRICITY,))
    (flat,) = house.accounts
    seller = house.providers[Service.ELECTRICITY]
    await load_book(conn, tariff_book("""
[[plans]]
code = "day-night"
name = "Day and night"
service = "electricity"
basis = "kWh"

  [[plans.versions]]
  valid_from = 2026-01-01
  zones = { day = ["07:00-23:00"], night = ["23:00-07:00"] }
  prices = { day = [7.38], night = [2.85] }
""", Provider(seller, "Энергосбыт")))
    await assign_plan(conn, flat, seller, "day-night", date(2026, 1, 1))
    await reading(conn, house.meter(flat, Service.ELECTRICITY), "2026-01-20T10:00+03:00", "300")
    line = (await bill_month(conn, house, 1))[(flat, "electricity", False)]
    # 300 kWh over January at a steady rate: 16 hours a day are day, 8 night
    assert (line["volume"], line["tariff"], line["charged"]) == (D("300"), None, D("1761.00"))
    assert line["parts"] == [
        {"zone": "day", "band": 0, "volume": "200", "tariff": "7.38", "charged": "1476.00"},
        {"zone": "night", "band": 0, "volume": "100", "tariff": "2.85", "charged": "285.00"}]
    assert line["tariff_ref"] == "day-night@2026-01-01"
    doc = await payment_document(conn, date(2026, 1, 1), flat)
    (individual,) = [x for x in doc.lines if not x.common]
    assert [(p.zone, p.volume, p.charged) for p in individual.parts] == [
        ("day", D("200"), D("1476.00")), ("night", D("100"), D("285.00"))]


async def test_monthly_volume_bands_and_a_version_from_mid_month_split_a_line(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.ELECTRICITY, Service.MAINTENANCE),
                          metered=(Service.ELECTRICITY,))
    (flat,) = house.accounts
    power, uk = house.providers[Service.ELECTRICITY], house.providers[Service.MAINTENANCE]
    await load_book(conn, tariff_book("""
[[plans]]
code = "tiers"
name = "Tiers"
service = "electricity"
basis = "kWh"

  [[plans.versions]]
  valid_from = 2026-01-01
  bands = [100]
  groups = { rural = 0.7 }
  prices = { all_day = [5.00, 10.00] }
""", Provider(power, "Энергосбыт")))
    await load_book(conn, tariff_book("""
[[plans]]
code = "maintenance"
name = "Содержание жилого помещения"
service = "maintenance"
basis = "m2"
default = true

  [[plans.versions]]
  valid_from = 2026-01-01
  price = 34.20

  [[plans.versions]]
  valid_from = 2026-01-16
  price = 40.00
""", Provider(uk, "УК")))
    await assign_plan(conn, flat, power, "tiers", date(2026, 1, 1), ConsumerGroup.RURAL)
    await reading(conn, house.meter(flat, Service.ELECTRICITY), "2026-01-20T10:00+03:00", "300")
    lines = await bill_month(conn, house, 1)
    power_line = lines[(flat, "electricity", False)]
    # rural: 0.7 of the base; the first 100 kWh at 3.50, the next 200 at 7.00
    assert (power_line["charged"], power_line["tariff_ref"]) == (D("1750.00"),
                                                                 "tiers@2026-01-01/rural")
    assert [(p["band"], p["volume"], p["charged"]) for p in power_line["parts"]] == [
        (0, "100", "350.00"), (1, "200", "1400.00")]
    # 50 m² at 34.20 for 15 days of 31, at 40.00 for 16
    maintenance = lines[(flat, "maintenance", False)]
    assert maintenance["charged"] == D("827.42") + D("1032.26")
    assert [p["tariff"] for p in maintenance["parts"]] == ["34.2", "40"]


async def test_heating_on_a_plan_per_square_metre_is_its_area(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.HEATING,), metered=())
    (flat,) = house.accounts
    heat = house.providers[Service.HEATING]
    await load_book(conn, tariff_book("""
[[plans]]
code = "heating-by-area"
name = "Heating per m2"
service = "heating"
basis = "m2"

  [[plans.versions]]
  valid_from = 2025-07-01
  price = 42.30
""", Provider(heat, "Теплосеть")))
    await assign_plan(conn, flat, heat, "heating-by-area", date(2026, 1, 1))
    line = (await bill_month(conn, house, 1))[(flat, "heating", False)]
    assert (line["unit"], line["volume"], line["tariff"], line["charged"], line["method"]) == (
        "m2", D("50"), D("42.3"), D("2115.00"), "area")
