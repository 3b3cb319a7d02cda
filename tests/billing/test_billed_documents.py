"""Payment documents of a billed town: assembled from the stored bill, rendered in bulk and
exported, every document adding up to its bill and its QR carrying its own sum."""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from billing.accounts.town import Town
from billing.billrun.run import bill
from meterline.bill_runs import Selection
from meterline.cli import app
from meterline.documents.assemble import payment_document, payment_documents
from meterline.documents.pdf import render_pdf
from meterline.documents.qr import parse
from meterline.errors import NotFound
from meterline.settings import get_settings
from meterline.units import Service
from tests.billing.test_documents import decoded_qr
from tests.factories import provider_terms, town

PERIOD = date(2026, 3, 1)
runner = CliRunner()


@pytest.fixture(scope="module")
async def billed(pg_url: str) -> Town:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        made = await town(conn, accounts=60, months=3, seed=5)
        await bill(conn, PERIOD, Selection(region=made.spec.region), "test")
        return made


async def account_ids(conn: psycopg.AsyncConnection[Any], made: Town) -> list[str]:
    cur = await conn.execute("SELECT id FROM accounts WHERE id LIKE %s || '%%' ORDER BY id",
                             (made.spec.prefix,))
    return [a for (a,) in await cur.fetchall()]


async def test_each_document_adds_up_to_its_bill(
    conn: psycopg.AsyncConnection[Any], billed: Town,
) -> None:
    accounts = await account_ids(conn, billed)
    docs = await payment_documents(conn, PERIOD, accounts)
    assert [d.account_id for d in docs] == accounts
    cur = await conn.execute("""
        SELECT account_id, provider_id, sum(charged + recalculation - benefit)
          FROM bill_lines WHERE period = %s AND account_id = ANY(%s)
         GROUP BY account_id, provider_id""", (PERIOD, accounts))
    billed_sums = {(a, p): total for a, p, total in await cur.fetchall()}
    shown = {(d.account_id, t.payee.provider_id): t.charged for d in docs for t in d.payees}
    assert shown == billed_sums
    for doc in docs:
        assert doc.to_pay == sum((line.total for line in doc.lines), Decimal(0))
        assert doc.issuer.provider_id == billed.providers[Service.MAINTENANCE]
        assert doc.due_on == date(2026, 4, 10)


async def test_a_document_is_due_on_its_providers_due_day_the_earliest_of_its_payees(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    made = await town(conn, accounts=24, months=3, seed=6)
    await bill(conn, PERIOD, Selection(region=made.spec.region), "test")
    accounts = await account_ids(conn, made)
    for provider in set(made.providers.values()):
        await provider_terms(conn, provider, due_day=31)
    # April has 30 days: the due day 31 falls on its last
    docs = await payment_documents(conn, PERIOD, accounts)
    assert docs and {d.due_on for d in docs} == {date(2026, 4, 30)}
    await provider_terms(conn, made.providers[Service.WASTE], due_day=20)
    docs = await payment_documents(conn, PERIOD, accounts)
    assert {d.due_on for d in docs} == {date(2026, 4, 20)}


async def test_reference_information_comes_with_the_document(
    conn: psycopg.AsyncConnection[Any], billed: Town,
) -> None:
    docs = await payment_documents(conn, PERIOD, await account_ids(conn, billed))
    with_readings = [d for d in docs if any(r.method == "meter" for r in d.readings)]
    assert with_readings
    reading = next(r for r in with_readings[0].readings if r.method == "meter")
    assert reading.previous is not None and reading.current is not None
    assert reading.consumption == reading.current - reading.previous
    line = next(line for line in with_readings[0].lines
                if line.service == reading.service and not line.common)
    assert line.volume is not None and line.volume >= reading.consumption
    assert any(d.common_volumes for d in docs) and all(d.norms for d in docs)


async def test_the_qr_of_a_billed_document_carries_its_account_and_sum(
    conn: psycopg.AsyncConnection[Any], billed: Town, tmp_path: Path,
) -> None:
    (first, *_) = await account_ids(conn, billed)
    doc = await payment_document(conn, PERIOD, first)
    fields = parse(decoded_qr(render_pdf(doc), tmp_path))
    assert fields["PersAcc"] == first and fields["PaymPeriod"] == "032026"
    assert Decimal(fields["Sum"]) / 100 == doc.to_pay


async def test_an_account_not_billed_has_no_document(
    conn: psycopg.AsyncConnection[Any], billed: Town,
) -> None:
    with pytest.raises(NotFound, match="has no bill for 2026-04"):
        await payment_document(conn, date(2026, 4, 1), (await account_ids(conn, billed))[0])


def test_documents_and_exports_of_a_selection_from_the_command_line(
    billed: Town, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METERLINE_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    try:
        house = ["--region", billed.spec.region]
        result = runner.invoke(app, ["documents", "--period", "2026-03", "--out",
                                     str(tmp_path / "pdf"), "--processes", "2",
                                     "--no-progress", *house])
        assert result.exit_code == 0, result.output
        assert f"60 documents of 2026-03 in {tmp_path / 'pdf'}" in result.output
        pdfs = sorted((tmp_path / "pdf").glob("*.pdf"))
        assert len(pdfs) == 60 and pdfs[0].name == f"{billed.spec.prefix}00000000-2026-03.pdf"
        assert all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)

        for kind in ("csv", "json", "gis"):
            out = tmp_path / f"export.{kind}"
            result = runner.invoke(app, ["export", "--period", "2026-03", "--format", kind,
                                         "--out", str(out), *house])
            assert result.exit_code == 0, result.output
            assert f"60 documents of 2026-03 exported to {out} ({kind})" in result.output
        rows = list(csv.DictReader((tmp_path / "export.csv").open(encoding="utf-8")))
        assert len({r["account_id"] for r in rows}) == 60
        gis = json.loads((tmp_path / "export.gis").read_text(encoding="utf-8"))
        assert len(gis) == 60 and all(d["Расчётный период"] == "03.2026" for d in gis)
        printed = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
        assert sum(Decimal(d["to_pay"]) for d in printed) == sum(
            Decimal(r["line_total"]) for r in rows)
    finally:
        get_settings.cache_clear()
