"""The Modbus image of a simulated meter, per ``meterline.register_maps.SDM120``.

Input registers (function 04) hold the readout as big-endian float32, high word first,
computed from the meter's state at the moment of each read. Holding registers 0xFC00-0xFC01
(function 03) hold the serial number as a read-only uint32. Coil 0 is the load relay
(True = connected); writing it opens or closes the meter's relay.

pymodbus 3.16 keeps the registers of a ``SimDevice`` itself and calls the device's
``action`` before every access with the live register list, which is where the meter's
state is copied in (reads) or taken from (coil writes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from meterline.register_maps import SDM120, encode_float32
from simulators.electricity_meter import SimulatedMeter

READ_COILS, WRITE_COIL, WRITE_COILS = 1, 5, 15
READ_INPUT_REGISTERS = 4
_COIL_CODES = frozenset({READ_COILS, WRITE_COIL, WRITE_COILS})


Blocks = tuple[list[SimData], list[SimData], list[SimData], list[SimData]]


def _register_blocks(serial: int) -> Blocks:
    """(coils, discrete inputs, holding registers, input registers) of one meter; addresses
    outside the map answer ILLEGAL_ADDRESS, as on a real meter."""
    relay = SDM120.relay_coil if SDM120.relay_coil is not None else 0
    coils = [SimData(relay, values=True, datatype=DataType.BITS)]
    discrete_inputs = [SimData(0, values=False, datatype=DataType.BITS)]
    holding = [
        SimData(SDM120.serial_address, values=serial, datatype=DataType.UINT32, readonly=True)
    ]
    inputs = [
        SimData(r.address, values=0.0, datatype=DataType.FLOAT32, readonly=True)
        for r in SDM120.registers
    ]
    return coils, discrete_inputs, holding, inputs


def meter_device(meter: SimulatedMeter, now: Callable[[], float]) -> SimDevice:
    """The Modbus device (unit id = ``meter.unit``) presenting ``meter``; ``now`` gives the
    simulated instant of each request."""

    async def action(
        func_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if func_code == READ_INPUT_REGISTERS:
            readout = asdict(meter.readout(now()))
            for reg in SDM120.registers:
                offset = reg.address - start_address
                registers[offset : offset + 2] = encode_float32(readout[reg.name])
        elif func_code in _COIL_CODES and SDM120.relay_coil is not None:
            coil = SDM120.relay_coil
            if set_values is not None and address <= coil < address + len(set_values):
                meter.set_relay(bool(set_values[coil - address]), now())
            # the coil block starts at a multiple of 16: one register per 16 coils
            word, bit = divmod(coil - start_address * 16, 16)
            if meter.relay_closed:
                registers[word] |= 1 << bit
            else:
                registers[word] &= ~(1 << bit)
        return None

    return SimDevice(
        id=meter.unit, simdata=_register_blocks(meter.serial), action=action
    )


def absent_device() -> SimDevice:
    """Device id 0, which pymodbus uses for every unit id nobody else has: answers
    GATEWAY_NO_RESPONSE, as a Modbus TCP gateway does for a meter that is not on its line."""

    async def action(
        func_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE

    return SimDevice(id=0, simdata=_register_blocks(0), action=action)
