"""`meterline tariffs check | load | list` against the session's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.settings import get_settings
from meterline.tariffs.books import EXAMPLES
from tests.conftest import unique

runner = CliRunner()


@pytest.fixture
def database(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("METERLINE_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def book_file(tmp_path: Path, name: str = "energosbyt") -> tuple[Path, str]:
    """A shipped example book, sold by a provider of this test."""
    seller = unique("cli")
    text = (EXAMPLES / f"{name}.toml").read_text(encoding="utf-8")
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace(f'id = "{name}"', f'id = "{seller}"'), encoding="utf-8")
    return path, seller


def test_load_stores_a_book_once_and_list_shows_it(database: None, tmp_path: Path) -> None:
    path, seller = book_file(tmp_path)
    first = runner.invoke(app, ["tariffs", "load", str(path)])
    assert first.exit_code == 0, first.output
    assert f"{path}: provider {seller} registered" in first.output
    assert f"{path}: plan household-3zone: version from 2026-07-01 added" in first.output
    again = runner.invoke(app, ["tariffs", "load", str(path)])
    assert again.exit_code == 0
    assert again.output == f"{path}: {seller}: nothing new (the book is loaded already)\n"
    listed = runner.invoke(app, ["tariffs", "list", "--provider", seller])
    assert listed.exit_code == 0
    assert (f"{seller}/household-2zone: Households, day and night (electricity, per kWh)"
            in listed.output)
    assert ("  from 2025-07-01 to 2026-07-01: day 07:00-23:00: 7.38 / 8.86 / 11.07, "
            "night 23:00-07:00: 2.85 / 3.42 / 4.28; bands up to 3900, 6000" in listed.output)


def test_a_bad_book_is_refused_with_its_problems_and_a_failing_exit(
    database: None, tmp_path: Path,
) -> None:
    path, seller = book_file(tmp_path, "vodokanal")
    path.write_text(path.read_text(encoding="utf-8").replace("price = 58.10", "price = -1"),
                    encoding="utf-8")
    for command in ("check", "load"):
        result = runner.invoke(app, ["tariffs", command, str(path)])
        assert result.exit_code == 1
        assert "plans[0] cold-water > versions[0] 2025-07-01 > price: " \
               "Input should be greater than or equal to 0" in result.output
    listed = runner.invoke(app, ["tariffs", "list", "--provider", seller])
    assert listed.output == ""


def test_check_reads_every_example_book() -> None:
    books = sorted(map(str, EXAMPLES.glob("*.toml")))
    result = runner.invoke(app, ["tariffs", "check", *books])
    assert result.exit_code == 0, result.output
    assert result.output.count(": fine") == 4


def test_standing_charges_of_a_day_with_nothing_owed(database: None) -> None:
    result = runner.invoke(app, ["tariffs", "standing-charges", "--day", "1999-01-01"])
    assert result.exit_code == 0, result.output
    assert result.output == "1999-01-01: nothing to book (no standing charge owed, or booked " \
                            "already)\n"
    bad = runner.invoke(app, ["tariffs", "standing-charges", "--day", "yesterday"])
    assert bad.exit_code == 2 and "'yesterday' is not a date (YYYY-MM-DD)" in bad.output
