"""Register words to the values the contracts carry, by the register's profile entry (the word
codecs themselves are in ``meterline.profiles.codecs``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from meterline.profiles import Codec, DecodingError, RegisterSpec
from meterline.profiles.codecs import float32_decimal, float32_float

MAX_REGISTER_VALUE = Decimal("99999999999")  # what the contracts' NUMERIC(20, 9) holds
REGISTER_DECIMALS = 9


def register_value(codec: Codec, reg: RegisterSpec, words: Sequence[int]) -> Decimal:
    """A cumulative register as the contracts carry it: finite, >= 0, at most 9 decimals (a
    float32 as its shortest decimal, an integer times its exact scale). DecodingError if the
    words do not make such a value."""
    raw = codec.decode(words)
    value = float32_decimal(raw) if isinstance(raw, float) else Decimal(raw)
    if reg.scale != 1:
        value *= reg.scale
    if value < 0:
        raise DecodingError(f"a cumulative register cannot be negative: {value}")
    if value > MAX_REGISTER_VALUE:
        raise DecodingError(f"register value too large: {value}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -REGISTER_DECIMALS:
        value = value.quantize(Decimal(1).scaleb(-REGISTER_DECIMALS))
    return value


def measurement_value(codec: Codec, reg: RegisterSpec, words: Sequence[int]) -> float:
    """An instantaneous value (voltage, power, a temperature) as the meter shows it."""
    raw = codec.decode(words)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise DecodingError(f"not a number: {raw}")
        shown = float32_float(raw)
        return shown if reg.scale == 1 else float(Decimal(repr(shown)) * reg.scale)
    return float(raw) if reg.scale == 1 else float(Decimal(raw) * reg.scale)
