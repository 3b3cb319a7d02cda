"""The back office's commands, run as an operator runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.settings import get_settings
from tests.conftest import unique

runner = CliRunner()


@pytest.fixture(autouse=True)
def database(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("METERLINE_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_import_reports_each_refused_row_and_exits_1(tmp_path: Path) -> None:
    good, bad = unique("uk"), unique("bad")
    path = tmp_path / "providers.csv"
    path.write_text(
        "provider_id,name,inn,bank_name,bic,corr_account,settlement_account\n"
        f"{good},ООО УК,7701000002,Банк,044525225,30101810400000000225,40702810900000000002\n"
        f"{bad},ООО Плохо,77,Банк,044525225,30101810400000000225,40702810900000000002\n",
        encoding="utf-8")
    report = tmp_path / "report.csv"
    result = runner.invoke(app, ["import", "providers", str(path), "--report", str(report)])
    assert result.exit_code == 1
    assert "providers: 2 rows imported: created 1, updated 0, unchanged 0, refused 1" in (
        result.output)
    assert f"line 3 ({bad}): inn: String should match pattern" in result.output
    lines = report.read_text().splitlines()
    assert lines[:2] == ["line,key,status,reason", f"2,{good},created,"]
    assert lines[2].startswith(f"3,{bad},refused,inn: String should match pattern")
    again = runner.invoke(app, ["import", "providers", str(path)])
    assert "created 0, updated 0, unchanged 1, refused 1" in again.output


def test_a_file_of_unknown_kind_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["import", "laundry", str(path)])
    assert result.exit_code == 2
    assert "refused: unknown kind of file 'laundry'" in result.output


def test_town_says_what_it_made() -> None:
    prefix = unique("C").upper()
    args = ["town", "--accounts", "30", "--prefix", prefix, "--region", prefix[-8:],
            "--months", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert f"town Берёзовск ({prefix}): 30 new accounts in" in first.output
    assert "0 new accounts" in runner.invoke(app, args).output


def test_billrun_then_close_period_then_billing_it_again_is_refused() -> None:
    prefix = unique("K").upper()
    region = prefix[-8:]
    assert runner.invoke(app, ["town", "--accounts", "24", "--prefix", prefix, "--region",
                               region, "--months", "1"]).exit_code == 0
    billed = runner.invoke(app, ["billrun", "--period", "2026-01", "--region", region,
                                 "--no-progress"])
    assert billed.exit_code == 0, billed.output
    assert "24 accounts billed, 24 bills changed" in billed.output
    closed = runner.invoke(app, ["close-period", "--period", "2026-01",
                                 "--provider", f"{prefix.lower()}-uk"])
    assert closed.output.strip() == f"2026-01 closed for {prefix.lower()}-uk"
    again = runner.invoke(app, ["billrun", "--period", "2026-01", "--region", region,
                                "--no-progress"])
    assert again.exit_code == 2
    assert f"the period 2026-01 is closed for {prefix.lower()}-uk" in again.output


def test_work_orders_are_listed_and_a_wrong_one_refused_clearly() -> None:
    listed = runner.invoke(app, ["reminders", "work-orders", "--provider", unique("nobody")])
    assert listed.exit_code == 0
    assert listed.output.strip().endswith("0 work order(s)")
    refused = runner.invoke(app, ["reminders", "work-done", "999999999", "--by", "Сидоров"])
    assert refused.exit_code == 2
    assert "no work order 999999999" in refused.output


def test_a_group_saved_from_a_file_is_billed_by_name(tmp_path: Path) -> None:
    prefix = unique("G").upper()
    region = prefix[-8:]
    assert runner.invoke(app, ["town", "--accounts", "12", "--prefix", prefix, "--region",
                               region, "--months", "1"]).exit_code == 0
    listing = tmp_path / "accounts.txt"
    listing.write_text(f"{prefix}00000001\n{prefix}00000002\n", encoding="utf-8")
    name = f"g-{region}"
    saved = runner.invoke(app, ["group", "save", name, "--file", str(listing),
                                "--account", f"{prefix}00000003"])
    assert saved.exit_code == 0, saved.output
    assert saved.output.strip() == f"group {name}: 3 accounts"
    assert f"{name}\t3\t" in runner.invoke(app, ["group", "list"]).output
    billed = runner.invoke(app, ["billrun", "--period", "2026-01", "--group", name,
                                 "--no-progress"])
    assert billed.exit_code == 0, billed.output
    assert "3 accounts billed, 3 bills changed" in billed.output
    refused = runner.invoke(app, ["group", "save", name, "--account", "NOPE"])
    assert refused.exit_code == 2
    assert f"refused: no account NOPE: group {name} not saved" in refused.output
    unknown = runner.invoke(app, ["billrun", "--period", "2026-01", "--group", "nope",
                                  "--no-progress"])
    assert (unknown.exit_code, "refused: no saved group 'nope'" in unknown.output) == (2, True)
