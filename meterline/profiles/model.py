"""A device profile: everything meterline needs to know about one meter model, as data.

A profile lists the model's registers (where each is, how it is encoded, what it measures
and in which unit), which of them bill, the address ranges the meter answers in one
request and its request limit, the serial-number register, and the relay if it has one.
The gateway reads meters by their profile; the simulators present meters by it. A user adds
a model by writing a profile file (see ``loading``), not code.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from functools import cache, cached_property
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from meterline.profiles.codecs import Codec, DataType, Order, bits_of, words_of
from meterline.units import REGISTER_UNITS, Register, Utility

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ProfileId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{0,63}$")]
Address = Annotated[int, Field(ge=0, le=0xFFFF)]
Table = Literal["holding", "input"]
FUNCTION_OF_TABLE: dict[str, int] = {"coil": 1, "holding": 3, "input": 4}
MODBUS_MAX_READ = 125  # registers a function 03/04 request may ask for, by the protocol


class Measure(StrEnum):
    """What a register holds. Fixes its unit, and tells the simulators what to put there."""

    ACTIVE_IMPORT_ENERGY = "active_import_energy"
    ACTIVE_EXPORT_ENERGY = "active_export_energy"
    ACTIVE_TOTAL_ENERGY = "active_total_energy"  # import + export: never billed
    VOLTAGE = "voltage"
    CURRENT = "current"
    ACTIVE_POWER = "active_power"
    FREQUENCY = "frequency"
    VOLUME = "volume"
    FLOW_RATE = "flow_rate"
    HEAT_ENERGY = "heat_energy"
    HEAT_POWER = "heat_power"
    FLOW_TEMPERATURE = "flow_temperature"
    RETURN_TEMPERATURE = "return_temperature"
    METER_CLOCK = "meter_clock"


UNIT_OF_MEASURE: dict[Measure, str] = {
    Measure.ACTIVE_IMPORT_ENERGY: "kWh",
    Measure.ACTIVE_EXPORT_ENERGY: "kWh",
    Measure.ACTIVE_TOTAL_ENERGY: "kWh",
    Measure.VOLTAGE: "V",
    Measure.CURRENT: "A",
    Measure.ACTIVE_POWER: "W",
    Measure.FREQUENCY: "Hz",
    Measure.VOLUME: "m3",
    Measure.FLOW_RATE: "m3/h",
    Measure.HEAT_ENERGY: "Gcal",
    Measure.HEAT_POWER: "kW",
    Measure.FLOW_TEMPERATURE: "degC",
    Measure.RETURN_TEMPERATURE: "degC",
    Measure.METER_CLOCK: "s",  # UNIX time by the meter's own clock
}

# measures that only ever grow (until a reset or a rollover): counters
CUMULATIVE = frozenset({
    Measure.ACTIVE_IMPORT_ENERGY, Measure.ACTIVE_EXPORT_ENERGY, Measure.ACTIVE_TOTAL_ENERGY,
    Measure.VOLUME, Measure.HEAT_ENERGY,
})

# the billing register a measure feeds, where it may bill at all
BILLING_REGISTER: dict[Measure, Register] = {
    Measure.ACTIVE_IMPORT_ENERGY: Register.ACTIVE_IMPORT,
    Measure.VOLUME: Register.VOLUME,
    Measure.HEAT_ENERGY: Register.HEAT_ENERGY,
}


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(Strict):
    """Addresses a meter answers in one read: registers in between that the profile does not
    list read as zero there, as on the real device."""

    table: Table
    start: Address
    end: Address = Field(description="Last address of the span, inclusive.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end {self.end:#06x} is before start {self.start:#06x}")
        return self

    def holds(self, table: str, first: int, last: int) -> bool:
        return table == self.table and self.start <= first and last <= self.end


class RegisterSpec(Strict):
    name: Name
    table: Table = Field(description="input (function 04) or holding (function 03).")
    address: Address = Field(description="0-based register address.")
    type: DataType
    byte_order: Order | None = Field(None, description="Default: the profile's.")
    word_order: Order | None = Field(None, description="Default: the profile's.")
    scale: Decimal = Field(Decimal(1), gt=0, description="Value = raw number x scale.")
    measure: Measure
    phase: Literal[1, 2, 3] | None = None
    billing: bool = Field(False, description="Billed: published as the meter's register.")
    counter_bits: int | None = Field(
        None, description="An integer counter wraps to 0 after 2^counter_bits - 1 (raw)."
    )
    volatile: bool = Field(False, description="The counter resets to zero on power loss.")
    resolution: Decimal | None = Field(
        None, gt=0, description="float32: the finest step billing needs; a reading whose "
        "float32 cannot show it is flagged (resolution loss).",
    )
    max_per_hour: Decimal | None = Field(
        None, gt=0, description="Counter: the most it can plausibly grow in an hour; more is "
        "flagged as an implausible jump.",
    )
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.billing and self.measure not in BILLING_REGISTER:
            raise ValueError(
                f"a {self.measure} register cannot bill; billing registers are "
                f"{', '.join(BILLING_REGISTER)} (import energy, never the import+export total)"
            )
        if self.counter_bits is not None:
            if self.type is DataType.FLOAT32:
                raise ValueError("counter_bits applies to integer registers, not float32")
            if not 1 <= self.counter_bits <= bits_of(self.type):
                raise ValueError(
                    f"counter_bits must be 1-{bits_of(self.type)} for {self.type}, "
                    f"got {self.counter_bits}"
                )
        cumulative_only = ("counter_bits", "volatile", "max_per_hour")
        for option in cumulative_only:
            if getattr(self, option) and self.measure not in CUMULATIVE:
                raise ValueError(f"{option} applies to counters (cumulative measures) only")
        if self.resolution is not None and self.type is not DataType.FLOAT32:
            raise ValueError("resolution applies to float32 registers only")
        return self

    @property
    def words(self) -> int:
        return words_of(self.type)

    @property
    def last(self) -> int:
        """The last address the value occupies."""
        return self.address + self.words - 1

    @property
    def unit(self) -> str:
        return UNIT_OF_MEASURE[self.measure]

    @property
    def register(self) -> Register | None:
        """The billing register code it is published under, if it bills."""
        return BILLING_REGISTER[self.measure] if self.billing else None

    @property
    def cumulative(self) -> bool:
        return self.measure in CUMULATIVE

    @property
    def wraps_at(self) -> int | None:
        """Raw value at which the counter wraps to zero."""
        return None if self.counter_bits is None else 1 << self.counter_bits


class SerialSpec(Strict):
    """Where the meter's serial number is (an unsigned integer, shown in decimal)."""

    table: Table = "holding"
    address: Address
    type: Literal[DataType.UINT16, DataType.UINT32, DataType.INT64] = DataType.UINT32
    byte_order: Order | None = None
    word_order: Order | None = None


class RelaySpec(Strict):
    """The load relay: a coil (written with function 05 or 15) or a holding register
    (written with function 06 or 16) holding ``closed`` when the load is connected."""

    table: Literal["coil", "holding"]
    address: Address
    write_function: Literal[5, 6, 15, 16]
    closed: int = Field(1, ge=0, le=0xFFFF, description="Value meaning: load connected.")
    open: int = Field(0, ge=0, le=0xFFFF, description="Value meaning: load disconnected.")

    @model_validator(mode="after")
    def _function_fits(self) -> Self:
        allowed = (5, 15) if self.table == "coil" else (6, 16)
        if self.write_function not in allowed:
            raise ValueError(
                f"a {self.table} relay is written with function {' or '.join(map(str, allowed))}"
                f", not {self.write_function}"
            )
        if self.closed == self.open:
            raise ValueError("closed and open must be different values")
        if self.table == "coil" and {self.closed, self.open} != {0, 1}:
            raise ValueError("a coil relay is 1 or 0")
        return self


class Profile(Strict):
    id: ProfileId = Field(description="The profile file's name without .toml.")
    model: str = Field(min_length=1, max_length=64)
    manufacturer: str = Field("", max_length=64)
    description: str = ""
    utilities: list[Utility] = Field(min_length=1, description="What such a meter may meter.")
    byte_order: Order = Order.BIG
    word_order: Order = Order.BIG
    max_read_registers: int = Field(
        MODBUS_MAX_READ, ge=1, le=MODBUS_MAX_READ,
        description="The most registers the meter answers in one read request.",
    )
    spans: list[Span] = Field(
        default_factory=list,
        description="Address ranges the meter answers in one read; without them, only "
        "registers next to each other are read together.",
    )
    registers: list[RegisterSpec] = Field(min_length=1)
    poll: list[Name] | None = Field(
        None, description="Registers the gateway reads each cycle (default: all)."
    )
    serial: SerialSpec
    relay: RelaySpec | None = None
    clock: Name | None = Field(None, description="A meter_clock register, if the meter has one.")
    mbpoll: list[str] = Field(
        default_factory=list, description="Command lines that read the meter with mbpoll."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [r.name for r in self.registers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"register names must be unique: {', '.join(repeated)} repeated")
        for table in ("input", "holding"):
            regs = sorted((r for r in self.registers if r.table == table), key=lambda r: r.address)
            for before, after in pairwise(regs):
                if after.address <= before.last:
                    raise ValueError(
                        f"registers {before.name} and {after.name} overlap in the {table} table "
                        f"({before.address:#06x}+{before.words} and {after.address:#06x})"
                    )
        if self.spans:
            for reg in self.registers:
                if not any(s.holds(reg.table, reg.address, reg.last) for s in self.spans):
                    raise ValueError(
                        f"register {reg.name} ({reg.table} {reg.address:#06x}) is outside "
                        "every span"
                    )
        for reg in self.registers:
            if reg.words > self.max_read_registers:
                raise ValueError(
                    f"register {reg.name} takes {reg.words} registers, more than "
                    f"max_read_registers {self.max_read_registers}"
                )
            if reg.billing and REGISTER_UNITS[BILLING_REGISTER[reg.measure]] != reg.unit:
                raise ValueError(f"register {reg.name}: billing unit mismatch")
        billed = [r.register for r in self.registers if r.billing]
        if not billed:
            raise ValueError("no billing register: mark the one that bills with billing = true")
        if len(billed) != len(set(billed)):
            raise ValueError("two registers bill the same register code")
        known = set(names)
        for name in self.poll or []:
            if name not in known:
                raise ValueError(f"poll names {name!r}, which is not a register of the profile")
        if self.poll is not None and not {r.name for r in self.registers if r.billing} <= set(
            self.poll
        ):
            raise ValueError("poll must include every billing register")
        if self.clock is not None:
            clock = self.register(self.clock) if self.clock in known else None
            if clock is None or clock.measure is not Measure.METER_CLOCK:
                raise ValueError(f"clock must name a meter_clock register, not {self.clock!r}")
        return self

    # lookups --------------------------------------------------------------------------------
    def register(self, name: str) -> RegisterSpec:
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(f"profile {self.id} has no register {name!r}")

    @cached_property
    def polled(self) -> tuple[RegisterSpec, ...]:
        """The registers a gateway reads each cycle, in address order within each table."""
        chosen = self.registers if self.poll is None else [self.register(n) for n in self.poll]
        return tuple(sorted(chosen, key=lambda r: (r.table, r.address)))

    @cached_property
    def billing(self) -> tuple[RegisterSpec, ...]:
        return tuple(r for r in self.registers if r.billing)

    def codec(self, reg: RegisterSpec | SerialSpec) -> Codec:
        return _codec(reg.type, reg.byte_order or self.byte_order,
                      reg.word_order or self.word_order)

    def span_of(self, reg: RegisterSpec) -> Span | None:
        for span in self.spans:
            if span.holds(reg.table, reg.address, reg.last):
                return span
        return None


@cache
def _codec(data_type: DataType, byte_order: Order, word_order: Order) -> Codec:
    """One codec per (type, byte order, word order): a gateway decodes every value of every
    poll with one, and making it anew each time showed in its profile."""
    return Codec(data_type, byte_order, word_order)
