"""Register words to values."""

from __future__ import annotations

import struct
from decimal import Decimal

import numpy as np
import pytest

from gateway.decoding import (
    DecodingError,
    decode_float32,
    decode_uint32,
    float32_to_decimal,
    register_value,
)


def words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        (12.345, "12.345"),
        (0.1, "0.1"),
        (100.0, "100"),
        (8881.724, "8881.724"),
        (16777216.0, "16777216"),
        (123456789.0, "123456790"),  # float32 holds 123456792; 123456790 is its shortest form
        (0.0, "0"),
    ],
)
def test_float32_registers_become_their_shortest_decimal(shown: float, expected: str) -> None:
    value = register_value(words(shown))
    assert value == Decimal(expected) and str(value) == expected
    assert np.float32(float(value)) == np.float32(shown)  # reads back as the same float32


def test_float32_is_big_endian_high_word_first() -> None:
    assert decode_float32([0x4145, 0x851F]) == pytest.approx(12.345, rel=1e-7)
    assert decode_uint32([0x0098, 0x9680]) == 10_000_000


def test_negative_zero_is_zero() -> None:
    assert str(float32_to_decimal(-0.0)) == "0"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "not a number"),
        (float("inf"), "not a number"),
        (-1.5, "negative"),
        (3.0e20, "too large"),
    ],
)
def test_impossible_register_values_are_refused(value: float, message: str) -> None:
    with pytest.raises(DecodingError, match=message):
        register_value(words(value))


def test_tiny_values_keep_at_most_nine_decimals() -> None:
    value = register_value(words(1.2345678e-5))
    assert value == Decimal("0.000012346")


def test_wrong_register_count_is_an_error() -> None:
    with pytest.raises(DecodingError, match="expected 2 registers"):
        decode_float32([1, 2, 3])
    with pytest.raises(DecodingError, match="bad register words"):
        decode_uint32([70_000, 1])
