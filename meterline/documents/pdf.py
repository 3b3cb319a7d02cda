"""The payment document as a PDF in Russian (reportlab), with a payment QR for each payee.

Drawn straight on the canvas (no flowables: a document is a few fixed sections, and drawing
is what makes bulk rendering fast), in DejaVu Sans, which has Cyrillic and is a Debian
package (fonts-dejavu-core). The content flows from section to section and goes on to a new
page when one is full. Rendering is deterministic: the same document gives the same bytes.
"""

from __future__ import annotations

import io
import string
import zlib
from collections.abc import Sequence
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from meterline.documents.model import SERVICE_NAMES, PaymentDocument, period_name
from meterline.documents.qr import PaymentOrder, from_document_sum, payment_qr
from meterline.errors import Invalid

DEFAULT_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT, BOLD = "DejaVuSans", "DejaVuSans-Bold"
WIDTH, HEIGHT = A4
MARGIN = 28.0
QR_SIZE = 96.0

METHODS = {"meter": "по счётчику", "average": "по среднему", "norm": "по нормативу",
           "norm_raised": "по нормативу с повышающим коэф.", "house_meter": "по ОДПУ",
           "area": "по площади", "residents": "по числу жильцов",
           "rating": "по прибору учёта (дистанционно)", "": ""}


# The characters documents show, given to each font's subset in this order at the start of
# every document (ASCII is there from the start). A document's font subsets are then the same
# from one document to the next, so a process builds and compresses each subset once instead
# of once a document (building and compressing them was about a third of a document's time).
# A character outside it is added to the document's subset as before (and that subset built).
ALPHABET = (string.printable[:95] + "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
            "абвгдеёжзийклмнопрстуфхцчшщъыьэюя" + "№«»—–·²³°„“”…")


class _SharedFlate:
    """The PDF's FlateDecode filter for the fonts' subsets: the same subset compressed once."""

    pdfname = "FlateDecode"

    @staticmethod
    @lru_cache(maxsize=16)
    def encode(content: bytes) -> bytes:
        return zlib.compress(content)

    @staticmethod
    def decode(encoded: bytes) -> bytes:
        return zlib.decompress(encoded)


def _share_subsets(font: TTFont) -> None:
    """``font``'s subsets built once per process for the same characters, their streams
    compressed once (reportlab builds and compresses them again for every document)."""
    face: Any = font.face
    build = lru_cache(maxsize=16)(lambda chars: type(face).makeSubset(face, list(chars)))
    add = face.addSubsetObjects

    def add_shared(doc: Any, fontname: str, subset: list[int]) -> Any:
        reference = add(doc, fontname, subset)
        stream = doc.idToObject.get(f"fontFile:{face.filename}({fontname})")
        if stream is not None and getattr(stream, "filters", None):
            stream.filters = [_SharedFlate]
        return reference

    face.makeSubset = lambda subset: build(tuple(subset))
    face.addSubsetObjects = add_shared


@cache
def register_fonts(font_dir: Path = DEFAULT_FONT_DIR) -> None:
    """Register DejaVu Sans (regular and bold) once per process."""
    rl_config.useA85 = 0  # binary streams: smaller and faster than ASCII85 text
    for name, file in ((FONT, "DejaVuSans.ttf"), (BOLD, "DejaVuSans-Bold.ttf")):
        path = font_dir / file
        if not path.exists():
            raise Invalid(f"font {path} is missing: install Debian's fonts-dejavu-core or set "
                          "METERLINE_DOCUMENT_FONT_DIR", field=["document_font_dir"])
        font = TTFont(name, str(path))
        _share_subsets(font)
        pdfmetrics.registerFont(font)


def _prime(canvas: Canvas) -> None:
    """Give the document's fonts the alphabet's characters, in its order, before any text."""
    for name in (FONT, BOLD):
        pdfmetrics.getFont(name).splitString(ALPHABET, canvas._doc)


def money(amount: Decimal) -> str:
    """``1234.5`` -> ``1 234,50`` (roubles as Russian documents write them)."""
    return f"{amount:,.2f}".replace(",", " ").replace(".", ",")


def quantity(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return text.replace(",", " ").replace(".", ",")


def payment_order(doc: PaymentDocument) -> PaymentOrder:
    """The document's payment QR: exactly its payee (the issuer, who collects for every
    provider of the document and splits the payment between them), the payer's account, the
    period and the sum to pay."""
    p = doc.issuer
    if not (p.settlement_account and p.bic and p.corr_account and p.bank_name):
        raise Invalid(f"provider {p.provider_id} has no bank details: its documents cannot "
                      "carry a payment QR", code="no-bank-details", field=["issuer"])
    last, first, middle = ([*doc.payer_name.split(maxsplit=2), None, None, None])[:3]
    return PaymentOrder(
        name=p.name, personal_acc=p.settlement_account, bank_name=p.bank_name, bic=p.bic,
        corresp_acc=p.corr_account, payee_inn=p.inn, kpp=p.kpp, pers_acc=doc.account_id,
        sum_kopecks=from_document_sum(doc.to_pay),
        purpose=f"Оплата ЖКУ за {period_name(doc.period)}, л/с {doc.account_id}",
        period=doc.period, last_name=last, first_name=first,
        middle_name=middle, document_id=doc.document_id)


class _Page:
    """A canvas with a cursor that goes down the page and on to the next."""

    def __init__(self, canvas: Canvas) -> None:
        self.c = canvas
        self.y = HEIGHT - MARGIN

    def need(self, height: float) -> None:
        if self.y - height < MARGIN:
            self.c.showPage()
            self.y = HEIGHT - MARGIN

    def text(self, x: float, text: str, size: float = 7.5, bold: bool = False,
             right: bool = False) -> None:
        self.c.setFont(BOLD if bold else FONT, size)
        if right:
            self.c.drawRightString(x, self.y, text)
        else:
            self.c.drawString(x, self.y, text)

    def heading(self, text: str) -> None:
        self.need(24)
        self.y -= 14
        self.c.setFillGray(0.9)
        self.c.rect(MARGIN, self.y - 3, WIDTH - 2 * MARGIN, 12, stroke=0, fill=1)
        self.c.setFillGray(0)
        self.text(MARGIN + 3, text, 8, bold=True)
        self.y -= 4

    def row(self, columns: Sequence[tuple[float, str, bool]], size: float = 7,
            bold: bool = False) -> None:
        """One table row: (x, text, right-aligned) per cell."""
        self.need(10)
        self.y -= 9
        for x, text, right in columns:
            self.text(x, text, size, bold, right)

    def rule(self) -> None:
        self.c.setLineWidth(0.3)
        self.c.line(MARGIN, self.y - 2.5, WIDTH - MARGIN, self.y - 2.5)

    def qr(self, modules: npt.NDArray[np.uint8], x: float, top: float, size: float) -> None:
        """The QR code as a one-bit image, one pixel a module (a few hundred bytes, where
        vector squares would take thousands of path operators)."""
        image = np.pad(modules, 4, constant_values=255)  # the quiet zone the standard asks for
        self.c.drawImage(ImageReader(Image.fromarray(image).convert("1")), x, top - size,
                         size, size)


def _header(page: _Page, doc: PaymentDocument) -> None:
    page.y -= 12
    page.text(MARGIN, "ЕДИНЫЙ ПЛАТЁЖНЫЙ ДОКУМЕНТ", 12, bold=True)
    page.text(WIDTH - MARGIN, f"за {period_name(doc.period)} г.", 11, bold=True, right=True)
    page.y -= 11
    page.text(WIDTH - MARGIN, f"ИПД {doc.document_id}", 7.5, right=True)
    page.heading("1. Сведения о плательщике и исполнителе услуг")
    issuer = doc.issuer
    left = [("Плательщик", doc.payer_name), ("Адрес", doc.address),
            ("Лицевой счёт", doc.account_id), ("ЕЛС", doc.els or "—"),
            ("ИЖКУ", doc.housing_id),
            ("Площадь", f"{quantity(doc.area)} м²" if doc.area is not None else "—"),
            ("Зарегистрировано", f"{doc.residents} чел.")]
    right = [("Исполнитель", issuer.name), ("ИНН / КПП", f"{issuer.inn} / {issuer.kpp or '—'}"),
             ("Адрес", issuer.address or "—"), ("Телефон", issuer.phone or "—"),
             ("Эл. почта", issuer.email or "—"), ("Сайт", issuer.website or "—"),
             ("Срок оплаты", f"до {doc.due_on:%d.%m.%Y}" if doc.due_on else "—")]
    middle = WIDTH / 2
    for (lk, lv), (rk, rv) in zip(left, right, strict=True):
        page.row([(MARGIN, lk, False), (MARGIN + 72, lv, False),
                  (middle + 4, rk, False), (middle + 72, rv[:60], False)])


def _payees(page: _Page, doc: PaymentDocument) -> None:
    page.heading("2. Платёжные реквизиты")
    page.need(QR_SIZE + 6)
    top = page.y - 2
    page.qr(payment_qr(payment_order(doc)), MARGIN, top, QR_SIZE)
    issuer = doc.issuer
    x = MARGIN + QR_SIZE + 8
    lines = [("Получатель платежа (платёжный агент всех исполнителей ниже)", False),
             (issuer.name, True), (f"ИНН {issuer.inn}  КПП {issuer.kpp or '—'}", False),
             (f"р/с {issuer.settlement_account} в {issuer.bank_name}", False),
             (f"БИК {issuer.bic}  к/с {issuer.corr_account}", False),
             (f"Лицевой счёт {doc.account_id}   ИПД {doc.document_id}", False)]
    y = top - 9
    for text, bold in lines:
        page.c.setFont(BOLD if bold else FONT, 7.5)
        page.c.drawString(x, y, text)
        y -= 10
    page.c.setFont(BOLD, 11)
    page.c.drawString(x, y - 6, f"Итого к оплате: {money(doc.to_pay)} руб.")
    page.y = top - QR_SIZE - 2
    cols = ((MARGIN + 2, False), (MARGIN + 172, False), (MARGIN + 270, False),
            (MARGIN + 370, False), (WIDTH - MARGIN, True))
    page.row([(x, t, r) for (x, r), t in zip(cols, (
        "Исполнитель", "ИНН / КПП", "Расчётный счёт", "Банк, БИК", "К оплате"), strict=True)],
        bold=True)
    for total in doc.payees:
        p = total.payee
        page.row([(x, t, r) for (x, r), t in zip(cols, (
            p.name[:38], f"{p.inn} / {p.kpp or '—'}", p.settlement_account,
            f"{p.bank_name[:24]}, {p.bic}", money(total.to_pay)), strict=True)])
        contacts = "   ".join(c for c in (p.address, p.phone, p.email, p.website) if c)
        if contacts:
            page.row([(MARGIN + 8, contacts[:150], False)], size=6)


CALC = ((MARGIN + 2, False), (MARGIN + 190, False), (MARGIN + 262, True), (MARGIN + 314, True),
        (MARGIN + 370, True), (MARGIN + 418, True), (MARGIN + 464, True), (WIDTH - MARGIN, True))


def _calculation(page: _Page, doc: PaymentDocument) -> None:
    page.heading("3. Расчёт размера платы за содержание жилого помещения и коммунальные услуги")
    page.row([(x, t, r) for (x, r), t in zip(CALC, (
        "Вид услуги", "Ед. изм.", "Объём", "Тариф", "Начислено", "Перерасч.", "Льготы",
        "Итого"), strict=True)], bold=True)
    page.rule()
    for line in doc.lines:
        page.row([(x, t, r) for (x, r), t in zip(CALC, (
            line.name[:44], line.unit, quantity(line.volume),
            "" if line.tariff is None else money(line.tariff), money(line.charged),
            money(line.recalculation), money(line.benefit), money(line.total)), strict=True)])
        if len(line.parts) > 1:
            for part in line.parts:
                page.row([(x, t, r) for (x, r), t in zip(CALC[:5], (
                    f"   в т. ч. {part.name}"[:48], line.unit, quantity(part.volume),
                    money(part.tariff), money(part.charged)), strict=True)], size=6.5)
    page.rule()
    page.y -= 3
    for total in doc.payees:
        page.row([(MARGIN + 2, total.payee.name[:60], False)], bold=True)
        page.row([(MARGIN + 10, f"начислено {money(total.charged)}   долг на начало периода "
                                f"{money(total.debt)}   оплачено {money(total.paid)}   пени "
                                f"{money(total.penalties)}   рассрочка {money(total.instalment)}",
                   False),
                  (WIDTH - MARGIN, f"к оплате {money(total.to_pay)}", True)])
    page.y -= 4
    page.row([(MARGIN + 2, "ИТОГО К ОПЛАТЕ", False),
              (WIDTH - MARGIN, f"{money(doc.to_pay)} руб.", True)], size=9, bold=True)
    reasons = [line for line in doc.lines if line.recalculation and line.recalculation_reason]
    for line in reasons:
        page.row([(MARGIN + 2, f"Перерасчёт «{line.name}»: {line.recalculation_reason}"[:130],
                   False)], size=6.5)


def _reference(page: _Page, doc: PaymentDocument) -> None:
    page.heading("4. Справочная информация")
    cols = ((MARGIN + 2, False), (MARGIN + 100, False), (MARGIN + 310, True),
            (MARGIN + 370, True), (MARGIN + 430, True), (MARGIN + 440, False))
    page.row([(x, t, r) for (x, r), t in zip(cols, (
        "Прибор учёта", "Услуга", "Предыдущие", "Текущие", "Расход", "Способ"), strict=True)],
        bold=True)
    for m in doc.readings:
        page.row([(x, t, r) for (x, r), t in zip(cols, (
            m.meter_id, f"{SERVICE_NAMES[m.service]}, {m.unit}", quantity(m.previous),
            quantity(m.current), quantity(m.consumption), METHODS.get(m.method, m.method)),
            strict=True)])
    if doc.common_volumes:
        page.y -= 3
        page.row([(x, t, r) for (x, r), t in zip(cols, (
            "Объёмы дома", "Услуга", "По ОДПУ", "Индивид.", "На СОИ", "Норматив СОИ"),
            strict=True)], bold=True)
        for v in doc.common_volumes:
            page.row([(x, t, r) for (x, r), t in zip(cols, (
                "", f"{SERVICE_NAMES[v.service]}, {v.unit}", quantity(v.house_volume),
                quantity(v.individual_volume), quantity(v.common_volume),
                quantity(v.norm_cap)), strict=True)])
    for service, scope, amount, unit in doc.norms:
        what = "на общедомовые нужды, на м² общего имущества" if scope == "common" else (
            "индивидуальный")
        page.row([(MARGIN + 2, f"Норматив «{SERVICE_NAMES[service]}» {what}: "
                               f"{quantity(amount)} {unit} в месяц", False)])


def _instalments(page: _Page, doc: PaymentDocument) -> None:
    page.heading("5. Рассрочки и отсрочки")
    if not doc.instalments:
        page.row([(MARGIN + 2, "Рассрочки и отсрочки платежей не предоставлялись.", False)])
    for item in doc.instalments:
        page.row([(MARGIN + 2, f"{item.provider_id}: {item.description}", False),
                  (WIDTH - MARGIN, f"остаток {money(item.remaining)}, к оплате в периоде "
                                   f"{money(item.due_this_period)}", True)])
    for note in doc.notes:
        page.row([(MARGIN + 2, note[:140], False)], size=6.5)


def file_name(doc: PaymentDocument) -> str:
    """What a document's PDF is called: ``<account>-<YYYY-MM>.pdf``."""
    return f"{doc.account_id}-{doc.period:%Y-%m}.pdf"


def render_pdf(doc: PaymentDocument, font_dir: Path = DEFAULT_FONT_DIR, *,
               shared_subsets: bool = True) -> bytes:
    """The document as PDF bytes (``shared_subsets=False``: font subsets of the document's
    own characters in the order they come, built for this document alone; the benchmark's
    baseline)."""
    register_fonts(font_dir)
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True, pageCompression=1)
    canvas.setTitle(f"ЕПД {doc.account_id} за {period_name(doc.period)}")
    if shared_subsets:
        _prime(canvas)
    page = _Page(canvas)
    _header(page, doc)
    _payees(page, doc)
    _calculation(page, doc)
    _reference(page, doc)
    _instalments(page, doc)
    canvas.showPage()
    canvas.save()
    return out.getvalue()
