"""Exact numbers in API responses: decimal strings, never JSON floats.

Money is stored as NUMERIC(28, 12) and quantities as NUMERIC(20, 6); a response shows the
stored value exactly, without trailing zeros (``Exact``), and money also as kopecks rounded
half-up (``Kopecks``, always two decimals), the way a document or a payment shows it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer, WithJsonSchema

from meterline.money import kopecks


def exact_text(value: Decimal) -> str:
    """The value as plain decimal text, trailing zeros dropped: 100.500000000000 -> "100.5".

    Done on the text, not with ``Decimal.normalize``, which rounds to the context precision.
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def kopecks_text(value: Decimal) -> str:
    """The value rounded to kopecks half-up, with two decimals: 7.125 -> "7.13"."""
    rounded = kopecks(value)
    return format(abs(rounded) if rounded == 0 else rounded, "f")


Exact = Annotated[
    Decimal,
    PlainSerializer(exact_text, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?\d+(\.\d+)?$",
            "description": "Exact decimal, as stored.",
            "examples": ["1234.567891234567"],
        }
    ),
]

# A register reading given to the API: a decimal string (preferred) or a JSON number, 0 or
# more, at most 14 digits before the point and 6 after (NUMERIC(20, 6)).
ReadingValue = Annotated[
    Decimal,
    Field(ge=0, allow_inf_nan=False, max_digits=20, decimal_places=6),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^[0-9]{1,14}(\.[0-9]{1,6})?$"},
                {"type": "number", "minimum": 0, "maximum": 99999999999999,
                 "multipleOf": 0.000001},
            ],
            "description": "The register's reading, as on the meter's display.",
            "examples": ["12345.678"],
        }
    ),
]

Kopecks = Annotated[
    Decimal,
    PlainSerializer(kopecks_text, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?\d+\.\d{2}$",
            "description": "Roubles rounded to kopecks, half-up.",
            "examples": ["1234.57"],
        }
    ),
]
