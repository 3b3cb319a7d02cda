"""Payment QR text of GOST R 56042-2014 (DOMAIN.md §6), from the standard's rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from meterline.documents.qr import PaymentOrder, from_document_sum, parse, payment_text
from meterline.errors import Invalid

ORDER = PaymentOrder(
    name="МУП «Водоканал»", personal_acc="40702810900000000002", bank_name="ПАО Сбербанк",
    bic="044525225", corresp_acc="30101810400000000225", payee_inn="7701000002",
    kpp="770101001", pers_acc="T00000042", sum_kopecks=77646,
    purpose="Оплата ЖКУ за март 2026, л/с T00000042", period=date(2026, 3, 1),
    last_name="Иванов", first_name="Иван", middle_name="Иванович",
    document_id="5000000043-0326-001")


def test_header_then_the_mandatory_block_in_order_then_housing_fields() -> None:
    text = payment_text(ORDER)
    assert text.startswith("ST00012|Name=МУП «Водоканал»|PersonalAcc=40702810900000000002|"
                           "BankName=ПАО Сбербанк|BIC=044525225|CorrespAcc=30101810400000000225|")
    assert not text.endswith("|")
    fields = parse(text)
    assert fields["Sum"] == "77646"  # kopecks, digits only
    assert fields["PersAcc"] == "T00000042"
    assert fields["PaymPeriod"] == "032026"
    assert fields["TechCode"] == "02"  # housing and utilities
    assert list(fields)[:5] == ["Name", "PersonalAcc", "BankName", "BIC", "CorrespAcc"]


def test_missing_optional_fields_are_left_out() -> None:
    fields = parse(payment_text(replace(ORDER, kpp=None, middle_name=None)))
    assert "KPP" not in fields and "MiddleName" not in fields and "LastName" in fields


def test_a_value_with_the_separator_switches_to_one_no_value_contains() -> None:
    text = payment_text(replace(ORDER, purpose="ЖКУ | март"))
    assert text[7] == "#" and "|Name=" not in text
    assert parse(text)["Purpose"] == "ЖКУ | март"


def test_windows_1251_is_encoding_1() -> None:
    text = payment_text(ORDER, encoding="1")
    assert text.startswith("ST00011|")
    text.encode("cp1251")  # every character has its byte


@pytest.mark.parametrize(("change", "message"), [
    ({"personal_acc": "4070281"}, "PersonalAcc must be 20 digits"),
    ({"bic": "04452522X"}, "BIC must be 9 digits"),
    ({"bank_name": "Б" * 46}, "BankName must be 1 to 45 characters"),
    ({"name": "Н" * 161}, "Name must be 1 to 160 characters"),
    ({"purpose": "П" * 211}, "Purpose must be at most 210 characters"),
])
def test_fields_out_of_the_standard_are_refused(change: dict[str, str], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        payment_text(replace(ORDER, **change))  # type: ignore[arg-type]


def test_the_mandatory_block_is_at_most_300_bytes() -> None:
    # 160 Cyrillic characters are 320 bytes in UTF-8, 160 in windows-1251
    long_name = replace(ORDER, name="Ж" * 160)
    with pytest.raises(Invalid, match="mandatory block is over 300 bytes"):
        payment_text(long_name)
    assert payment_text(long_name, encoding="1").startswith("ST00011|Name=ЖЖЖ")


def test_sums_are_whole_kopecks() -> None:
    assert from_document_sum(Decimal("6153.86")) == 615386
    with pytest.raises(Invalid, match="not a whole number of kopecks"):
        from_document_sum(Decimal("1.005"))
