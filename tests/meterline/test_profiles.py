"""Device profiles: the codecs, the profile model and its errors, profile files, block-read
planning."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterline.profiles import (
    Codec,
    DataType,
    DecodingError,
    Order,
    ProfileError,
    load_profile,
    load_profiles,
    plan_reads,
    shipped_profile,
    shipped_profiles,
)
from meterline.profiles.codecs import float32_decimal, float32_step
from meterline.profiles.loading import parse_profile
from meterline.units import Register, Utility

BIG, LITTLE = Order.BIG, Order.LITTLE
PYMODBUS = AsyncModbusTcpClient.DATATYPE


# --- codecs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("byte_order", "word_order", "words"),
    [
        (BIG, BIG, (0x4145, 0x851F)),  # ABCD, Eastron
        (BIG, LITTLE, (0x851F, 0x4145)),  # CDAB
        (LITTLE, BIG, (0x4541, 0x1F85)),  # BADC
        (LITTLE, LITTLE, (0x1F85, 0x4541)),  # DCBA
    ],
)
def test_float32_in_every_byte_and_word_order(byte_order: Order, word_order: Order,
                                              words: tuple[int, int]) -> None:
    codec = Codec(DataType.FLOAT32, byte_order, word_order)
    assert codec.encode(12.345) == words
    assert np.float32(codec.decode(words)) == np.float32(12.345)


@pytest.mark.parametrize(
    ("data_type", "values"),
    [
        (DataType.INT16, [0, 1, -1, -32768, 32767]),
        (DataType.UINT16, [0, 1, 65535]),
        (DataType.INT32, [0, -1, 2**31 - 1, -(2**31), 10_000_000]),
        (DataType.UINT32, [0, 1, 2**32 - 1, 10_000_000]),
        (DataType.INT64, [0, -1, 2**63 - 1, -(2**63), 123_456_789_012]),
        (DataType.FLOAT32, [0.0, 1.5, -273.15, 8881.724, 3.0e20]),
    ],
)
@pytest.mark.parametrize("word_order", [BIG, LITTLE])
def test_codecs_agree_with_pymodbus(data_type: DataType, values: list[Any],
                                    word_order: Order) -> None:
    """pymodbus converts registers on its own (no byte swapping): an independent check."""
    theirs = PYMODBUS[data_type.name]
    codec = Codec(data_type, BIG, word_order)
    for value in values:
        words = codec.encode(value)
        assert list(words) == AsyncModbusTcpClient.convert_to_registers(
            value, theirs, word_order=word_order.value)
        decoded = AsyncModbusTcpClient.convert_from_registers(list(words), theirs,
                                                              word_order=word_order.value)
        assert codec.decode(words) == pytest.approx(decoded, rel=0, abs=0)


def test_low_word_first_uint32_is_what_pulse_counters_send() -> None:
    codec = Codec(DataType.UINT32, BIG, LITTLE)
    assert codec.encode(10_000_000) == (0x9680, 0x0098)
    assert codec.decode([0x9680, 0x0098]) == 10_000_000
    assert Codec(DataType.UINT32).decode([0x9680, 0x0098]) == 0x96800098  # read high word first


def test_out_of_range_and_wrong_words_are_refused() -> None:
    with pytest.raises(ValueError, match="does not fit in uint16"):
        Codec(DataType.UINT16).encode(70_000)
    with pytest.raises(ValueError, match="holds integers"):
        Codec(DataType.INT32).encode(1.5)
    with pytest.raises(DecodingError, match="expected 4 registers, got 2"):
        Codec(DataType.INT64).decode([1, 2])
    with pytest.raises(DecodingError, match="bad register words"):
        Codec(DataType.UINT32).decode([70_000, 1])


def test_float32_shows_as_its_shortest_decimal_and_its_step() -> None:
    assert str(float32_decimal(struct.unpack(">f", struct.pack(">f", 12.345))[0])) == "12.345"
    assert float32_step(100.0) < 0.01 < float32_step(200_000.0)
    with pytest.raises(DecodingError, match="not a number"):
        float32_decimal(float("nan"))


# --- shipped profiles ----------------------------------------------------------------------
def test_every_utility_has_a_shipped_profile_and_billing_never_uses_the_total() -> None:
    profiles = shipped_profiles()
    assert {"eastron-sdm120", "eastron-sdm630", "din-relay-meter", "pulse-counter-32",
            "pulse-counter-16", "heat-meter"} <= set(profiles)
    assert {u for p in profiles.values() for u in p.utilities} == set(Utility)
    for profile in profiles.values():
        assert profile.billing, profile.id
        assert all(r.register in set(Register) for r in profile.billing)
        assert all(r.measure != "active_total_energy" for r in profile.billing)
        assert profile.mbpoll, f"{profile.id}: document how mbpoll reads it"


def test_the_relay_of_the_din_meter_is_a_holding_register_written_with_function_16() -> None:
    relay = shipped_profile("din-relay-meter").relay
    assert relay is not None and (relay.table, relay.write_function) == ("holding", 16)
    energy = shipped_profile("din-relay-meter").register("import_active_energy")
    assert (energy.type, str(energy.scale), energy.counter_bits) == ("uint32", "0.01", 32)


def test_the_pulse_counters_are_32_bit_low_word_first_and_16_bit_volatile() -> None:
    wide = shipped_profile("pulse-counter-32")
    assert (wide.word_order, wide.billing[0].counter_bits) == (LITTLE, 32)
    narrow = shipped_profile("pulse-counter-16").billing[0]
    assert (narrow.type, narrow.wraps_at, narrow.volatile) == ("uint16", 65536, True)


def test_unknown_profile_names_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match="unknown profile 'sdm999'; shipped: din-relay-meter"):
        shipped_profile("sdm999")


# --- errors name the field and why ---------------------------------------------------------
MINIMAL: dict[str, Any] = {
    "model": "X1",
    "utilities": ["electricity"],
    "serial": {"address": 0x100},
    "registers": [
        {"name": "energy", "table": "input", "address": 0, "type": "float32",
         "measure": "active_import_energy", "billing": True},
    ],
}


def errors_of(data: dict[str, Any]) -> str:
    with pytest.raises(ProfileError) as raised:
        parse_profile(data, "x1", "x1.toml")
    return str(raised.value)


def test_a_minimal_profile_is_valid() -> None:
    profile = parse_profile(MINIMAL, "x1", "x1.toml")
    assert [str(r) for r in plan_reads(profile)] == ["input 0x0000+2"]


def test_a_bad_register_type_names_the_register_and_the_allowed_types() -> None:
    data = {**MINIMAL, "registers": [
        MINIMAL["registers"][0],
        {"name": "voltage", "table": "input", "address": 2, "type": "float16",
         "measure": "voltage"}]}
    message = errors_of(data)
    assert "x1.toml is not a valid profile" in message
    assert "registers[1] (voltage).type: Input should be 'int16', 'uint16'" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"relay": {"table": "coil", "address": 0, "write_function": 6}},
         "relay: a coil relay is written with function 5 or 15, not 6"),
        ({"registers": [{**MINIMAL["registers"][0], "measure": "active_total_energy"}]},
         "registers[0] (energy): a active_total_energy register cannot bill"),
        ({"registers": [{**MINIMAL["registers"][0], "billing": False}]},
         "(file): no billing register"),
        ({"poll": ["energy", "power"]}, "poll names 'power'"),
        ({"max_read_registers": 200}, "max_read_registers: Input should be less than or equal "
                                      "to 125"),
        ({"spans": [{"table": "input", "start": 10, "end": 20}]},
         "register energy (input 0x0000) is outside every span"),
        ({"registers": [MINIMAL["registers"][0], {**MINIMAL["registers"][0], "name": "e2",
                                                  "address": 1, "billing": False}]},
         "registers energy and e2 overlap"),
        ({"registers": [{**MINIMAL["registers"][0], "counter_bits": 16}]},
         "counter_bits applies to integer registers, not float32"),
        ({"utilities": ["steam"]}, "utilities[0]: Input should be 'electricity'"),
        ({"serial": {"address": 0x100, "type": "float32"}}, "serial.type: Input should be"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_profile_errors_name_the_field_and_why(change: dict[str, Any], expected: str) -> None:
    assert expected in errors_of({**MINIMAL, **change})


def test_profile_files_are_loaded_and_can_replace_a_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "eastron-sdm120.toml").write_text(
        'model = "SDM120 (local)"\nutilities = ["electricity"]\nserial = { address = 64512 }\n'
        '[[registers]]\nname = "energy"\ntable = "input"\naddress = 72\ntype = "float32"\n'
        'measure = "active_import_energy"\nbilling = true\n')
    profiles = load_profiles([tmp_path])
    assert profiles["eastron-sdm120"].model == "SDM120 (local)"
    assert profiles["heat-meter"] == shipped_profile("heat-meter")
    (tmp_path / "broken.toml").write_text("model = \n")
    with pytest.raises(ProfileError, match=r"broken\.toml is not valid TOML"):
        load_profile(tmp_path / "broken.toml")
    with pytest.raises(ProfileError, match="does not exist"):
        load_profiles([tmp_path / "nowhere"])


# --- planning ------------------------------------------------------------------------------
def test_the_five_sdm120_values_come_in_one_request_or_five_without_blocks() -> None:
    sdm120 = shipped_profile("eastron-sdm120")
    (read,) = plan_reads(sdm120)
    assert (read.table, read.function, read.start, read.count) == ("input", 4, 0x0000, 74)
    names = {reg.name: offset for reg, offset in read.registers}
    assert names == {"voltage": 0, "current": 6, "active_power": 12, "frequency": 70,
                     "import_active_energy": 72}
    single = plan_reads(sdm120, block=False)
    assert [(r.start, r.count) for r in single] == [
        (0x0000, 2), (0x0006, 2), (0x000C, 2), (0x0046, 2), (0x0048, 2)]


def test_planning_keeps_within_spans_the_request_limit_and_the_gap() -> None:
    sdm630 = shipped_profile("eastron-sdm630")
    everything = plan_reads(sdm630, sdm630.registers)
    assert [(r.start, r.count) for r in everything] == [(0x0000, 76), (0x0156, 16)]
    assert all(r.count <= sdm630.max_read_registers for r in everything)
    near = plan_reads(sdm630, sdm630.registers, max_gap=4)
    assert [(r.start, r.count) for r in near] == [
        (0x0000, 18), (0x0034, 2), (0x0046, 6), (0x0156, 16)]


def test_without_spans_only_registers_side_by_side_share_a_request() -> None:
    data = {**MINIMAL, "registers": [
        MINIMAL["registers"][0],
        {"name": "voltage", "table": "input", "address": 2, "type": "float32",
         "measure": "voltage"},
        {"name": "current", "table": "input", "address": 6, "type": "float32",
         "measure": "current"},
    ]}
    profile = parse_profile(data, "x1", "x1.toml")
    assert [(r.start, r.count) for r in plan_reads(profile)] == [(0, 4), (6, 2)]
