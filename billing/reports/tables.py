"""A report is a titled table with a totals row, written as CSV (for spreadsheets, UTF-8 with
a BOM so that Excel reads Cyrillic, ``;``-separated as Russian locales expect) or as a PDF in
Russian (reportlab, DejaVu Sans, landscape A4, the header repeated on every page)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.documents.pdf import BOLD, FONT, money, register_fonts

Cell = str | int | Decimal | date | None


@dataclass(frozen=True)
class Column:
    title: str
    money: bool = False  # right-aligned, "1 234,56" in the PDF, "1234.56" in the CSV


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Cell]]
    totals: Sequence[Cell] = field(default=())  # one per column ("" where none)


def column_total(rows: Sequence[Sequence[Cell]], n: int) -> Decimal:
    """The sum of a money column."""
    return sum((v for row in rows if isinstance(v := row[n], Decimal)), Decimal(0))


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def to_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([c.title for c in report.columns])
    writer.writerows([_csv_cell(v) for v in row] for row in report.rows)
    if report.totals:
        writer.writerow([_csv_cell(v) for v in report.totals])
    return out.getvalue().encode("utf-8-sig")


def _pdf_cell(value: Cell, column: Column) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal) and column.money:
        return money(value)
    if isinstance(value, date):
        return f"{value:%d.%m.%Y}"
    return str(value)


def to_pdf(report: Report) -> bytes:
    register_fonts()
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=28, rightMargin=28,
                            topMargin=28, bottomMargin=28, title=report.title,
                            author="meterline", invariant=True)
    head = ParagraphStyle("head", fontName=BOLD, fontSize=13, leading=16)
    sub = ParagraphStyle("sub", fontName=FONT, fontSize=9, leading=12)
    cell = ParagraphStyle("cell", fontName=FONT, fontSize=7.5, leading=9)
    data: list[list[object]] = [[Paragraph(c.title, cell) for c in report.columns]]
    data += [[_pdf_cell(v, c) for v, c in zip(row, report.columns, strict=True)]
             for row in report.rows]
    if report.totals:
        data.append([_pdf_cell(v, c) for v, c in zip(report.totals, report.columns,
                                                     strict=True)])
    style = [
        ("FONT", (0, 0), (-1, -1), FONT, 7.5),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    style += [("ALIGN", (n, 1), (n, -1), "RIGHT")
              for n, c in enumerate(report.columns) if c.money]
    if report.totals:
        style.append(("FONT", (0, -1), (-1, -1), BOLD, 7.5))
    table = Table(data, repeatRows=1)
    table.setStyle(TableStyle(style))
    doc.build([Paragraph(report.title, head), Paragraph(report.subtitle, sub),
               Spacer(0, 8), table])
    return out.getvalue()
