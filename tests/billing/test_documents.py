"""The payment document as a PDF (DOMAIN.md §5) and its payment QR (§6), read back the way a
person and a bank app would: the text of the pages, and the QR decoded by zbar from the
pages rendered by poppler."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.documents.model import SERVICE_NAMES, PaymentDocument
from meterline.documents.pdf import money, quantity, render_pdf
from meterline.documents.qr import ENCODINGS, parse
from meterline.errors import Invalid
from tests.factories import payment_document


def pdf_text(pdf: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True,
                          check=True).stdout.decode()


def decoded_qr(pdf: bytes, tmp_path: Path) -> str:
    """The QR code of the first page rendered at 300 dpi, decoded by zbarimg from its raw
    bytes in the encoding its header names."""
    (tmp_path / "doc.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "300", "-png", "-f", "1", "-l", "1",
                    str(tmp_path / "doc.pdf"), str(tmp_path / "page")], check=True)
    (page,) = tmp_path.glob("page*.png")
    found = subprocess.run(["zbarimg", "--raw", "-q", "-Sbinary", "--nodbus", str(page)],
                           capture_output=True, check=True).stdout
    assert found.startswith(b"ST0001") and found.count(b"ST0001") == 1
    return found.decode(ENCODINGS[chr(found[6])])


@pytest.fixture(scope="module")
def doc() -> PaymentDocument:
    return payment_document()


@pytest.fixture(scope="module")
def pdf(doc: PaymentDocument) -> bytes:
    return render_pdf(doc)


def test_every_mandatory_section_is_present(pdf: bytes) -> None:
    text = pdf_text(pdf)
    for section in ("1. Сведения о плательщике и исполнителе услуг", "2. Платёжные реквизиты",
                    "3. Расчёт размера платы", "4. Справочная информация",
                    "5. Рассрочки и отсрочки"):
        assert section in text
    assert text.index("1. Сведения") < text.index("2. Платёжные") < text.index("3. Расчёт") \
        < text.index("4. Справочная") < text.index("5. Рассрочки")


def test_payer_account_period_and_identifiers(doc: PaymentDocument, pdf: bytes) -> None:
    text = pdf_text(pdf)
    for shown in (doc.payer_name, doc.address, doc.account_id, doc.els, doc.document_id,
                  doc.housing_id, "за март 2026 г.", "3 чел.", "54,3 м²", "до 10.04.2026"):
        assert shown is not None and shown in text


def test_each_payee_with_bank_details_and_contacts(doc: PaymentDocument, pdf: bytes) -> None:
    text = pdf_text(pdf)
    for total in doc.payees:
        p = total.payee
        for shown in (p.name, p.inn, p.kpp, p.settlement_account, p.bic, p.corr_account,
                      p.bank_name, p.address, p.phone, p.email, p.website):
            assert shown is not None and shown in text
        line = next(line for line in text.splitlines()
                    if line.startswith(p.name) and p.settlement_account in line)
        assert line.endswith(money(total.to_pay))


def test_each_service_line_with_tariff_volume_charge_recalculation_benefit_and_total(
    doc: PaymentDocument, pdf: bytes
) -> None:
    rows = [line.split() for line in pdf_text(pdf).splitlines()]
    for item in doc.lines:
        name = item.name.split()
        row = next(r for r in rows if r[:len(name)] == name
                   and (item.common or "(СОИ)" not in r))
        figures = " ".join(row[len(name):])
        assert figures.startswith(f"{item.unit} {quantity(item.volume)}")
        for amount in (item.tariff, item.charged, item.recalculation, item.benefit,
                       item.total):
            assert amount is not None and money(amount) in figures
    # individual and common-property consumption on separate lines
    assert SERVICE_NAMES[doc.lines[2].service] + " (СОИ)" in pdf_text(pdf)


def test_recalculation_reason_debt_penalties_and_total_to_pay(
    doc: PaymentDocument, pdf: bytes
) -> None:
    text = pdf_text(pdf)
    assert "Перерасчёт «Холодное водоснабжение»: показания после 2 месяцев по среднему" in text
    assert "долг на начало периода 2 000,00" in text and "пени 3,17" in text
    assert doc.to_pay == Decimal("6153.86")
    assert "ИТОГО К ОПЛАТЕ" in text and "6 153,86 руб." in text


def test_reference_information_and_instalments(doc: PaymentDocument, pdf: bytes) -> None:
    text = pdf_text(pdf)
    for shown in ("T00000042-cw", "120,5", "127,7", "по счётчику", "по среднему",
                  "1 010,2", "950,1", "60,1", "48,6", "6,935 м³ в месяц",
                  "Рассрочки и отсрочки платежей не предоставлялись."):
        assert shown in text


def test_the_qr_decodes_to_the_documents_payee_account_period_and_sum(
    doc: PaymentDocument, pdf: bytes, tmp_path: Path
) -> None:
    text = decoded_qr(pdf, tmp_path)
    fields = parse(text)
    assert text.startswith("ST00012|")
    assert fields["Name"] == doc.issuer.name
    assert fields["PersonalAcc"] == doc.issuer.settlement_account
    assert fields["BIC"] == doc.issuer.bic and fields["CorrespAcc"] == doc.issuer.corr_account
    assert fields["PersAcc"] == doc.account_id
    assert fields["PaymPeriod"] == "032026"
    assert fields["Sum"] == "615386" and Decimal(fields["Sum"]) / 100 == doc.to_pay
    assert fields["DocIdx"] == doc.document_id


def test_the_qr_carries_each_documents_own_account(tmp_path: Path) -> None:
    doc = payment_document(account_id="T00000099")
    assert parse(decoded_qr(render_pdf(doc), tmp_path))["PersAcc"] == "T00000099"


def test_rendering_is_deterministic(doc: PaymentDocument, pdf: bytes) -> None:
    assert render_pdf(doc) == pdf


def test_a_missing_font_is_named(doc: PaymentDocument, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match=r"DejaVuSans\.ttf is missing: install Debian's "
                                      r"fonts-dejavu-core"):
        render_pdf(doc, font_dir=tmp_path)


def test_an_issuer_without_bank_details_is_named(doc: PaymentDocument) -> None:
    issuer = replace(doc.issuer, settlement_account="")
    with pytest.raises(Invalid, match="provider uk has no bank details"):
        render_pdf(replace(doc, issuer=issuer))


def font_streams(pdf: bytes) -> list[bytes]:
    """The embedded font files of a PDF (the streams whose dictionary has a Length1)."""
    found = []
    for match in re.finditer(rb"/Length1 \d+.*?stream\r?\n", pdf, re.S):
        start = match.end()
        found.append(pdf[start:pdf.index(b"endstream", start)])
    return found


def test_documents_of_different_payers_embed_the_same_font_subsets() -> None:
    one = render_pdf(payment_document(payer_name="Щукин Ёжик Юрьевич"))
    two = render_pdf(payment_document(payer_name="Абрамова Эльза Фёдоровна",
                                      address="г. Чебоксары, ул. Цветочная, д. 7"))
    assert len(font_streams(one)) == 2 and font_streams(one) == font_streams(two)
    # each document its own subsets, as before: they differ with the characters used
    own = [render_pdf(payment_document(payer_name=n), shared_subsets=False)
           for n in ("Щукин Ёжик Юрьевич", "Абрамова Эльза Фёдоровна")]
    assert font_streams(own[0]) != font_streams(own[1])


def test_a_character_outside_the_shared_alphabet_is_still_shown() -> None:
    text = pdf_text(render_pdf(payment_document(payer_name="Ковальчук Ґанна Їжаківна")))
    assert "Ковальчук Ґанна Їжаківна" in text
