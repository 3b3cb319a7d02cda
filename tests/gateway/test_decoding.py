"""Register words to the values the contracts carry (the word codecs themselves are tested in
tests/meterline/test_profiles.py)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from gateway.decoding import measurement_value, register_value
from meterline.profiles import DecodingError, shipped_profile

SDM120 = shipped_profile("eastron-sdm120")
ENERGY = SDM120.register("import_active_energy")
FLOAT = SDM120.codec(ENERGY)
DIN = shipped_profile("din-relay-meter")
HEAT = shipped_profile("heat-meter")


def value(shown: float) -> Decimal:
    return register_value(FLOAT, ENERGY, FLOAT.encode(shown))


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
        (-0.0, "0"),
    ],
)
def test_float32_registers_become_their_shortest_decimal(shown: float, expected: str) -> None:
    result = value(shown)
    assert result == Decimal(expected) and str(result) == expected
    assert np.float32(float(result)) == np.float32(shown)  # reads back as the same float32


@pytest.mark.parametrize(
    ("shown", "message"),
    [
        (float("nan"), "not a number"),
        (float("inf"), "not a number"),
        (-1.5, "negative"),
        (3.0e20, "too large"),
    ],
)
def test_impossible_register_values_are_refused(shown: float, message: str) -> None:
    with pytest.raises(DecodingError, match=message):
        value(shown)


def test_tiny_values_keep_at_most_nine_decimals() -> None:
    assert value(1.2345678e-5) == Decimal("0.000012346")


def test_integer_registers_are_exact_multiples_of_their_scale() -> None:
    energy = DIN.register("import_active_energy")  # uint32, 0.01 kWh
    codec = DIN.codec(energy)
    assert str(register_value(codec, energy, codec.encode(123_456_789))) == "1234567.89"
    heat = HEAT.register("heat_energy")  # int64 kilocalories, low word first
    codec = HEAT.codec(heat)
    assert str(register_value(codec, heat, codec.encode(12_345_678))) == "12.345678"
    with pytest.raises(DecodingError, match="negative"):
        register_value(codec, heat, codec.encode(-5))


def test_measurements_are_floats_as_the_meter_shows_them() -> None:
    voltage = DIN.register("voltage")  # uint16, 0.1 V
    assert measurement_value(DIN.codec(voltage), voltage, (2301,)) == 230.1
    power = DIN.register("active_power")  # int32 W, signed
    assert measurement_value(DIN.codec(power), power, DIN.codec(power).encode(-150)) == -150.0
    sdm_voltage = SDM120.register("voltage")
    codec = SDM120.codec(sdm_voltage)
    assert measurement_value(codec, sdm_voltage, codec.encode(229.8)) == 229.8
    with pytest.raises(DecodingError, match="not a number"):
        measurement_value(codec, sdm_voltage, codec.encode(float("nan")))


def test_words_that_make_no_value_are_a_decoding_error() -> None:
    with pytest.raises(DecodingError, match="expected 2 registers"):
        register_value(FLOAT, ENERGY, [1, 2, 3])
    with pytest.raises(DecodingError, match="bad register words"):
        register_value(FLOAT, ENERGY, [70_000, 1])
