"""Exports of payment documents for print shops and for ГИС ЖКХ."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from decimal import Decimal

from billing.documents.exports import CSV_COLUMNS, json_lines, print_shop_csv
from tests.factories import payment_document


def test_csv_has_a_row_per_line_that_adds_up_to_the_document() -> None:
    docs = [payment_document(), payment_document(account_id="T00000043", els="5000000044")]
    out = io.StringIO()
    assert print_shop_csv(docs, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 2 * len(docs[0].lines)
    first = [r for r in rows if r["account_id"] == "T00000042"]
    assert sum(Decimal(r["line_total"]) for r in first) == sum(
        (t.charged for t in docs[0].payees), Decimal(0))
    cold = first[1]
    assert (cold["service"], cold["volume"], cold["tariff"], cold["charged"],
            cold["recalculation"], cold["line_total"], cold["document_to_pay"]) == (
        "cold_water", "7.2", "45.67", "328.82", "-12.40", "316.42", "6153.86")
    assert first[2]["common"] == "1" and first[2]["service_name"].endswith("(СОИ)")


def test_json_for_print_shops_is_one_array_streamed() -> None:
    out = io.StringIO()
    assert json_lines((payment_document() for _ in range(3)), out) == 3
    docs = json.loads(out.getvalue())
    assert len(docs) == 3
    doc = docs[0]
    assert doc["to_pay"] == "6153.86" and doc["period"] == "2026-03"
    assert doc["issuer"]["settlement_account"] == "40702810900000000001"
    assert [p["to_pay"] for p in doc["payees"]] == ["1743.03", "776.46", "3634.37"]


def test_gis_attributes_per_document_and_per_service() -> None:
    base = payment_document()
    lines = tuple(replace(line, debt=Decimal("100.00"), penalties=Decimal("1.50"))
                  if line.service == "cold_water" and not line.common else line
                  for line in base.lines)
    out = io.StringIO()
    json_lines([replace(base, lines=lines)], out, gis=True)
    (doc,) = json.loads(out.getvalue())
    assert (doc["ЕЛС"], doc["ИЖКУ"], doc["ИПД"], doc["Расчётный период"]) == (
        "5000000043", "5000000043-01", "5000000043-0326-001", "03.2026")
    assert doc["Сумма к оплате за расчётный период"] == "6153.86"
    cold = doc["Услуги"][1]
    assert cold == {
        "Вид услуги": "cold_water", "Наименование": "Холодное водоснабжение",
        "ИНН исполнителя": "7701000002", "Вид потребления": "индивидуальное",
        "Способ определения объёма": "meter", "Объём": "7.2", "Единица измерения": "м³",
        "Тариф": "45.67", "Начислено за расчётный период": "328.82", "Перерасчёты": "-12.40",
        "Основание перерасчёта": "показания после 2 месяцев по среднему",
        "Льготы, субсидии, скидки": "0.00", "Итого к оплате за расчётный период": "316.42",
        "Задолженность за предыдущие периоды": "100.00", "Пени": "1.50"}
    assert doc["Услуги"][2]["Вид потребления"] == "СОИ"
