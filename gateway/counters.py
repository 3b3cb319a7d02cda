"""Billing-grade counter checks: what a reading of a cumulative register says beyond its value.

The gateway always publishes the register as the meter shows it, and flags what it notices,
so the platform's register policy can act (it, not the gateway, decides what is billed):

- ``rollover``: lower than the last reading by what the counter's width explains (a 16-bit
  pulse counter passing 65,535 pulses), at a rate the meter can measure;
- ``reset``: lower otherwise (a counter cleared, a volatile counter after a power loss,
  another meter at the address, garbage);
- ``implausible_jump``: higher than the meter can measure in the time since the last
  reading (its ``max_per_hour``, times ``rate_factor`` for a simulated fleet);
- ``float32_resolution``: a float32 register so large it can no longer show the billing
  step (its ``resolution``): 131,072 kWh and up cannot show hundredths.

Pure: the baseline (the last reading published) comes in, flags go out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from meterline.contracts import ReadingFlag
from meterline.profiles import RegisterSpec
from meterline.profiles.codecs import float32_step

SLACK = Decimal("1.5")  # a meter may run a little past its nominal maximum
MIN_HOURS = Decimal(1) / 3600  # rates over less than a second are not judged more finely
SUSPECT = frozenset({ReadingFlag.RESET, ReadingFlag.IMPLAUSIBLE_JUMP})  # worth a second look


@dataclass(frozen=True, slots=True)
class Baseline:
    """The last reading of a register the gateway published."""

    value: Decimal
    ts: datetime


def check(reg: RegisterSpec, value: Decimal, ts: datetime, before: Baseline | None,
          rate_factor: float = 1.0) -> tuple[ReadingFlag, ...]:
    flags: list[ReadingFlag] = []
    step = reg.resolution or reg.scale  # the finest change the register shows
    if reg.type == "float32":
        shown_step = Decimal(float32_step(float(value)))
        if reg.resolution is not None and shown_step > reg.resolution:
            flags.append(ReadingFlag.FLOAT32_RESOLUTION)
        step = max(step, shown_step)
    if before is None or ts <= before.ts:
        return tuple(flags)
    most = _most(reg, before.ts, ts, rate_factor, step)
    delta = value - before.value
    if delta < 0:
        if reg.wraps_at is None:
            flags.append(ReadingFlag.RESET)
        else:
            span = reg.wraps_at * reg.scale
            wrapped = delta + span
            plausible = wrapped <= most if most is not None else wrapped < span / 2
            flags.append(ReadingFlag.ROLLOVER if plausible and wrapped >= 0
                         else ReadingFlag.RESET)
    elif most is not None and delta > most:
        flags.append(ReadingFlag.IMPLAUSIBLE_JUMP)
    return tuple(flags)


def _most(reg: RegisterSpec, start: datetime, end: datetime, rate_factor: float,
          step: Decimal) -> Decimal | None:
    """The most the register can plausibly grow from ``start`` to ``end`` (and two of its
    steps, which rounding alone may account for)."""
    if reg.max_per_hour is None:
        return None
    hours = max(Decimal((end - start).total_seconds()) / 3600, MIN_HOURS)
    return reg.max_per_hour * Decimal(repr(rate_factor)) * hours * SLACK + 2 * step
