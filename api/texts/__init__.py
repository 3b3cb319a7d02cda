"""What the API says to people, in Russian and English: one JSON catalogue per language
(`ru.json`, `en.json`), shared by the phone line and the web pages. A translator edits those
files, not the code."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Literal

from meterline.money import kopecks

Lang = Literal["ru", "en"]
LANGS: tuple[Lang, ...] = ("ru", "en")


@cache
def catalogue(lang: Lang) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (resources.files("api") / "texts" / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def roubles(amount: Decimal, lang: Lang) -> str:
    """Money as words say it, e.g. "247 roubles 70 kopecks"."""
    rounded = kopecks(amount)
    rub, kop = divmod(int(abs(rounded) * 100), 100)
    texts = catalogue(lang)
    return str(texts["roubles"]).format(sign=texts["minus"] if rounded < 0 else "", rub=rub,
                                        kop=f"{kop:02d}")


def month_name(first: date, lang: Lang) -> str:
    return f"{catalogue(lang)['months'][first.month - 1]} {first.year}"
