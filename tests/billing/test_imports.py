"""Importing account files: every row reported, nothing half-imported, a re-import changes
nothing."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest

from billing.accounts.imports import ImportReport, import_rows
from meterline.errors import Invalid
from tests.conftest import unique


def csv_lines(*rows: str) -> list[str]:
    return [row.strip() + "\n" for row in rows]


async def load(conn: psycopg.AsyncConnection[Any], kind: str, *rows: str,
               check: bool = False) -> ImportReport:
    return await import_rows(conn, kind, csv_lines(*rows), check=check)


def statuses(report: ImportReport) -> list[str]:
    return [row.status for row in report.rows]


@pytest.fixture
def ids() -> dict[str, str]:
    """Ids of this test's own (tests share one database)."""
    return {"p": unique("vodokanal"), "a1": unique("A"), "a2": unique("A"),
            "m": unique("m"), "region": unique("r")[:16], "street": unique("ul")}


async def put_accounts(conn: psycopg.AsyncConnection[Any], ids: dict[str, str]) -> ImportReport:
    await load(conn, "providers",
               "provider_id,name,inn,kpp,bank_name,bic,corr_account,settlement_account",
               f"{ids['p']},АО Водоканал,7701000001,770101001,ПАО Сбербанк,044525225,"
               "30101810400000000225,40702810900000000001")
    return await load(
        conn, "accounts",
        "account_id,holder_name,region,region_name,time_zone,city,street,house,apartment,"
        "area,residents",
        f"{ids['a1']},Иванов Иван Иванович,{ids['region']},Тестовая область,Europe/Samara,"
        f"Самара,{ids['street']},7,1,54.3,3",
        f"{ids['a2']},Петрова Анна,{ids['region']},,,Самара,{ids['street']},7,2,41,1",
    )


async def test_accounts_land_on_the_address_hierarchy(
    conn: psycopg.AsyncConnection[Any], ids: dict[str, str]
) -> None:
    report = await put_accounts(conn, ids)
    assert statuses(report) == ["created", "created"]
    cur = await conn.execute("""
        SELECT a.id, a.area, a.residents, p.number, h.number, s.name, c.name, r.code,
               r.time_zone, ad.full_text, ad.time_zone
          FROM accounts a JOIN premises p ON p.id = a.premises_id
          JOIN houses h ON h.id = p.house_id JOIN streets s ON s.id = h.street_id
          JOIN cities c ON c.id = s.city_id JOIN regions r ON r.code = c.region_code
          JOIN addresses ad ON ad.id = a.address_id
         WHERE a.id = ANY(%s) ORDER BY p.number""", ([ids["a1"], ids["a2"]],))
    rows = await cur.fetchall()
    assert [(r[0], str(r[1]), r[2], r[3]) for r in rows] == [
        (ids["a1"], "54.30", 3, "1"), (ids["a2"], "41.00", 1, "2")]
    # one house, one street: both apartments are in it, and the region keeps its time zone
    assert {(r[4], r[5], r[6], r[7], r[8]) for r in rows} == {
        ("7", ids["street"], "Самара", ids["region"], "Europe/Samara")}
    assert rows[0][9] == f"г. Самара, {ids['street']}, д. 7, кв. 1"
    assert rows[0][10] == "Europe/Samara"  # the pipeline's address carries it too


async def test_reimporting_the_same_files_changes_nothing(
    conn: psycopg.AsyncConnection[Any], ids: dict[str, str]
) -> None:
    await put_accounts(conn, ids)
    services = ("account_id,service,provider_id,valid_from",
                f"{ids['a1']},cold_water,{ids['p']},2026-01-01",
                f"{ids['a1']},sewerage,{ids['p']},2026-01-01")
    meters = ("meter_id,account_id,provider_id,utility,installed_at,installation_reading",
              f"{ids['m']},{ids['a1']},{ids['p']},cold_water,2026-01-10T09:00:00+03:00,12.5")
    assert statuses(await load(conn, "services", *services)) == ["created", "created"]
    assert statuses(await load(conn, "meters", *meters)) == ["created"]

    async def snapshot() -> list[Any]:
        cur = await conn.execute("""
            SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM addresses),
                   (SELECT count(*) FROM premises), (SELECT count(*) FROM account_services),
                   (SELECT count(*) FROM meters), (SELECT count(*) FROM readings),
                   (SELECT count(*) FROM balances)""")
        return list(await cur.fetchall())

    before = await snapshot()
    assert statuses(await put_accounts(conn, ids)) == ["unchanged", "unchanged"]
    assert statuses(await load(conn, "services", *services)) == ["unchanged", "unchanged"]
    assert statuses(await load(conn, "meters", *meters)) == ["unchanged"]
    assert await snapshot() == before

    # the meter is read by people: its installation reading is its first reading
    cur = await conn.execute(
        "SELECT meters.gateway_id, source, value FROM meters JOIN readings ON meter_id = meters.id "
        "WHERE meters.id = %s", (ids["m"],))
    assert await cur.fetchall() == [(None, "operator", pytest.approx(12.5))]

    # its verification falling due, then its repair, are the same meter imported again
    due = (meters[0] + ",verification_due,out_of_order_since", meters[1] + ",2026-06-01,")
    assert statuses(await load(conn, "meters", *due)) == ["updated"]
    assert statuses(await load(conn, "meters", *due)) == ["unchanged"]
    cur = await conn.execute("SELECT verification_due, out_of_order_since FROM meters "
                             "WHERE id = %s", (ids["m"],))
    assert await cur.fetchone() == (date(2026, 6, 1), None)
    assert statuses(await load(conn, "meters", *meters)) == ["updated"]  # cleared


async def test_a_changed_row_updates_and_says_so(
    conn: psycopg.AsyncConnection[Any], ids: dict[str, str]
) -> None:
    await put_accounts(conn, ids)
    report = await load(
        conn, "accounts",
        "account_id,holder_name,region,city,street,house,apartment,area,residents",
        f"{ids['a2']},Петрова Анна,{ids['region']},Самара,{ids['street']},7,2,41,2")
    assert statuses(report) == ["updated"]
    cur = await conn.execute("SELECT residents FROM accounts WHERE id = %s", (ids["a2"],))
    assert await cur.fetchone() == (2,)


async def test_refused_rows_say_why_and_the_rest_is_imported_whole(
    conn: psycopg.AsyncConnection[Any], ids: dict[str, str]
) -> None:
    await put_accounts(conn, ids)
    report = await load(
        conn, "services",
        "account_id,service,provider_id,valid_from,valid_to",
        f"{ids['a1']},cold_water,{ids['p']},2026-01-01,",
        f"{ids['a1']},hot_water,{ids['p']},2026-13-01,",                   # no such date
        f"NOBODY,cold_water,{ids['p']},2026-01-01,",                      # unknown account
        f"{ids['a1']},cold_water,{ids['p']},2026-01-01,",                 # repeated key
        f"{ids['a1']},cold_water,{ids['p']},2025-06-01,2026-02-01",       # overlaps line 2
        f"{ids['a2']},heating,nobody,2026-01-01,",                        # unknown provider
        f"{ids['a2']},laundry,{ids['p']},2026-01-01,",                    # not a service
        f"{ids['a2']},waste,{ids['p']},2026-03-01,2026-02-01",            # ends before start
    )
    assert [(r.line, r.status) for r in report.rows] == [
        (2, "created"), (3, "refused"), (4, "refused"), (5, "refused"), (6, "refused"),
        (7, "refused"), (8, "refused"), (9, "refused")]
    reasons = {r.line: r.reason for r in report.refused}
    assert "valid_from" in reasons[3]
    assert reasons[4] == "no account NOBODY"
    assert reasons[5] == "same key as line 2"
    assert "overlapping" in reasons[6]
    assert reasons[7] == "no provider nobody"
    assert "service" in reasons[8]
    assert "valid_to must be after valid_from" in reasons[9]
    cur = await conn.execute(
        "SELECT service FROM account_services WHERE account_id = ANY(%s)",
        ([ids["a1"], ids["a2"]],))
    assert await cur.fetchall() == [("cold_water",)]
    assert "created 1" in report.summary() and "refused 7" in report.summary()


async def test_a_meter_needs_its_provider_selling_the_service_and_stays_on_its_account(
    conn: psycopg.AsyncConnection[Any], ids: dict[str, str]
) -> None:
    await put_accounts(conn, ids)
    await load(conn, "services", "account_id,service,provider_id,valid_from",
               f"{ids['a1']},cold_water,{ids['p']},2026-01-01",
               f"{ids['a2']},cold_water,{ids['p']},2026-01-01")
    header = "meter_id,account_id,provider_id,utility,installed_at,installation_reading"
    report = await load(conn, "meters", header,
                        f"{ids['m']},{ids['a1']},{ids['p']},hot_water,2026-01-10T00:00Z,0")
    assert report.refused[0].reason == (
        f"no provider {ids['p']} selling hot_water on account {ids['a1']}")
    await load(conn, "meters", header,
               f"{ids['m']},{ids['a1']},{ids['p']},cold_water,2026-01-10T00:00Z,0")
    report = await load(conn, "meters", header,
                        f"{ids['m']},{ids['a2']},{ids['p']},cold_water,2026-01-10T00:00Z,0")
    assert report.refused[0].reason.startswith(
        f"meter {ids['m']} is registered as cold_water manual of account {ids['a1']}")


async def test_a_check_writes_nothing(
    conn: psycopg.AsyncConnection[Any], ids: dict[str, str]
) -> None:
    await load(conn, "providers",
               "provider_id,name,inn,bank_name,bic,corr_account,settlement_account",
               f"{ids['p']},ООО УК,7701000002,Банк,044525225,30101810400000000225,"
               "40702810900000000002")
    report = await load(
        conn, "accounts",
        "account_id,holder_name,region,city,street,house,apartment,area,residents",
        f"{ids['a1']},Сидоров,{ids['region']},Тольятти,{ids['street']},1,1,30,1", check=True)
    assert statuses(report) == ["created"] and not report.applied
    cur = await conn.execute("SELECT count(*) FROM accounts WHERE id = %s", (ids["a1"],))
    assert await cur.fetchone() == (0,)


async def test_a_file_with_wrong_columns_is_refused_whole(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    with pytest.raises(Invalid, match=r"missing columns service; unknown columns colour"):
        await load(conn, "services", "account_id,provider_id,valid_from,colour",
                   "A,p,2026-01-01,red")


async def test_benefits_name_their_beneficiaries(
    conn: psycopg.AsyncConnection[Any], ids: dict[str, str]
) -> None:
    await put_accounts(conn, ids)
    await load(conn, "services", "account_id,service,provider_id,valid_from",
               f"{ids['a1']},heating,{ids['p']},2026-01-01",
               f"{ids['a1']},cold_water,{ids['p']},2026-01-01")
    header = "account_id,category,service,share,valid_from,beneficiaries"
    rows = (f"{ids['a1']},veteran,heating,0.5,2026-01-01,1",
            f"{ids['a1']},large_family,cold_water,0.3,2026-01-01,")
    report = await load(conn, "benefits", header, *rows)
    assert [(r.status, r.reason) for r in report.rows] == [
        ("refused", f"no benefit rule veteran for heating in the tariff book of a provider "
                    f"selling it to account {ids['a1']}"),
        ("refused", f"no benefit rule large_family for cold_water in the tariff book of a "
                    f"provider selling it to account {ids['a1']}")]
    await conn.execute("""
        INSERT INTO benefit_rules (provider_id, code, name, service, percent, norm, norm_basis)
        VALUES (%(p)s, 'veteran', 'Ветераны', 'heating', 50, 18, 'm2'),
               (%(p)s, 'large_family', 'Многодетные', 'cold_water', 30, 6, 'm3')""", ids)
    assert statuses(await load(conn, "benefits", header, *rows)) == ["created", "created"]
    assert statuses(await load(conn, "benefits", header, *rows)) == ["unchanged", "unchanged"]
    report = await load(conn, "benefits", header, f"{ids['a1']},veteran,heating,0.5,2026-01-01,2")
    assert statuses(report) == ["updated"]
    cur = await conn.execute("""
        SELECT category, beneficiaries FROM account_benefits WHERE account_id = %s
         ORDER BY category""", (ids["a1"],))
    assert await cur.fetchall() == [("large_family", 1), ("veteran", 2)]
