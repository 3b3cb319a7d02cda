"""The Modbus image of a simulated meter, as its profile describes the real device.

The meter answers reads anywhere in the profile's spans (registers the profile does not list
read zero) or, for a profile without spans, of its registers as laid out (a hole between two
registers is an illegal address); a read of more than ``max_read_registers`` is refused with
exception 03 (illegal data value). Values are computed from the meter's state at the moment of
each request. The relay is written only with the profile's write function (another one is an
illegal function) and reads back its state; every other register is read only.

pymodbus keeps the registers of a ``SimDevice`` itself and calls the device's ``action``
before every access with the live register list, which is where the meter's state is copied
in (reads) or taken from (relay writes). The action must not await: pymodbus answers with
the transaction of the latest request once it returns.
"""

from __future__ import annotations

from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.simulator import DataType, SimData, SimDevice

from meterline.profiles import Profile
from meterline.profiles.codecs import words_of
from simulators.clock import SimClock
from simulators.meter import SimulatedMeter

READ_COILS, READ_DISCRETE, READ_HOLDING, READ_INPUT = 1, 2, 3, 4
WRITE_COIL, WRITE_REGISTER, WRITE_COILS, WRITE_REGISTERS = 5, 6, 15, 16
_COIL_CODES = frozenset({READ_COILS, WRITE_COIL, WRITE_COILS})
_TABLE_OF = {READ_HOLDING: "holding", READ_INPUT: "input",
             WRITE_REGISTER: "holding", WRITE_REGISTERS: "holding"}

Blocks = tuple[list[SimData], list[SimData], list[SimData], list[SimData]]


def _ranges(profile: Profile, table: str) -> list[tuple[int, int, bool]]:
    """(first, last, writable) address ranges the meter answers in ``table``."""
    relay = profile.relay
    writable = relay.address if relay is not None and relay.table == table else None
    spans = [(s.start, s.end) for s in profile.spans if s.table == table]
    pieces = [(r.address, r.last) for r in profile.registers if r.table == table]
    if profile.serial.table == table:
        words = words_of(profile.serial.type)
        pieces.append((profile.serial.address, profile.serial.address + words - 1))
    if writable is not None:
        pieces.append((writable, writable))
    covered = list(spans)
    for first, last in sorted(set(pieces)):
        if not any(a <= first and last <= b for a, b in covered):
            covered.append((first, last))
    ranges: list[tuple[int, int, bool]] = []
    for first, last in sorted(covered):  # the relay register: a writable range of its own
        if writable is not None and first <= writable <= last:
            if first < writable:
                ranges.append((first, writable - 1, False))
            ranges.append((writable, writable, True))
            if writable < last:
                ranges.append((writable + 1, last, False))
        else:
            ranges.append((first, last, False))
    return ranges


def _register_blocks(profile: Profile) -> Blocks:
    """(coils, discrete inputs, holding registers, input registers) of one meter."""
    tables: list[list[SimData]] = []
    for table in ("holding", "input"):
        blocks = [
            SimData(first, count=last - first + 1, values=0, datatype=DataType.REGISTERS,
                    readonly=not writable)
            for first, last, writable in _ranges(profile, table)
        ]
        tables.append(blocks or [SimData(0, datatype=DataType.INVALID)])  # nothing: all illegal
    relay = profile.relay
    coil = relay.address if relay is not None and relay.table == "coil" else 0
    coils = [SimData(coil, values=True, datatype=DataType.BITS)]
    discrete = [SimData(0, values=False, datatype=DataType.BITS)]  # refused by the action
    return coils, discrete, tables[0], tables[1]


class Keeper(Protocol):
    """Keeps the meters' non-volatile memory (``simulators.fleet.Fleet``)."""

    def guard(self) -> None:
        """Called before a meter shows its registers."""

    def changed(self, meter: SimulatedMeter) -> None:
        """Called after a write changed a meter's state."""


def meter_device(
    meter: SimulatedMeter, clock: SimClock, keeper: Keeper | None = None
) -> SimDevice:
    """The Modbus device (unit id = ``meter.unit``) presenting ``meter``."""
    profile = meter.profile
    relay = profile.relay
    by_table = {table: [r for r in profile.registers if r.table == table]
                for table in ("holding", "input")}
    serial = profile.serial
    serial_words = len(meter.serial_words())

    def fill(table: str, start_address: int, address: int, count: int,
             registers: list[int]) -> None:
        t, wall = clock.now(), clock.wall()
        end = address + count
        for reg in by_table[table]:
            if reg.address < end and address <= reg.last:
                _put(registers, reg.address - start_address, meter.words(reg, t, wall))
        serial_end = serial.address + serial_words
        if serial.table == table and serial.address < end and address < serial_end:
            _put(registers, serial.address - start_address, meter.serial_words())
        if relay is not None and relay.table == table and address <= relay.address < end:
            registers[relay.address - start_address] = (
                relay.closed if meter.relay_closed else relay.open)

    async def action(
        func_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        fault = meter.active_fault(clock.monotonic())
        if fault is not None and fault.kind == "timeout":
            raise NoSuchIdException(f"unit {meter.unit} is silent (simulated timeout)")
        if fault is not None and fault.kind == "exception":
            return ExcCodes(fault.code)
        if func_code == READ_DISCRETE:
            return ExcCodes.ILLEGAL_FUNCTION
        if func_code in _COIL_CODES:
            if relay is None or relay.table != "coil":
                return ExcCodes.ILLEGAL_FUNCTION
            return _coils(func_code, start_address, address, registers, set_values)
        table = _TABLE_OF.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is None:  # a read
            if count > profile.max_read_registers:
                return ExcCodes.ILLEGAL_VALUE
            if fault is not None and fault.kind == "garbage":
                offset = address - start_address
                registers[offset:offset + count] = meter.garbage_words(count)
                return None
            if keeper is not None:
                keeper.guard()
            fill(table, start_address, address, count, registers)
            return None
        # a write: pymodbus let it through only onto the relay register (the rest is read only)
        if relay is None or func_code != relay.write_function:
            return ExcCodes.ILLEGAL_FUNCTION
        value = int(set_values[0])
        if value not in (relay.closed, relay.open):
            return ExcCodes.ILLEGAL_VALUE
        meter.set_relay(value == relay.closed, clock.now())
        if keeper is not None:
            keeper.changed(meter)
        return None

    def _coils(func_code: int, start_address: int, address: int, registers: list[int],
               set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        assert relay is not None
        coil = relay.address
        if set_values is not None:
            if func_code != relay.write_function:
                return ExcCodes.ILLEGAL_FUNCTION
            if address <= coil < address + len(set_values):
                meter.set_relay(bool(set_values[coil - address]), clock.now())
                if keeper is not None:
                    keeper.changed(meter)
        # the coil block starts at a multiple of 16: one register per 16 coils
        word, bit = divmod(coil - start_address * 16, 16)
        if meter.relay_closed:
            registers[word] |= 1 << bit
        else:
            registers[word] &= ~(1 << bit)
        return None

    return SimDevice(id=meter.unit, simdata=_register_blocks(profile), action=action)


def _put(registers: list[int], at: int, words: tuple[int, ...]) -> None:
    """Write ``words`` from index ``at``, clipped to the list (a value the read cuts off)."""
    for i, word in enumerate(words):
        if 0 <= at + i < len(registers):
            registers[at + i] = word


def absent_device(*, silent: bool) -> SimDevice:
    """Device id 0, which pymodbus uses for every unit id nobody else has. On a serial line
    nobody answers (``silent``); a Modbus TCP gateway answers GATEWAY_NO_RESPONSE for a meter
    that is not on its line."""

    async def action(
        func_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if silent:
            raise NoSuchIdException("no meter with this unit id on the line")
        return ExcCodes.GATEWAY_NO_RESPONSE

    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    registers = [SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(id=0, simdata=(bits, list(bits), registers, list(registers)), action=action)
