"""Faults a simulated meter can be given, to see the gateway and the platform cope.

Transient ones change how the meter answers its next requests (a number of them, or for some
seconds), then it answers normally again:
- ``timeout``: no answer at all (the master times out);
- ``exception``: a Modbus exception response (default 04, server device failure);
- ``garbage``: random words instead of the registers.

One-off ones change the meter's state at once, as the event would:
- ``rollover``: a counter register is set just below its wrap, so it wraps soon;
- ``power_loss``: volatile counters restart from zero (non-volatile memory keeps the rest);
- ``clock_drift``: the meter's own clock moves by some seconds;
- ``replacement``: a new meter (another serial, its own opening reading) at the same address;
- ``jump``: the counters leap forward by an amount (a tampered or miswired meter).

A fault is given in code (``inject``), in the simulator configuration file (``[[faults]]``,
at a time after start) or from the command line; ``parse_fault`` reads the file's form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

if TYPE_CHECKING:
    from simulators.meter import SimulatedMeter

DEVICE_FAILURE = 0x04


@dataclass
class Transient:
    """A misbehaviour for the next ``requests`` requests (-1: no limit) or until ``until``
    (monotonic seconds), whichever ends first."""

    kind: Literal["timeout", "exception", "garbage"]
    requests: int = -1
    until: float | None = None
    code: int = DEVICE_FAILURE

    def expired(self, now: float) -> bool:
        return self.requests == 0 or (self.until is not None and now >= self.until)

    def use(self) -> None:
        if self.requests > 0:
            self.requests -= 1


class _Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        raise NotImplementedError


class _TransientFault(_Fault):
    kind: Literal["timeout", "exception", "garbage"]
    requests: int | None = Field(None, ge=1, description="For this many requests.")
    seconds: float | None = Field(None, gt=0, description="For this many (real) seconds.")

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.requests is None and self.seconds is None:
            raise ValueError(f"a {self.kind} fault needs requests or seconds")
        return self

    def _transient(self, monotonic: Callable[[], float], **extra: Any) -> Transient:
        until = None if self.seconds is None else monotonic() + self.seconds
        requests = -1 if self.requests is None else self.requests
        return Transient(self.kind, requests, until, **extra)


class Timeout(_TransientFault):
    kind: Literal["timeout"] = "timeout"

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        meter.faults.append(self._transient(monotonic))


class ExceptionReply(_TransientFault):
    kind: Literal["exception"] = "exception"
    code: int = Field(DEVICE_FAILURE, ge=1, le=0xFF)

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        meter.faults.append(self._transient(monotonic, code=self.code))


class Garbage(_TransientFault):
    kind: Literal["garbage"] = "garbage"

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        meter.faults.append(self._transient(monotonic))


class Rollover(_Fault):
    kind: Literal["rollover"] = "rollover"
    steps: int = Field(20, ge=1, description="Raw steps left before the counter wraps.")

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        counters = [r for r in meter.profile.registers if r.wraps_at is not None]
        if not counters:
            raise ValueError(f"{meter.profile.id} has no counter with a width to roll over")
        for reg in counters:
            assert reg.wraps_at is not None
            target = (reg.wraps_at - self.steps) * float(reg.scale)
            shown = meter.value(reg, meter.time, 0.0)
            offsets = meter.state.register_offsets
            offsets[reg.name] = offsets.get(reg.name, 0.0) + shown - target


class PowerLoss(_Fault):
    kind: Literal["power_loss"] = "power_loss"

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        for reg in meter.profile.registers:
            if reg.volatile:
                shown = meter.value(reg, meter.time, 0.0)
                offsets = meter.state.register_offsets
                offsets[reg.name] = offsets.get(reg.name, 0.0) + shown


class ClockDrift(_Fault):
    kind: Literal["clock_drift"] = "clock_drift"
    seconds: float

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        meter.state.clock_offset += self.seconds


class Replacement(_Fault):
    kind: Literal["replacement"] = "replacement"
    serial: int = Field(ge=0, le=0xFFFF_FFFF)
    opening: float = Field(0.0, ge=0, description="The new meter's main counter.")

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        meter.state.serial = self.serial
        meter.state.base_offset = meter.state.amount - self.opening
        meter.state.register_offsets.clear()
        meter.state.clock_offset = 0.0
        meter.faults.clear()


class Jump(_Fault):
    kind: Literal["jump"] = "jump"
    amount: float = Field(gt=0, description="Added to the main counter at once.")

    def apply(self, meter: SimulatedMeter, monotonic: Callable[[], float]) -> None:
        meter.state.base_offset -= self.amount


Fault = Annotated[
    Timeout | ExceptionReply | Garbage | Rollover | PowerLoss | ClockDrift | Replacement | Jump,
    Field(discriminator="kind"),
]
_FAULT: TypeAdapter[Fault] = TypeAdapter(Fault)


def parse_fault(data: Mapping[str, Any]) -> Fault:
    """A fault from its file form, e.g. ``{"kind": "timeout", "requests": 3}``."""
    return _FAULT.validate_python(dict(data))
