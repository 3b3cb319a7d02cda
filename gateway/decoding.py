"""Register words to values: float32 and uint32 big-endian, high word first (SDM120)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import Decimal

import numpy as np

MAX_REGISTER_VALUE = Decimal("99999999999")  # what the contracts' NUMERIC(20, 9) holds
REGISTER_DECIMALS = 9


class DecodingError(ValueError):
    pass


def _words(registers: Sequence[int], count: int) -> bytes:
    if len(registers) != count:
        raise DecodingError(f"expected {count} registers, got {len(registers)}")
    try:
        return struct.pack(f">{count}H", *registers)
    except struct.error as exc:
        raise DecodingError(f"bad register words {list(registers)}: {exc}") from exc


def decode_float32(registers: Sequence[int]) -> float:
    value: float = struct.unpack(">f", _words(registers, 2))[0]
    return value


def decode_uint32(registers: Sequence[int]) -> int:
    value: int = struct.unpack(">I", _words(registers, 2))[0]
    return value


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
    decimals (finer digits of a float32 below 0.01 are rounded off)."""
    value = float32_to_decimal(decode_float32(registers))
    if value < 0:
        raise DecodingError(f"a cumulative register cannot be negative: {value}")
    if value > MAX_REGISTER_VALUE:
        raise DecodingError(f"register value too large: {value}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -REGISTER_DECIMALS:
        value = value.quantize(Decimal(1).scaleb(-REGISTER_DECIMALS))
    return value
