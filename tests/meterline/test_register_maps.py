"""Register word codecs: big-endian, high word first, as the SDM120 holds its values."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from meterline.register_maps import DecodingError, decode_float32, decode_uint32, encode_float32


def test_float32_is_big_endian_high_word_first() -> None:
    assert encode_float32(12.345) == (0x4145, 0x851F)
    assert decode_float32([0x4145, 0x851F]) == pytest.approx(12.345, rel=1e-7)
    assert decode_float32((0x3F80, 0x0000)) == 1.0


def test_uint32_is_big_endian_high_word_first() -> None:
    assert decode_uint32([0x0098, 0x9680]) == 10_000_000
    assert decode_uint32([0xFFFF, 0xFFFF]) == 2**32 - 1


@pytest.mark.parametrize("value", [0.0, -0.0, 1.5, -273.15, 8881.724, 3.0e20, float("inf")])
def test_float32_words_read_back_as_the_same_float32(value: float) -> None:
    words = encode_float32(value)
    assert all(0 <= word <= 0xFFFF for word in words)
    decoded = decode_float32(words)
    assert np.float32(decoded) == np.float32(value)
    assert struct.pack(">f", decoded) == struct.pack(">f", value)  # the sign of -0.0 too


def test_nan_survives_the_round_trip() -> None:
    assert np.isnan(decode_float32(encode_float32(float("nan"))))


@pytest.mark.parametrize("decode", [decode_float32, decode_uint32])
def test_words_that_make_no_value_are_an_error(decode: Callable[[Sequence[int]], object]) -> None:
    with pytest.raises(DecodingError, match="expected 2 registers, got 3"):
        decode([1, 2, 3])
    with pytest.raises(DecodingError, match="expected 2 registers, got 1"):
        decode([1])
    with pytest.raises(DecodingError, match="bad register words"):
        decode([70_000, 1])
    with pytest.raises(DecodingError, match="bad register words"):
        decode([-1, 0])


def test_decoding_errors_are_value_errors() -> None:
    assert issubclass(DecodingError, ValueError)
