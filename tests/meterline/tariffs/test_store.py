"""Tariff books in PostgreSQL: loading is idempotent and append-only, a conflict stores nothing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from meterline.tariffs.model import Book
from meterline.tariffs.store import BookConflict, load_book, read_benefits, read_plans
from meterline.units import Utility
from tests.factories import example_book, provider, stored_book, tariff_book

FLAT = """
[[plans]]
code = "flat"
name = "One rate"
service = "electricity"
basis = "kWh"
default = true

[[plans.versions]]
valid_from = 2026-01-01
bands = [3900]
groups = { rural = 0.7 }
prices = { all_day = [6.43, 7.72] }
"""
NEXT = """
[[plans.versions]]
valid_from = 2026-07-01
price = 6.99
"""


async def count(conn: psycopg.AsyncConnection[Any], table: str, provider_id: str) -> int:
    joins = {
        "tariff_plans": "SELECT count(*) FROM tariff_plans WHERE provider_id = %s",
        "tariff_versions": "SELECT count(*) FROM tariff_versions v JOIN tariff_plans p "
                           "ON p.id = v.plan_id WHERE p.provider_id = %s",
        "tariff_prices": "SELECT count(*) FROM tariff_prices r JOIN tariff_versions v "
                         "ON v.id = r.version_id JOIN tariff_plans p ON p.id = v.plan_id "
                         "WHERE p.provider_id = %s",
    }
    cur = await conn.execute(joins[table], (provider_id,))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def counts(conn: psycopg.AsyncConnection[Any], book: Book) -> tuple[int, ...]:
    return tuple([await count(conn, t, book.provider.id)
                  for t in ("tariff_plans", "tariff_versions", "tariff_prices")])


async def test_a_book_reads_back_as_loaded_and_loading_it_again_changes_nothing(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    book = example_book("energosbyt")
    first = await load_book(conn, book)
    assert first.provider_added and len(first.plans_added) == 5
    assert len(first.versions_added) == 8
    stored = await read_plans(conn, provider=book.provider.id)
    assert {s.plan.code: s.plan for s in stored} == {p.code: p for p in book.plans}
    before = await counts(conn, book)
    again = await load_book(conn, book)
    assert not again.changed and again.lines() == [
        f"{book.provider.id}: nothing new (the book is loaded already)"]
    # prices: flat 2 versions x 3 bands, two-zone 2 x 2 zones x 3, three-zone 2 x 3 x 3,
    # social norm 2 bands, business 3 tiers; each for 3 consumer groups
    assert await counts(conn, book) == before == (5, 8, (6 + 12 + 18 + 2 + 3) * 3)


async def test_prices_are_stored_for_every_zone_band_and_consumer_group(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    book = tariff_book(FLAT)
    ids = await stored_book(conn, book)
    cur = await conn.execute(
        """SELECT zone, band, consumer_group, price FROM tariff_prices r
             JOIN tariff_versions v ON v.id = r.version_id
            WHERE v.plan_id = %s ORDER BY band, consumer_group""", (ids["flat"],))
    assert await cur.fetchall() == [
        ("all_day", 0, "electric_stove", Decimal("6.43")),
        ("all_day", 0, "rural", Decimal("4.501")),
        ("all_day", 0, "urban", Decimal("6.43")),
        ("all_day", 1, "electric_stove", Decimal("7.72")),
        ("all_day", 1, "rural", Decimal("5.404")),
        ("all_day", 1, "urban", Decimal("7.72")),
    ]


async def test_a_new_version_is_added_and_the_stored_one_is_not_touched(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await load_book(conn, tariff_book(FLAT, seller))
    cur = await conn.execute("SELECT v.id, v.loaded_at FROM tariff_versions v JOIN tariff_plans p "
                             "ON p.id = v.plan_id WHERE p.provider_id = %s", (seller.id,))
    (old,) = await cur.fetchall()
    report = await load_book(conn, tariff_book(FLAT + NEXT, seller))
    assert report.versions_added == [("flat", date(2026, 7, 1))]
    (stored,) = await read_plans(conn, provider=seller.id)
    assert [v.valid_from for v in stored.plan.versions] == [date(2026, 1, 1), date(2026, 7, 1)]
    assert stored.plan.ends(0) == date(2026, 7, 1) and stored.version_ids[0] == old[0]
    cur = await conn.execute("SELECT loaded_at FROM tariff_versions WHERE id = %s", (old[0],))
    assert await cur.fetchone() == (old[1],)
    # a book with only the new version is loaded already too
    only_new = FLAT[:FLAT.index("[[plans.versions]]")] + NEXT
    assert not (await load_book(conn, tariff_book(only_new, seller))).changed


async def test_a_stored_version_is_never_edited_and_a_conflicting_book_stores_nothing(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await load_book(conn, tariff_book(FLAT + NEXT, seller))
    before = await counts(conn, tariff_book(FLAT, seller))
    edited = (FLAT.replace("6.43", "6.44") + NEXT
              + FLAT.replace('code = "flat"', 'code = "other"').replace("default = true", ""))
    with pytest.raises(BookConflict) as refused:
        await load_book(conn, tariff_book(edited, seller))
    assert refused.value.problems == [(
        "plan flat > version from 2026-01-01",
        "differs from the version stored for that day; a tariff once loaded is never edited: "
        "add a new version with a later valid_from")]
    assert await counts(conn, tariff_book(FLAT, seller)) == before  # "other" was not stored

    earlier = FLAT.replace("2026-01-01", "2025-01-01") + NEXT
    with pytest.raises(BookConflict, match="starts before the stored version from 2026-07-01"):
        await load_book(conn, tariff_book(earlier, seller))


async def test_a_plan_keeps_what_it_prices_but_may_be_renamed(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await load_book(conn, tariff_book(FLAT, seller))
    gas = FLAT.replace('service = "electricity"', 'service = "gas"').replace('"kWh"', '"m3"')
    with pytest.raises(BookConflict) as refused:
        await load_book(conn, tariff_book(gas, seller))
    assert [w for w, _ in refused.value.problems] == [
        "plan flat > service", "plan flat > utility", "plan flat > basis"]
    renamed = await load_book(conn, tariff_book(FLAT.replace("One rate", "Single rate"), seller))
    assert renamed.renamed == ["flat"]
    (stored,) = await read_plans(conn, provider=seller.id)
    assert stored.plan.name == "Single rate"


async def test_the_default_plan_moves_to_the_one_a_book_marks(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    seller = provider()
    await load_book(conn, tariff_book(FLAT, seller))
    other = FLAT.replace('code = "flat"', 'code = "two"')
    report = await load_book(conn, tariff_book(other, seller))
    assert report.defaults == ["two"]
    plans = {s.plan.code: s.plan.default for s in await read_plans(conn, provider=seller.id)}
    assert plans == {"flat": False, "two": True}


async def test_plans_are_found_by_utility_including_derived_volumes(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    book = example_book("vodokanal")
    await load_book(conn, book)
    cold = await read_plans(conn, provider=book.provider.id, utility=Utility.COLD_WATER)
    assert [s.plan.code for s in cold] == ["cold-water", "sewerage"]


async def test_benefit_rules_are_stored_once_and_never_edited(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    book = example_book("teploset")
    await load_book(conn, book)
    assert await read_benefits(conn, book.provider.id) == list(book.benefits)
    changed = book.model_copy(update={"benefits": (
        book.benefits[0].model_copy(update={"percent": Decimal(30)}),)})
    with pytest.raises(BookConflict, match="benefit veteran_heating"):
        await load_book(conn, changed)
