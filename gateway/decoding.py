"""Register words to the values the contracts carry. The word codecs themselves (float32 and
uint32 big-endian, high word first, as the SDM120 uses) are in ``meterline.register_maps``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from meterline.register_maps import DecodingError, decode_float32

MAX_REGISTER_VALUE = Decimal("99999999999")  # what the contracts' NUMERIC(20, 9) holds
REGISTER_DECIMALS = 9


def float32_to_decimal(value: float) -> Decimal:
    """The shortest decimal that reads back as the same float32: a meter showing 12.345
    gives Decimal("12.345"), not the 12.3450002670288... the float32 really holds."""
    if not math.isfinite(value):
        raise DecodingError(f"not a number: {value}")
    text = np.format_float_positional(np.float32(value), unique=True, trim="-")
    result = Decimal(text)
    return result if result else Decimal(0)  # no "-0"


def register_value(registers: Sequence[int]) -> Decimal:
    """A cumulative energy register as the contracts carry it: finite, >= 0, at most 9
    decimals (finer digits of a float32 below 0.01 are rounded off). DecodingError if the
    words do not make such a value."""
    value = float32_to_decimal(decode_float32(registers))
    if value < 0:
        raise DecodingError(f"a cumulative register cannot be negative: {value}")
    if value > MAX_REGISTER_VALUE:
        raise DecodingError(f"register value too large: {value}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -REGISTER_DECIMALS:
        value = value.quantize(Decimal(1).scaleb(-REGISTER_DECIMALS))
    return value
