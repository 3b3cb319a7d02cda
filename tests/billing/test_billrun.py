"""The bill run's rules (DOMAIN.md §3), each written from the rule on a house built for it.

Prices of the test town's tariff books (billing.accounts.town.PRICES): cold water 52.30/m³,
hot water 245.60/m³, sewerage 41.80/m³, electricity 6.83/kWh, heating 2930.50/Gcal,
maintenance 34.20/m², capital repair 18.90/m², waste 165.40/resident. Norms: cold water 6.935
m³ a resident, common-property cold water 0.03 m³ per m² of common area, heating 0.0156 Gcal
per m².
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from billing.billrun.run import bill
from billing.documents.exports import gis_document
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
    charge,
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


async def test_each_provider_has_its_own_submission_day(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.COLD_WATER, Service.HOT_WATER))
    (flat,) = house.accounts
    await conn.execute("UPDATE providers SET reading_submission_day = 20 WHERE id = %s",
                       (house.providers[Service.COLD_WATER],))
    await conn.execute("UPDATE providers SET reading_submission_day = 31 WHERE id = %s",
                       (house.providers[Service.HOT_WATER],))
    cold, hot = (house.meter(flat, s) for s in (Service.COLD_WATER, Service.HOT_WATER))
    await reading(conn, cold, "2026-01-20T23:00+03:00", "4")  # the 20th: January
    await reading(conn, cold, "2026-01-21T09:00+03:00", "6")  # past the 20th: February
    await reading(conn, hot, "2026-01-31T22:00+03:00", "1")  # the 31st: January
    await reading(conn, hot, "2026-02-28T23:00+03:00", "3")  # the last of February: February
    await reading(conn, hot, "2026-03-01T09:00+03:00", "5")  # March, though the day is 31
    jan = await bill_month(conn, house, 1)
    assert (jan[(flat, "cold_water", False)]["volume"],
            jan[(flat, "hot_water", False)]["volume"]) == (D("4"), D("1"))
    feb = await bill_month(conn, house, 2)
    assert (feb[(flat, "cold_water", False)]["volume"],
            feb[(flat, "hot_water", False)]["volume"]) == (D("2"), D("2"))
    mar = await bill_month(conn, house, 3)
    assert (mar[(flat, "hot_water", False)]["method"],
            mar[(flat, "hot_water", False)]["volume"]) == ("meter", D("2"))
    doc = await payment_document(conn, date(2026, 3, 1), flat)
    (shown,) = (r for r in doc.readings if r.service == Service.HOT_WATER)
    assert (shown.previous, shown.current) == (D("3"), D("5"))


async def test_a_faulty_meter_averages_three_periods_then_the_raised_norm(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.COLD_WATER,))
    (flat,) = house.accounts
    meter = house.meter(flat, Service.COLD_WATER)
    for month, value in ((1, "10"), (2, "20"), (3, "30")):
        await reading(conn, meter, f"2026-{month:02d}-20T10:00+03:00", value)
    # out of order from April 5th: its April reading is not used, nor any after
    await conn.execute("UPDATE meters SET out_of_order_since = '2026-04-05' WHERE id = %s",
                       (meter,))
    await conn.execute("UPDATE providers SET faulty_meter_coefficient = 1.5 WHERE id = %s",
                       (house.providers[Service.COLD_WATER],))
    for month, value in ((4, "45"), (5, "60"), (6, "75"), (7, "90")):
        await reading(conn, meter, f"2026-{month:02d}-20T10:00+03:00", value)
    methods = []
    for month in range(1, 8):
        line = (await bill_month(conn, house, month))[(flat, "cold_water", False)]
        methods.append((line["method"], line["volume"]))
    # 30 m³ over three months since installation: 10 a month for three periods, then the
    # norm 6.935 m³ x 2 residents x 1.5
    assert methods == [("meter", D("10"))] * 3 + [("average", D("10"))] * 3 + [
        ("norm_raised", D("20.805"))]
    # overdue for verification is the same rule; a healthy meter's norm is not raised
    await conn.execute("UPDATE meters SET out_of_order_since = NULL, "
                       "verification_due = '2026-04-05' WHERE id = %s", (meter,))
    line = (await bill_month(conn, house, 7))[(flat, "cold_water", False)]
    assert (line["method"], line["volume"]) == ("norm_raised", D("20.805"))


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


async def test_a_workers_prepared_tables_go_with_the_run(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2), ("30", 1)], services=(Service.MAINTENANCE,),
                          metered=())
    lines = await bill_month(conn, house, 1)
    assert len(lines) == 2
    # the caller's connection was a worker: what it prepared for its chunks is dropped
    cur = await conn.execute("SELECT to_regclass('pg_temp.run_accounts'), "
                             "to_regclass('pg_temp.run_prepared')")
    assert await cur.fetchone() == (None, None)


async def test_one_run_of_a_period_at_a_time(conn: psycopg.AsyncConnection[Any],
                                             pg_url: str) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
        await other.execute("SELECT pg_advisory_lock(%s, %s)", (0x62696C6C, 2026 * 12 + 11))
        with pytest.raises(Conflict, match="a bill run of 2026-11 is running"):
            await bill_month(conn, house, 11)


async def test_a_run_refuses_an_account_whose_own_plan_has_no_price(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2), ("30", 1)], services=(Service.GAS,), metered=())
    one, two = house.accounts
    seller = house.providers[Service.GAS]
    await conn.execute("UPDATE tariff_plans SET is_default = false WHERE provider_id = %s",
                       (seller,))
    await load_book(conn, tariff_book("""
[[plans]]
code = "gas-now"
name = "Gas"
service = "gas"
basis = "m3"

  [[plans.versions]]
  valid_from = 2026-01-01
  price = 7.50

[[plans]]
code = "gas-later"
name = "Gas from February"
service = "gas"
basis = "m3"

  [[plans.versions]]
  valid_from = 2026-02-01
  price = 8.00
""", Provider(seller, "Горгаз")))
    await assign_plan(conn, one, seller, "gas-now", date(2026, 1, 1))
    # the second account is on no plan (the provider has no default): the run is refused ...
    with pytest.raises(Invalid, match=f"no price in force on 2026-01-01: gas of {seller}"):
        await bill_month(conn, house, 1)
    # ... and so it is on a plan with no version in force yet
    await assign_plan(conn, two, seller, "gas-later", date(2026, 1, 1))
    with pytest.raises(Invalid, match=f"no price in force on 2026-01-01: gas of {seller}"):
        await bill_month(conn, house, 1)
    # the account on a priced plan alone is billed
    lines = await bill_month(conn, house, 1, accounts=(one,))
    assert lines[(one, "gas", False)]["tariff_ref"] == "gas-now@2026-01-01"


async def gateway_meter(conn: psycopg.AsyncConnection[Any], house: Housing, flat: str,
                        service: Service = Service.ELECTRICITY) -> str:
    meter = f"{flat}-smart-{service}"
    await conn.execute("""
        INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id)
        VALUES (%s, %s, %s, %s, 'SDM120', 'gw-1')""",
        (meter, flat, house.providers[service], service))
    return meter


def msk(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}+03:00")


async def test_a_meter_behind_a_gateway_is_billed_by_what_rating_accrued_and_posted_once(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.ELECTRICITY, Service.WASTE),
                          metered=())
    (flat,) = house.accounts
    meter = await gateway_meter(conn, house, flat)
    # rating's charges: two intervals of January, one of February (another period)
    await charge(conn, meter, msk("2026-01-10T00:00"), msk("2026-01-10T01:00"), "100", "683.004")
    await charge(conn, meter, msk("2026-01-20T00:00"), msk("2026-01-20T01:00"), "50", "341.502")
    await charge(conn, meter, msk("2026-02-01T00:00"), msk("2026-02-01T01:00"), "7", "47.81")
    lines = await bill_month(conn, house, 1)
    # the apartment's electricity is rating's accrual, shown; common property's is the bill's
    assert set(lines) == {(flat, "waste", False), (flat, "electricity", False),
                          (flat, "electricity", True)}
    line = lines[(flat, "electricity", False)]
    assert (line["method"], line["volume"], line["tariff"], line["charged"], line["unit"]) == (
        "rating", D("150"), D("6.83"), D("1024.51"), "kWh")  # 1024.506 once, half-up
    # priced once and posted once: the journal's January electricity is rating's usage alone
    cur = await conn.execute("""
        SELECT e.kind, sum(p.amount) FROM postings p JOIN entries e ON e.id = p.entry_id
         WHERE p.book = 'subscriber' AND p.account_id = %s AND p.service = 'electricity'
           AND p.period = '2026-01-01' AND p.amount <> 0
         GROUP BY e.kind""", (flat,))
    kinds = dict(await cur.fetchall())
    assert kinds.keys() <= {"usage", "charge"}
    assert kinds["usage"] == D("-1024.506")
    common = lines[(flat, "electricity", True)]
    assert kinds.get("charge", D(0)) == -common["charged"]

    doc = await payment_document(conn, date(2026, 1, 1), flat)
    shown = next(x for x in doc.lines if x.service == Service.ELECTRICITY and not x.common)
    assert (shown.charged, shown.method, shown.unit) == (D("1024.51"), "rating", "кВт·ч")
    assert doc.to_pay == sum((x.total for x in doc.lines), D(0))

    # billing again changes nothing; a re-rating in the open period shows on the next run
    assert await bill_month(conn, house, 1) == lines
    await charge(conn, meter, msk("2026-01-30T00:00"), msk("2026-01-30T01:00"), "10", "68.30")
    again = (await bill_month(conn, house, 1))[(flat, "electricity", False)]
    assert (again["volume"], again["charged"]) == (D("160"), D("1092.81"))
    cur = await conn.execute("""
        SELECT e.kind, count(*) FROM postings p JOIN entries e ON e.id = p.entry_id
         WHERE p.account_id = %s AND p.service = 'electricity' AND e.kind <> 'usage'
         GROUP BY e.kind""", (flat,))
    # the bill posted its common-property line once, and never reversed anything
    assert dict(await cur.fetchall()) == {"charge": 1}


async def test_a_water_meter_behind_a_gateway_counts_in_sewerage(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2)], services=(
        Service.COLD_WATER, Service.HOT_WATER, Service.SEWERAGE), metered=(Service.HOT_WATER,))
    (flat,) = house.accounts
    meter = await gateway_meter(conn, house, flat, Service.COLD_WATER)
    await charge(conn, meter, msk("2026-01-10T00:00"), msk("2026-01-10T01:00"), "3", "156.90")
    await reading(conn, house.meter(flat, Service.HOT_WATER), "2026-01-20T10:00+03:00", "2")
    lines = await bill_month(conn, house, 1)
    cold = lines[(flat, "cold_water", False)]
    assert (cold["method"], cold["volume"], cold["charged"]) == ("rating", D("3"), D("156.90"))
    # sewerage is the bill's: cold (rated) + hot (read by people) = 5 m³ x 41.80
    sewerage = lines[(flat, "sewerage", False)]
    assert (sewerage["volume"], sewerage["charged"]) == (D("5"), D("209.00"))


async def test_a_meter_read_by_people_beside_a_gateway_meter_of_the_service_is_billed_too(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    # the apartment's electricity behind a gateway, the garage's meter read by people
    house = await housing(conn, [("50", 2)], services=(Service.ELECTRICITY,),
                          metered=(Service.ELECTRICITY,))
    (flat,) = house.accounts
    smart = await gateway_meter(conn, house, flat)
    await charge(conn, smart, msk("2026-01-10T00:00"), msk("2026-01-10T01:00"), "100", "683.00")
    await reading(conn, house.meter(flat, Service.ELECTRICITY), "2026-01-20T10:00+03:00", "120")
    await bill(conn, date(2026, 1, 1), Selection(region=house.region), "test")
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    await cur.execute("""
        SELECT method, volume, tariff, charged FROM bill_lines
         WHERE period = '2026-01-01' AND account_id = %s AND service = 'electricity'
           AND NOT common ORDER BY method""", (flat,))
    lines = await cur.fetchall()
    # each consumption priced once: the smart meter's by rating, the garage's by the bill
    assert [tuple(r.values()) for r in lines] == [
        ("meter", D("120"), D("6.83"), D("819.60")),
        ("rating", D("100"), D("6.83"), D("683.00"))]

    doc = await payment_document(conn, date(2026, 1, 1), flat)
    shown = sorted((x.method, x.volume, x.charged) for x in doc.lines
                   if x.service == Service.ELECTRICITY and not x.common)
    assert shown == [("meter", D("120"), D("819.60")), ("rating", D("100"), D("683.00"))]
    assert doc.to_pay == sum((x.total for x in doc.lines), D(0))
    # the document asks what the journal charged for the period: rating's usage and the bill's
    sums = await conn.execute("""
        SELECT coalesce(sum(amount), 0) FROM postings
         WHERE book = 'subscriber' AND account_id = %s AND period = '2026-01-01'""", (flat,))
    (journal,) = await sums.fetchone() or (D(0),)
    assert -journal == sum((x.charged + x.recalculation for x in doc.lines), D(0))
    gis = gis_document(doc)["Услуги"]
    assert sorted((x["Способ определения объёма"], x["Объём"]) for x in gis
                  if x["Вид потребления"] == "индивидуальное") == [
        ("meter", "120.000000"), ("rating", "100.000000")]

    # billing again changes nothing
    count = "SELECT count(*) FROM postings WHERE account_id = %s"
    postings = await (await conn.execute(count, (flat,))).fetchone()
    await bill(conn, date(2026, 1, 1), Selection(region=house.region), "again")
    assert (await payment_document(conn, date(2026, 1, 1), flat)).lines == doc.lines
    assert await (await conn.execute(count, (flat,))).fetchone() == postings


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
