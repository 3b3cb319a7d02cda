"""Exports of a period's payment documents: CSV and JSON for print shops, and the attribute
set the state housing information system (ГИС ЖКХ) takes for a payment document.

Each export streams: it takes documents one by one and writes as it goes, so a million
documents never sit in memory. Money is written as it is shown, roubles with kopecks
(``1234.56``, a dot, no spaces); volumes with up to 6 decimals.

The ГИС ЖКХ attribute set and where each attribute comes from: GIS_ZHKH.md beside this file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TextIO

from meterline.documents.model import PaymentDocument

CSV_COLUMNS = (
    "document_id", "account_id", "els", "period", "payer_name", "address", "area",
    "residents", "service", "service_name", "common", "provider_id", "unit", "volume", "tariff",
    "charged", "recalculation", "recalculation_reason", "benefit", "line_total",
    "provider_to_pay", "document_to_pay", "due_on",
)


def _number(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class Export:
    """An export being written: ``write`` documents batch after batch, then ``close``.
    ``kind``: ``csv`` or ``json`` (print shops) or ``gis`` (ГИС ЖКХ)."""

    def __init__(self, kind: str, out: TextIO) -> None:
        if kind not in ("csv", "json", "gis"):
            raise ValueError(f"unknown export {kind!r}: csv, json or gis")
        self.kind, self.out, self.count = kind, out, 0
        if kind == "csv":
            self._csv = csv.writer(out)
            self._csv.writerow(CSV_COLUMNS)
        else:
            out.write("[")

    def write(self, documents: Iterable[PaymentDocument]) -> None:
        for doc in documents:
            if self.kind == "csv":
                self._csv.writerows(_csv_rows(doc))
            else:
                shape = gis_document if self.kind == "gis" else document_json
                self.out.write(",\n" if self.count else "\n")
                self.out.write(json.dumps(shape(doc), ensure_ascii=False))
            self.count += 1

    def close(self) -> int:
        if self.kind != "csv":
            self.out.write("\n]\n")
        return self.count


def _csv_rows(doc: PaymentDocument) -> Iterable[tuple[object, ...]]:
    """One row per line of the document, the document's own fields repeated."""
    to_pay = {total.payee.provider_id: total.to_pay for total in doc.payees}
    for line in doc.lines:
        yield (doc.document_id, doc.account_id, doc.els or "", f"{doc.period:%Y-%m}",
               doc.payer_name, doc.address, _number(doc.area) or "", doc.residents,
               line.service, line.name, int(line.common), line.provider_id, line.unit,
               _number(line.volume) or "", _number(line.tariff) or "", _number(line.charged),
               _number(line.recalculation), line.recalculation_reason, _number(line.benefit),
               _number(line.total), _number(to_pay.get(line.provider_id)),
               _number(doc.to_pay), f"{doc.due_on:%Y-%m-%d}" if doc.due_on else "")


def print_shop_csv(documents: Iterable[PaymentDocument], out: TextIO) -> int:
    """CSV for print shops: one row per line of each document; the number of documents."""
    export = Export("csv", out)
    export.write(documents)
    return export.close()


def document_json(doc: PaymentDocument) -> dict[str, Any]:
    """Everything a print shop lays out, as plain JSON values (money as strings)."""
    return {
        "document_id": doc.document_id, "housing_id": doc.housing_id,
        "account_id": doc.account_id, "els": doc.els, "period": f"{doc.period:%Y-%m}",
        "payer_name": doc.payer_name, "address": doc.address, "area": _number(doc.area),
        "residents": doc.residents,
        "issuer": {"provider_id": doc.issuer.provider_id, "name": doc.issuer.name,
                   "inn": doc.issuer.inn, "kpp": doc.issuer.kpp,
                   "bank_name": doc.issuer.bank_name, "bic": doc.issuer.bic,
                   "corr_account": doc.issuer.corr_account,
                   "settlement_account": doc.issuer.settlement_account,
                   "address": doc.issuer.address, "phone": doc.issuer.phone,
                   "email": doc.issuer.email, "website": doc.issuer.website},
        "payees": [{"provider_id": t.payee.provider_id, "name": t.payee.name,
                    "inn": t.payee.inn, "kpp": t.payee.kpp,
                    "settlement_account": t.payee.settlement_account, "bic": t.payee.bic,
                    "charged": _number(t.charged), "debt": _number(t.debt),
                    "paid": _number(t.paid), "penalties": _number(t.penalties),
                    "instalment": _number(t.instalment), "to_pay": _number(t.to_pay)}
                   for t in doc.payees],
        "lines": [{"service": line.service.value, "name": line.name, "common": line.common,
                   "provider_id": line.provider_id, "unit": line.unit,
                   "volume": _number(line.volume), "tariff": _number(line.tariff),
                   "charged": _number(line.charged),
                   "recalculation": _number(line.recalculation),
                   "recalculation_reason": line.recalculation_reason,
                   "benefit": _number(line.benefit), "total": _number(line.total),
                   "method": line.method}
                  for line in doc.lines],
        "readings": [{"meter_id": m.meter_id, "service": m.service.value, "unit": m.unit,
                      "previous": _number(m.previous), "current": _number(m.current),
                      "consumption": _number(m.consumption), "method": m.method,
                      "source": m.source} for m in doc.readings],
        "common_volumes": [{"service": v.service.value, "unit": v.unit,
                            "house": _number(v.house_volume),
                            "individual": _number(v.individual_volume),
                            "common": _number(v.common_volume),
                            "norm_cap": _number(v.norm_cap)} for v in doc.common_volumes],
        "to_pay": _number(doc.to_pay),
        "due_on": f"{doc.due_on:%Y-%m-%d}" if doc.due_on else None,
    }


def gis_document(doc: PaymentDocument) -> dict[str, Any]:
    """The ГИС ЖКХ attribute set of one document (see the mapping above)."""
    inn = {t.payee.provider_id: t.payee.inn for t in doc.payees}
    return {
        "ЕЛС": doc.els,
        "ИЖКУ": doc.housing_id,
        "ИПД": doc.document_id,
        "Номер лицевого счёта": doc.account_id,
        "Расчётный период": f"{doc.period:%m.%Y}",
        "Адрес помещения": doc.address,
        "Общая площадь": _number(doc.area),
        "Количество проживающих": doc.residents,
        "Исполнитель": {"Наименование": doc.issuer.name, "ИНН": doc.issuer.inn,
                        "КПП": doc.issuer.kpp, "БИК": doc.issuer.bic,
                        "Расчётный счёт": doc.issuer.settlement_account},
        "Сумма к оплате за расчётный период": _number(doc.to_pay),
        "Услуги": [{
            "Вид услуги": line.service.value,
            "Наименование": line.name,
            "ИНН исполнителя": inn.get(line.provider_id),
            "Вид потребления": "СОИ" if line.common else "индивидуальное",
            "Способ определения объёма": line.method,
            "Объём": _number(line.volume),
            "Единица измерения": line.unit,
            "Тариф": _number(line.tariff),
            "Начислено за расчётный период": _number(line.charged),
            "Перерасчёты": _number(line.recalculation),
            "Основание перерасчёта": line.recalculation_reason or None,
            "Льготы, субсидии, скидки": _number(line.benefit),
            "Итого к оплате за расчётный период": _number(line.total),
            "Задолженность за предыдущие периоды": _number(line.debt),
            "Пени": _number(line.penalties),
        } for line in doc.lines],
    }


def json_lines(documents: Iterable[PaymentDocument], out: TextIO, *, gis: bool = False) -> int:
    """A JSON array written document by document (print shops' JSON, or the ГИС ЖКХ set)."""
    export = Export("gis" if gis else "json", out)
    export.write(documents)
    return export.close()
