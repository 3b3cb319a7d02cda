"""Bank registries of payments, read through a mapping file per layout (no code per bank).

A registry is text in a legacy encoding (windows-1251), ``;``-separated: optional header
lines, one line per payment, and a closing line with the count and total of the payments. A
layout file (``layouts/*.toml``, or any file an operator writes) names the encoding, the
separator, the date and period formats, the position of each field and the closing line.

Reading never half-succeeds silently: a payment line that cannot be read is refused with its
line number and the reason, the others stand; a file whose closing line is missing or whose
totals differ from its lines is refused whole (`RegistryRefused`).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meterline.errors import Invalid
from meterline.money import has_at_most_kopecks

LAYOUTS = Path(__file__).parent / "layouts"
_ACCOUNT = re.compile(r"^[A-Za-z0-9-]{1,32}$")


class RegistryRefused(Invalid):
    """The whole file is refused: nothing of it is imported."""

    code = "registry-refused"


class Columns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paid_on: int = Field(ge=1)
    operation_id: int = Field(ge=1)
    account: int = Field(ge=1)
    amount: int = Field(ge=1)
    period: int | None = Field(None, ge=1)
    payer: int | None = Field(None, ge=1)
    address: int | None = Field(None, ge=1)


class Footer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marker: str = Field(min_length=1)
    count: int = Field(ge=1)
    total: int = Field(ge=1)
    number: int | None = Field(None, ge=1)


class Layout(BaseModel):
    """How one bank writes its registries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = ""
    name: str
    encoding: str = "cp1251"
    delimiter: str = Field(";", min_length=1, max_length=1)
    decimal_separator: str = Field(",", pattern=r"^[.,]$")
    date_format: str
    period_format: str | None = None
    header_lines: int = Field(0, ge=0)
    columns: Columns
    footer: Footer


def load_layout(name_or_path: str | Path) -> Layout:
    """A layout by name (``sberbank``, ``post``) or from a mapping file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = LAYOUTS / f"{name_or_path}.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return Layout.model_validate({"id": path.stem, **raw})
    except FileNotFoundError as exc:
        known = ", ".join(sorted(p.stem for p in LAYOUTS.glob("*.toml")))
        raise Invalid(f"no registry layout {name_or_path} (known: {known})") from exc
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise Invalid(f"registry layout {path}: {exc}") from exc


@dataclass(frozen=True)
class RegistryPayment:
    line: int
    operation_id: str
    account_id: str
    paid_on: date
    amount: Decimal
    period: date | None
    payer: str
    address: str


@dataclass(frozen=True)
class RefusedLine:
    line: int
    reason: str
    text: str
    amount: Decimal | None  # when it could be read: money that arrived but is not applied


@dataclass(frozen=True)
class Registry:
    layout: Layout
    digest: str  # sha256 of the file: the same file is never imported twice
    number: str | None
    count: int
    total: Decimal
    payments: tuple[RegistryPayment, ...]
    refused: tuple[RefusedLine, ...]


def _amount(text: str, layout: Layout) -> Decimal:
    raw = text.strip().replace(" ", "").replace("\u00a0", "")
    if layout.decimal_separator == ",":
        raw = raw.replace(",", ".")
    elif "," in raw:
        raise ValueError(f"amount {text!r} has a comma")
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(f"amount {text!r} is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"amount {text!r} is not a number")
    return value


def _field(fields: Sequence[str], position: int | None, name: str) -> str:
    if position is None:
        return ""
    if position > len(fields):
        raise ValueError(f"no {name} (field {position}; the line has {len(fields)})")
    return fields[position - 1].strip()


def _period(text: str, layout: Layout) -> date | None:
    if not text or layout.period_format is None:
        return None
    try:
        return datetime.strptime(text, layout.period_format).date().replace(day=1)
    except ValueError as exc:
        raise ValueError(f"period {text!r} is not {layout.period_format}") from exc


def _payment(n: int, fields: Sequence[str], layout: Layout) -> RegistryPayment:
    c = layout.columns
    amount = _amount(_field(fields, c.amount, "amount"), layout)
    if amount <= 0 or not has_at_most_kopecks(amount):
        raise ValueError(f"amount {amount} is not a positive sum in whole kopecks")
    account = _field(fields, c.account, "account")
    if not _ACCOUNT.match(account):
        raise ValueError(f"account {account!r} is not a personal account number")
    operation = _field(fields, c.operation_id, "operation number")
    if not operation:
        raise ValueError("no operation number")
    paid = _field(fields, c.paid_on, "payment date")
    try:
        paid_on = datetime.strptime(paid, layout.date_format).date()
    except ValueError as exc:
        raise ValueError(f"payment date {paid!r} is not {layout.date_format}") from exc
    return RegistryPayment(
        n, operation, account, paid_on, amount, _period(_field(fields, c.period, "period"),
                                                         layout),
        _field(fields, c.payer, "payer"), _field(fields, c.address, "address"),
    )


def parse(data: bytes, layout: Layout) -> Registry:
    """Read a registry file; refuses it whole when it cannot be trusted."""
    try:
        text = data.decode(layout.encoding)
    except UnicodeDecodeError as exc:
        where = data[: exc.start].count(b"\n") + 1
        raise RegistryRefused(f"line {where}: not {layout.encoding} text") from exc
    lines = text.splitlines()
    body = list(enumerate(lines, start=1))[layout.header_lines:]
    while body and not body[-1][1].strip():
        body.pop()
    if not body or not body[-1][1].startswith(layout.footer.marker):
        raise RegistryRefused(f"no closing line starting with {layout.footer.marker!r}")
    footer_no, footer_text = body.pop()
    footer = footer_text[len(layout.footer.marker):].split(layout.delimiter)
    try:
        count = int(_field(footer, layout.footer.count, "count"))
        total = _amount(_field(footer, layout.footer.total, "total"), layout)
        number = _field(footer, layout.footer.number, "registry number") or None
    except ValueError as exc:
        raise RegistryRefused(f"line {footer_no}: closing line: {exc}") from exc

    payments: list[RegistryPayment] = []
    refused: list[RefusedLine] = []
    amounts: list[Decimal] = []
    rows = 0
    seen: dict[str, int] = {}
    for n, line in body:
        if not line.strip():
            continue
        rows += 1
        fields = line.split(layout.delimiter)
        try:
            amount = _amount(_field(fields, layout.columns.amount, "amount"), layout)
        except ValueError as exc:
            raise RegistryRefused(f"line {n}: {exc}: the totals cannot be checked") from exc
        amounts.append(amount)
        try:
            payment = _payment(n, fields, layout)
            if payment.operation_id in seen:
                raise ValueError(f"operation {payment.operation_id} is also on line "
                                 f"{seen[payment.operation_id]}")
        except ValueError as exc:
            refused.append(RefusedLine(n, str(exc), line, amount))
            continue
        seen[payment.operation_id] = n
        payments.append(payment)

    if rows != count or sum(amounts, Decimal(0)) != total:
        raise RegistryRefused(
            f"line {footer_no}: the closing line says {count} payments for {total}, the file "
            f"has {rows} for {sum(amounts, Decimal(0))}"
        )
    return Registry(layout, hashlib.sha256(data).hexdigest(), number, count, total,
                    tuple(payments), tuple(refused))
