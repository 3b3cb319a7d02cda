"""Payment QR codes of GOST R 56042-2014 (DOMAIN.md §6): the text a bank app reads.

``ST0001`` + the encoding digit (1 windows-1251, 2 UTF-8, 3 KOI8-R), then ``|Key=Value``
pairs: the mandatory block first (Name, PersonalAcc, BankName, BIC, CorrespAcc, at most 300
bytes), then the additional fields housing bills use. The separator is ``|`` unless a value
contains one, then the first of a few others that no value contains. No trailing separator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import zxingcpp

from meterline.errors import Invalid

ENCODINGS = {"1": "cp1251", "2": "utf-8", "3": "koi8-r"}
SEPARATORS = "|#;:^~"
MANDATORY_BYTES = 300
HOUSING = "02"  # TechCode of housing and utility payments


@dataclass(frozen=True)
class PaymentOrder:
    """What one payment QR asks the payer's bank to pay."""

    name: str  # payee, ≤ 160
    personal_acc: str  # payee's settlement account, 20 digits
    bank_name: str  # ≤ 45
    bic: str  # 9 digits
    corresp_acc: str  # 20 digits
    payee_inn: str
    kpp: str | None
    pers_acc: str  # the payer's account with the payee
    sum_kopecks: int
    purpose: str  # ≤ 210
    period: date  # PaymPeriod, as MMYYYY
    payer_address: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    document_id: str | None = None  # ИПД, carried as DocIdx


def _check(order: PaymentOrder) -> None:
    rules = (
        ("Name", 1 <= len(order.name) <= 160, "1 to 160 characters"),
        ("PersonalAcc", len(order.personal_acc) == 20 and order.personal_acc.isdigit(),
         "20 digits"),
        ("BankName", 1 <= len(order.bank_name) <= 45, "1 to 45 characters"),
        ("BIC", len(order.bic) == 9 and order.bic.isdigit(), "9 digits"),
        ("CorrespAcc", len(order.corresp_acc) == 20 and order.corresp_acc.isdigit(), "20 digits"),
        ("Sum", order.sum_kopecks >= 0, "not negative"),
        ("Purpose", len(order.purpose) <= 210, "at most 210 characters"),
    )
    for key, ok, rule in rules:
        if not ok:
            raise Invalid(f"payment QR: {key} must be {rule}", field=["qr", key])


def pairs(order: PaymentOrder) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(mandatory, additional) key-value pairs of the order, in the standard's order."""
    mandatory = [("Name", order.name), ("PersonalAcc", order.personal_acc),
                 ("BankName", order.bank_name), ("BIC", order.bic),
                 ("CorrespAcc", order.corresp_acc)]
    additional: list[tuple[str, str | None]] = [
        ("PayeeINN", order.payee_inn), ("KPP", order.kpp), ("PersAcc", order.pers_acc),
        ("Sum", str(order.sum_kopecks)), ("Purpose", order.purpose),
        ("LastName", order.last_name), ("FirstName", order.first_name),
        ("MiddleName", order.middle_name), ("PayerAddress", order.payer_address),
        ("PaymPeriod", f"{order.period:%m%Y}"), ("DocIdx", order.document_id),
        ("TechCode", HOUSING),
    ]
    return mandatory, [(k, v) for k, v in additional if v]


def _separator(values: Sequence[str]) -> str:
    for candidate in SEPARATORS:
        if not any(candidate in value for value in values):
            return candidate
    raise Invalid("payment QR: every separator occurs in some value", field=["qr"])


def payment_text(order: PaymentOrder, encoding: str = "2") -> str:
    """The QR text of ``order``; ``encoding`` is the standard's digit (2: UTF-8)."""
    _check(order)
    mandatory, additional = pairs(order)
    sep = _separator([v for _, v in mandatory + additional])
    head = f"ST0001{encoding}"
    block = head + "".join(f"{sep}{k}={v}" for k, v in mandatory)
    if len(block.encode(ENCODINGS[encoding])) > MANDATORY_BYTES:
        raise Invalid(f"payment QR: the mandatory block is over {MANDATORY_BYTES} bytes",
                      field=["qr"])
    return block + "".join(f"{sep}{k}={v}" for k, v in additional)


def parse(text: str) -> dict[str, str]:
    """The pairs of a payment QR text (its separator is the character after the header)."""
    if not text.startswith("ST0001") or len(text) < 8:
        raise Invalid("not a GOST R 56042 payment text", field=["qr"])
    sep = text[7]
    return dict(pair.split("=", 1) for pair in text[8:].split(sep))


def payment_qr(order: PaymentOrder, encoding: str = "2") -> npt.NDArray[np.uint8]:
    """The QR code's modules (0 dark, 255 light, no quiet zone): error correction M, byte
    mode in the text's own encoding, no ECI."""
    text = payment_text(order, encoding)
    code = zxingcpp.create_barcode(text.encode(ENCODINGS[encoding]),
                                   zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    return np.asarray(code.to_image(scale=1, add_quiet_zones=False), dtype=np.uint8)


def from_document_sum(amount: Decimal) -> int:
    """Roubles with kopecks as the QR's Sum: kopecks, digits only."""
    kopecks = amount * 100
    if kopecks != kopecks.to_integral_value():
        raise Invalid(f"payment QR: {amount} is not a whole number of kopecks", field=["qr"])
    return int(kopecks)
