"""Notice texts, in Russian, per provider and channel (Jinja2).

A template is looked up, first found wins: ``{provider}/{kind}.{channel}.j2``,
``{provider}/{kind}.j2``, ``default/{kind}.{channel}.j2``, ``default/{kind}.j2`` — in the
operator's templates folder first, if one is set, then in the templates shipped here. A
template has a ``subject`` block (e-mail subject, cabinet title) and a ``text`` block (the
message); SMS and calls use the ``short`` block when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

from billing.reminders.channels import Channel
from meterline.money import kopecks

SHIPPED = Path(__file__).parent / "templates"

SERVICE_NAMES = {
    "electricity": "электроснабжение",
    "cold_water": "холодное водоснабжение",
    "hot_water": "горячее водоснабжение",
    "sewerage": "водоотведение",
    "gas": "газоснабжение",
    "heating": "отопление",
    "waste": "обращение с ТКО",
    "maintenance": "содержание жилого помещения",
    "capital_repair": "взнос на капитальный ремонт",
}


def rub(amount: Decimal | int | str) -> str:
    """1234.5 → «1 234,50 ₽»."""
    text = f"{kopecks(Decimal(amount)):,.2f}".replace(",", " ").replace(".", ",")
    return f"{text} ₽"


def ru_date(day: date | str) -> str:
    """2025-03-01 (a date, or ISO text as notices keep it) → «01.03.2025»."""
    if isinstance(day, str):
        day = date.fromisoformat(day[:10])
    return f"{day:%d.%m.%Y}"


def service_name(service: str) -> str:
    return SERVICE_NAMES.get(service, service)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str


class Templates:
    def __init__(self, folder: Path | None = None) -> None:
        folders = [folder, SHIPPED] if folder is not None else [SHIPPED]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(f) for f in folders]),
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False,
            trim_blocks=True, lstrip_blocks=True,
        )
        self.env.filters.update(rub=rub, ru_date=ru_date, service=service_name)

    def render(self, kind: str, channel: Channel, provider_id: str,
               context: dict[str, Any]) -> Rendered:
        template = self.env.select_template([
            f"{provider_id}/{kind}.{channel}.j2", f"{provider_id}/{kind}.j2",
            f"default/{kind}.{channel}.j2", f"default/{kind}.j2",
        ])
        ctx = template.new_context(dict(context, channel=str(channel)))

        def block(name: str) -> str:
            return "".join(template.blocks[name](ctx)).strip()

        subject = block("subject") if "subject" in template.blocks else ""
        short = channel in (Channel.SMS, Channel.PHONE) and "short" in template.blocks
        return Rendered(subject, block("short" if short else "text"))
