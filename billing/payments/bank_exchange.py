"""Payment orders as a 1CClientBankExchange file (format version 1.03), the text that
accounting programs and client-bank systems in Russia exchange: the settlement's transfers to
the providers, ready to be loaded into the agent's bank.

Text in windows-1251, CRLF lines, ``Key=Value``: a header, one ``СекцияДокумент=Платежное
поручение`` … ``КонецДокумента`` section per transfer, ``КонецФайла``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from meterline.errors import Invalid
from meterline.money import has_at_most_kopecks

FORMAT_VERSION = "1.03"


@dataclass(frozen=True)
class Party:
    """A payer or payee of a payment order, with its bank."""

    name: str
    inn: str
    account: str  # settlement account, 20 digits
    bank_name: str
    bic: str
    corr_account: str
    kpp: str = ""
    bank_city: str = ""

    def check(self, role: str) -> None:
        for what, value, pattern in (
            ("INN", self.inn, r"[0-9]{10}|[0-9]{12}"), ("account", self.account, r"[0-9]{20}"),
            ("BIC", self.bic, r"[0-9]{9}"), ("correspondent account", self.corr_account,
                                            r"[0-9]{20}"), ("KPP", self.kpp, r"|[0-9]{9}"),
        ):
            if not re.fullmatch(pattern, value):
                raise Invalid(f"{role} {self.name}: {what} {value!r} is not valid")


@dataclass(frozen=True)
class Transfer:
    number: int
    day: date
    amount: Decimal
    payer: Party
    payee: Party
    purpose: str  # назначение платежа, at most 210 characters


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _party(prefix: str, p: Party) -> list[str]:
    return [
        f"{prefix}Счет={p.account}",
        f"{prefix}=ИНН {p.inn} {p.name}",
        f"{prefix}ИНН={p.inn}",
        f"{prefix}1={p.name}",
        f"{prefix}РасчСчет={p.account}",
        f"{prefix}Банк1={p.bank_name}",
        f"{prefix}Банк2={p.bank_city}",
        f"{prefix}БИК={p.bic}",
        f"{prefix}Корсчет={p.corr_account}",
        f"{prefix}КПП={p.kpp}",
    ]


def client_bank_exchange(
    transfers: Sequence[Transfer], *, created: datetime, first_day: date, last_day: date,
    sender: str = "meterline",
) -> bytes:
    """The file of payment orders; every payer must be the same account (the agent's)."""
    if not transfers:
        raise Invalid("no transfer to export")
    accounts = {t.payer.account for t in transfers}
    if len(accounts) != 1:
        raise Invalid("a file holds the orders of one account: " + ", ".join(sorted(accounts)))
    lines = [
        "1CClientBankExchange",
        f"ВерсияФормата={FORMAT_VERSION}",
        "Кодировка=Windows",
        f"Отправитель={sender}",
        "Получатель=",
        f"ДатаСоздания={created:%d.%m.%Y}",
        f"ВремяСоздания={created:%H:%M:%S}",
        f"ДатаНачала={first_day:%d.%m.%Y}",
        f"ДатаКонца={last_day:%d.%m.%Y}",
        f"РасчСчет={accounts.pop()}",
        "Документ=Платежное поручение",
    ]
    for t in transfers:
        if t.amount <= 0 or not has_at_most_kopecks(t.amount):
            raise Invalid(f"order {t.number}: {t.amount} is not a sum in whole kopecks")
        if len(t.purpose) > 210 or "\n" in t.purpose:
            raise Invalid(f"order {t.number}: the purpose is one line of at most 210 characters")
        t.payer.check("payer")
        t.payee.check("payee")
        lines += [
            "СекцияДокумент=Платежное поручение",
            f"Номер={t.number}",
            f"Дата={t.day:%d.%m.%Y}",
            f"Сумма={_money(t.amount)}",
            *_party("Плательщик", t.payer),
            *_party("Получатель", t.payee),
            "ВидОплаты=01",
            "Очередность=5",
            f"НазначениеПлатежа={t.purpose}",
            "КонецДокумента",
        ]
    lines.append("КонецФайла")
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


def read_documents(data: bytes) -> list[dict[str, str]]:
    """The documents of a 1CClientBankExchange file, as key → value (for checks and tests)."""
    documents: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in data.decode("cp1251").splitlines():
        key, _, value = line.partition("=")
        if key == "СекцияДокумент":
            current = {"СекцияДокумент": value}
        elif key == "КонецДокумента" and current is not None:
            documents.append(current)
            current = None
        elif current is not None:
            current[key] = value
    return documents
