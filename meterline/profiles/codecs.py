"""Values in Modbus registers: the data types meters use, with their byte and word order.

A Modbus register is a 16-bit word, sent high byte first. A value wider than one word spans
consecutive registers, and meters disagree on two things:

- word order: ``big`` puts the most significant word first (ABCD; Eastron's float32s),
  ``little`` the least significant first (CDAB; many pulse counters);
- byte order within each word: ``big`` is the Modbus norm, ``little`` swaps the two bytes
  (BADC, or DCBA with little word order too).

``Codec`` turns register words into a number and back for one (type, byte order, word
order). The gateway decodes with it and the simulators encode with it, so they can only
disagree if a profile says something wrong about a meter.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

import numpy as np


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    INT64 = "int64"


class Order(StrEnum):
    BIG = "big"
    LITTLE = "little"


# struct format character and width in 16-bit words
_FORMATS: dict[DataType, tuple[str, int]] = {
    DataType.INT16: ("h", 1),
    DataType.UINT16: ("H", 1),
    DataType.INT32: ("i", 2),
    DataType.UINT32: ("I", 2),
    DataType.FLOAT32: ("f", 2),
    DataType.INT64: ("q", 4),
}


def words_of(data_type: DataType) -> int:
    """How many registers a value of ``data_type`` takes."""
    return _FORMATS[data_type][1]


def bits_of(data_type: DataType) -> int:
    return 16 * words_of(data_type)


class DecodingError(ValueError):
    """Register words that do not make a usable value: the wrong number of words, words that
    are not 16-bit, or a value the reader cannot take (NaN for an energy register)."""


@dataclass(frozen=True, slots=True)
class Codec:
    data_type: DataType
    byte_order: Order = Order.BIG
    word_order: Order = Order.BIG
    words: int = field(init=False)
    _value: struct.Struct = field(init=False, repr=False, compare=False)
    _words: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        char, words = _FORMATS[self.data_type]
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "_value", struct.Struct(">" + char))
        # each word as two bytes: high byte first (Modbus), or swapped
        swap = "<" if self.byte_order is Order.LITTLE else ">"
        object.__setattr__(self, "_words", struct.Struct(f"{swap}{words}H"))

    @property
    def is_float(self) -> bool:
        return self.data_type is DataType.FLOAT32

    def decode(self, words: Sequence[int]) -> int | float:
        """The value in ``words`` (exactly ``self.words`` registers, as read)."""
        if len(words) != self.words:
            raise DecodingError(f"expected {self.words} registers, got {len(words)}")
        ordered = words if self.word_order is Order.BIG else words[::-1]
        try:
            data = self._words.pack(*ordered)
        except struct.error as exc:
            raise DecodingError(f"bad register words {list(words)}: {exc}") from exc
        value: int | float = self._value.unpack(data)[0]
        return value

    def encode(self, value: int | float) -> tuple[int, ...]:
        """The registers that hold ``value``, in the order the meter sends them. An integer
        type takes an int in its range (ValueError otherwise)."""
        if not self.is_float and not isinstance(value, int):
            raise ValueError(f"{self.data_type} holds integers, not {value!r}")
        try:
            data = self._value.pack(value)
        except struct.error as exc:
            raise ValueError(f"{value!r} does not fit in {self.data_type}: {exc}") from exc
        words: tuple[int, ...] = self._words.unpack(data)
        return words if self.word_order is Order.BIG else words[::-1]


def float32_decimal(value: float) -> Decimal:
    """The shortest decimal that reads back as the same float32: a meter showing 12.345
    gives Decimal("12.345"), not the 12.3450002670288... the float32 really holds."""
    if not math.isfinite(value):
        raise DecodingError(f"not a number: {value}")
    text = np.format_float_positional(np.float32(value), unique=True, trim="-")
    result = Decimal(text)
    return result if result else Decimal(0)  # no "-0"


def float32_float(value: float) -> float:
    """A float32 as the float of its shortest decimal (229.8, not 229.8000030517578), for
    values shown as they are (measurements), not billed."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def float32_step(value: float) -> float:
    """The gap between ``value`` (as a float32) and the next float32 above it: the finest
    change a float32 register can show at that magnitude."""
    return float(np.spacing(np.float32(abs(value))))
