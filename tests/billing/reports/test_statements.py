"""The turnover sheet reconciles with the journal to the kopeck; the debtors list and the
penalties register as CSV."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from billing.payments.posting import Payment, receive
from billing.penalties.journal import accrue
from billing.penalties.rules import load_rules
from billing.reports.statements import debtors_list, penalties_register, turnover_sheet
from billing.reports.tables import to_csv, to_pdf
from meterline.cli import app
from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.settings import get_settings
from meterline.units import Service
from tests.conftest import unique
from tests.factories import charge_month, housing_account

D = Decimal
JAN, FEB = date(2025, 1, 1), date(2025, 2, 1)
MSK = "Europe/Moscow"
RULES = load_rules()


async def test_the_turnover_sheet_adds_up_and_equals_the_journal(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    uk = unique("uk")
    a = await housing_account(conn, {"maintenance": uk, "waste": uk})
    b = await housing_account(conn, {"maintenance": uk, "electricity": uk}, payer_group="other")
    # January, booked in January: the opening debt of February
    await charge_month(conn, a, JAN, {"maintenance": "1000.00", "waste": "120.00"},
                       booked_at=datetime(2025, 1, 31, 12, tzinfo=UTC))
    await charge_month(conn, b, JAN, {"maintenance": "800.00", "electricity": "800.00"},
                       booked_at=datetime(2025, 1, 31, 12, tzinfo=UTC))
    # February: charges, a payment, a benefit, penalties
    feb = datetime(2025, 2, 28, 12, tzinfo=UTC)
    await charge_month(conn, a, FEB, {"maintenance": "1000.00", "waste": "120.00"},
                       booked_at=feb)
    await receive(conn, Payment(unique("payment:cash"), "cash", a.account_id, D("1120.00"),
                                datetime(2025, 2, 5, 9, tzinfo=UTC)))
    await post(conn, [Entry(EntryKind.BENEFIT, unique("benefit"), (
        Posting(Book.SUBSCRIBER, uk, D("60.00"), b.account_id, Service.MAINTENANCE, FEB),
        Posting(Book.DISCOUNTS, uk, D("-60.00"), None, Service.MAINTENANCE, FEB)),
        booked_at=feb)])
    await accrue(conn, RULES, date(2025, 2, 27), account=b.account_id)

    sheet = await turnover_sheet(conn, uk, FEB, time_zone=MSK)
    rows = {(r[0], r[1]): [D(str(v)) for v in r[2:]] for r in sheet.rows}
    opening, charged, paid, penalties, other, closing = rows[(a.account_id,
                                                              "Содержание жилого помещения")]
    assert (opening, charged, paid, penalties, other, closing) == (
        D("1000.00"), D("1000.00"), D("1000.00"), D(0), D(0), D("1000.00"))
    for opening, charged, paid, penalties, other, closing in rows.values():
        assert closing == opening + charged - paid + penalties + other
    # the benefit; penalties on electricity for another consumer: 1/130 from the first day,
    # 2025-02-11..27 (17 d): 800 × 17 × 9.5 % / 130 = 9.9384 → 9.94
    assert rows[(b.account_id, "Содержание жилого помещения")][4] == D("-60.00")
    assert rows[(b.account_id, "Электроснабжение")][3] == D("9.94")
    cur = await conn.execute(
        """SELECT -sum(p.amount) FROM postings p JOIN entries e ON e.id = p.entry_id
            WHERE p.book = 'subscriber' AND p.provider_id = %s
              AND e.booked_at < '2025-03-01 00:00+03'""", (uk,))
    assert sheet.totals[-1] == (await cur.fetchone() or [None])[0]
    assert to_csv(sheet).decode("utf-8-sig").splitlines()[0] == (
        "Лицевой счёт;Услуга;Долг на начало;Начислено;Оплачено;Пени;Прочее;Долг на конец")
    assert to_pdf(sheet).startswith(b"%PDF")

    debtors = await debtors_list(conn, date(2025, 3, 20), provider=uk)
    assert {r[0] for r in debtors.rows} == {a.account_id, b.account_id}
    register = await penalties_register(conn, FEB, provider=uk)
    ((account, *_, principal, total, in_month),) = register.rows
    assert (account, principal, total, in_month) == (b.account_id, D("800.00"), D("9.94"),
                                                     D("9.94"))



async def test_reports_from_the_command_line_as_csv_and_pdf(
    conn: psycopg.AsyncConnection[Any], pg_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uk = unique("uk")
    a = await housing_account(conn, {"maintenance": uk})
    await charge_month(conn, a, JAN, {"maintenance": "1234.56"},
                       booked_at=datetime(2025, 1, 31, 12, tzinfo=UTC))
    monkeypatch.setenv("METERLINE_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    try:
        pdf = tmp_path / "turnover.pdf"
        result = await asyncio.to_thread(CliRunner().invoke, app, [
            "reports", "turnover", "--provider", uk, "--period", "2025-01", "--out", str(pdf)])
        assert result.exit_code == 0, result.output
        text = (await asyncio.to_thread(
            subprocess.run, ["pdftotext", "-layout", str(pdf), "-"], check=True,
            capture_output=True, text=True)).stdout
        assert "Оборотно-сальдовая ведомость" in text and "1 234,56" in text
        csv = await asyncio.to_thread(CliRunner().invoke, app, [
            "reports", "debtors", "--as-of", "2025-03-01", "--provider", uk])
        assert csv.exit_code == 0 and f"{a.account_id};" in csv.stdout
        bad = await asyncio.to_thread(CliRunner().invoke, app, [
            "reports", "penalties", "--period", "2025-01", "--out", str(tmp_path / "x.txt")])
        assert bad.exit_code == 2
    finally:
        get_settings.cache_clear()
