"""A report as CSV and as PDF (read back with pdftotext)."""

from __future__ import annotations

import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

from billing.reports.tables import Column, Report, to_csv, to_pdf

REPORT = Report(
    "Оборотно-сальдовая ведомость", "АО «Энергосбыт», ноябрь 2024",
    [Column("Лицевой счёт"), Column("Дата"), Column("Начислено", money=True)],
    [["LS-1", date(2024, 11, 30), Decimal("1234.5")], ["LS-2", None, Decimal("0.333")]],
    ["Итого", "", Decimal("1234.833")],
)


def test_csv_for_spreadsheets() -> None:
    assert to_csv(REPORT).decode("utf-8-sig").splitlines() == [
        "Лицевой счёт;Дата;Начислено", "LS-1;2024-11-30;1234.50", "LS-2;;0.33",
        "Итого;;1234.83"]


def test_pdf_in_russian(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(to_pdf(REPORT))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "Оборотно-сальдовая ведомость" in text and "АО «Энергосбыт», ноябрь 2024" in text
    assert "1 234,50" in text and "30.11.2024" in text and "Итого" in text
    assert to_pdf(REPORT) == to_pdf(REPORT)  # deterministic
