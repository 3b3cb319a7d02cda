"""Modbus register maps of the meters meterline reads: the contract between a meter and the
gateway that polls it. The simulators implement these maps; the gateway decodes them.

Eastron SDM120 (single-phase DIN-rail energy meter), function 04 input registers, each value a
big-endian IEEE-754 float32 in two 16-bit registers (high word first). Its serial number is a
uint32 in holding registers 0xFC00-0xFC01 (function 03). The SDM120 has no relay; prepaid
meters of this class add a load relay, which meterline maps to coil 0 (function 05):
ON (True) = load connected.

The word codecs below turn values into such register pairs and back; the simulators encode
with them, the gateway decodes with them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from meterline.units import Register, Unit


@dataclass(frozen=True, slots=True)
class Float32Register:
    name: str
    address: int  # input register address (0-based, function 04)
    unit: str
    register: Register | None = None  # the billing register it feeds, if any


@dataclass(frozen=True, slots=True)
class MeterMap:
    model: str
    registers: tuple[Float32Register, ...]
    serial_address: int  # holding register of the uint32 serial number
    relay_coil: int | None

    @property
    def billing(self) -> tuple[Float32Register, ...]:
        return tuple(r for r in self.registers if r.register is not None)


SDM120 = MeterMap(
    model="SDM120",
    registers=(
        Float32Register("voltage", 0x0000, "V"),
        Float32Register("current", 0x0006, "A"),
        Float32Register("active_power", 0x000C, "W"),
        Float32Register("frequency", 0x0046, "Hz"),
        Float32Register("import_active_energy", 0x0048, Unit.KWH, Register.ACTIVE_IMPORT),
        Float32Register("export_active_energy", 0x004A, Unit.KWH),
        Float32Register("total_active_energy", 0x0156, Unit.KWH),
    ),
    serial_address=0xFC00,
    relay_coil=0,
)

MAPS: dict[str, MeterMap] = {SDM120.model: SDM120}


class DecodingError(ValueError):
    """Register words that do not make a usable value (not two 16-bit words, or a value
    the reader cannot take, such as NaN for an energy register)."""


def encode_float32(value: float) -> tuple[int, int]:
    """The two registers of a big-endian IEEE-754 float32, high word first."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


def _pack_words(words: Sequence[int]) -> bytes:
    if len(words) != 2:
        raise DecodingError(f"expected 2 registers, got {len(words)}")
    try:
        return struct.pack(">2H", *words)
    except struct.error as exc:
        raise DecodingError(f"bad register words {list(words)}: {exc}") from exc


def decode_float32(words: Sequence[int]) -> float:
    """The float32 in two registers, high word first."""
    value: float = struct.unpack(">f", _pack_words(words))[0]
    return value


def decode_uint32(words: Sequence[int]) -> int:
    """The uint32 in two registers, high word first."""
    value: int = struct.unpack(">I", _pack_words(words))[0]
    return value
