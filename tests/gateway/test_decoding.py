"""Register words to the values the contracts carry (the word codecs themselves are tested in
tests/meterline/test_register_maps.py)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from gateway.decoding import float32_to_decimal, register_value
from meterline.register_maps import DecodingError, encode_float32


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
    value = register_value(encode_float32(shown))
    assert value == Decimal(expected) and str(value) == expected
    assert np.float32(float(value)) == np.float32(shown)  # reads back as the same float32


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
        register_value(encode_float32(value))


def test_tiny_values_keep_at_most_nine_decimals() -> None:
    value = register_value(encode_float32(1.2345678e-5))
    assert value == Decimal("0.000012346")


def test_words_that_make_no_float32_are_a_decoding_error() -> None:
    with pytest.raises(DecodingError, match="expected 2 registers"):
        register_value([1, 2, 3])
    with pytest.raises(DecodingError, match="bad register words"):
        register_value([70_000, 1])
