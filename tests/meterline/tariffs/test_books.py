"""Tariff book files: read exactly, refused whole with every problem named by where it is."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from meterline.tariffs.books import EXAMPLES, BookError, parse_book, read_book
from meterline.tariffs.model import ALL_DAY, Basis, ConsumerGroup
from meterline.units import Service, Utility
from tests.factories import tariff_book

THREE_ZONE = """
[[plans]]
code = "3zone"
name = "Three zones"
service = "electricity"
basis = "kWh"

[[plans.versions]]
valid_from = 2026-01-01
bands = [3900, 6000]
groups = { rural = 0.7 }

[plans.versions.zones]
peak = ["07:00-10:00", "17:00-21:00"]
semi_peak = ["10:00-17:00", "21:00-23:00"]
night = ["23:00-07:00"]

[plans.versions.prices]
peak = [9.63, 11.56, 14.45]
semi_peak = [6.99, 8.39, 10.49]
night = [3.10, 3.72, 4.65]
"""


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(BookError) as refused:
        tariff_book(text)
    return refused.value.problems


def test_a_three_zone_plan_with_bands_and_groups_is_read_exactly() -> None:
    (plan,) = tariff_book(THREE_ZONE).plans
    (version,) = plan.versions
    assert (plan.service, plan.utility, plan.basis) == (Service.ELECTRICITY, Utility.ELECTRICITY,
                                                       Basis.KWH)
    assert [z.name for z in version.zones] == ["peak", "semi_peak", "night"]
    assert version.bands == (Decimal(3900), Decimal(6000)) and version.band_count == 3
    assert version.prices[2] == (Decimal("3.10"), Decimal("3.72"), Decimal("4.65"))
    # numbers are decimals from the text, never floats: 0.7 x 3.10 is exactly 2.17
    assert version.price(2, 0, ConsumerGroup.RURAL) == Decimal("2.170000")
    assert version.price(0, 1, ConsumerGroup.RURAL) == Decimal("8.092")
    assert version.price(0, 1, ConsumerGroup.ELECTRIC_STOVE) == Decimal("11.56")


def test_a_flat_price_is_one_all_day_zone_and_one_band() -> None:
    (plan,) = tariff_book("""
[[plans]]
code = "water"
name = "Cold water"
service = "cold_water"
basis = "m3"
[[plans.versions]]
valid_from = 2026-01-01
price = 58.1
""").plans
    (version,) = plan.versions
    assert [z.name for z in version.zones] == [ALL_DAY] and version.prices == ((Decimal("58.1"),),)


def test_every_example_book_reads() -> None:
    books = {path.stem: read_book(path) for path in EXAMPLES.glob("*.toml")}
    assert set(books) == {"energosbyt", "vodokanal", "teploset", "uk-dom"}
    codes = {p.code for p in books["energosbyt"].plans}
    assert {"household-flat", "household-2zone", "household-3zone", "household-social-norm",
            "business-tiers"} <= codes
    sewerage = next(p for p in books["vodokanal"].plans if p.service is Service.SEWERAGE)
    assert sewerage.derived_from == (Utility.COLD_WATER, Utility.HOT_WATER)
    assert {p.basis for p in books["uk-dom"].plans} == {Basis.M2, Basis.RESIDENT}


def test_a_bad_book_is_refused_whole_with_every_problem_named() -> None:
    found = problems(THREE_ZONE.replace('night = [3.10, 3.72, 4.65]', 'night = [3.10, 3.72]')
                     .replace('"23:00-07:00"', '"23:30-07:00"')
                     .replace("groups = { rural = 0.7 }", "groups = { urban = 0.9 }")
                     + '\n[[plans]]\ncode = "3zone"\nname = "again"\nservice = "waste"\n'
                     'basis = "kWh"\n[[plans.versions]]\nvalid_from = 2026-01-01\nprice = 1\n')
    assert dict(found) == {
        "plans[0] 3zone > versions[0] 2026-01-01 > zones": "no zone covers 23:00",
        "plans[0] 3zone > versions[0] 2026-01-01 > groups > urban":
            "urban pays the base price; list only the other groups",
        "plans[0] 3zone > versions[0] 2026-01-01 > prices > night": "2 prices for 3 bands",
        "plans[1] 3zone > basis":
            "waste is not metered: price it per m2 or resident, or name derived_from utilities",
        "plans[1] 3zone": "plan code 3zone is used twice",
    }


def test_schema_errors_name_the_field() -> None:
    found = problems(THREE_ZONE.replace("basis = \"kWh\"", "basis = \"kWh\"\ncolour = \"red\"")
                     .replace("9.63", "9.6345678").replace("rural", "suburban"))
    wheres = [w for w, _ in found]
    assert "plans[0] 3zone > colour" in wheres
    assert any(w.startswith("plans[0] 3zone > versions[0] 2026-01-01 > prices > peak")
               for w in wheres)
    assert any(w.startswith("plans[0] 3zone > versions[0] 2026-01-01 > groups") for w in wheres)


@pytest.mark.parametrize(("change", "where", "what"), [
    (("valid_from = 2026-01-01", "valid_from = 2026-01-01\nvalid_to = 2025-01-01"),
     "plans[0] 3zone > versions[0] 2026-01-01 > valid_to", "must be later than valid_from"),
    (("bands = [3900, 6000]", "bands = [6000, 3900]"),
     "plans[0] 3zone > versions[0] 2026-01-01 > bands", "band limits must increase"),
    (("bands = [3900, 6000]", "bands = [3900, 6000]\nsocial_norm = [90]"),
     "plans[0] 3zone > versions[0] 2026-01-01", "bands and social_norm exclude each other"),
    (('basis = "kWh"', 'basis = "m3"'),
     "plans[0] 3zone > basis", "electricity is metered in kWh, not m3"),
    (("groups = { rural = 0.7 }", "groups = { rural = 0.7 }\nprice = 5"),
     "plans[0] 3zone > versions[0] 2026-01-01",
     "give either price (one flat price) or prices (per zone)"),
])
def test_rules_across_fields(change: tuple[str, str], where: str, what: str) -> None:
    assert (where, what) in problems(THREE_ZONE.replace(*change))


def test_versions_follow_each_other() -> None:
    version = THREE_ZONE[THREE_ZONE.index("[[plans.versions]]"):]
    found = problems(THREE_ZONE + version.replace("2026-01-01", "2025-06-01"))
    assert ("plans[0] 3zone > versions[1] 2025-06-01 > valid_from",
            "versions must be in order of valid_from, each later than the one before") in found


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    path.write_text("[provider\nid = 1", encoding="utf-8")
    with pytest.raises(BookError, match="not valid TOML"):
        read_book(path)
    with pytest.raises(BookError, match="cannot read"):
        read_book(tmp_path / "missing.toml")
    with pytest.raises(BookError, match="tariff book is refused"):
        parse_book('[provider]\nid = "x y"\nname = "X"')
