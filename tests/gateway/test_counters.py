"""Counter checks: the flags a reading gets (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.counters import Baseline, check
from meterline.contracts import ReadingFlag
from meterline.profiles import shipped_profile

T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PULSES_16 = shipped_profile("pulse-counter-16").register("volume")  # 0.01 m3, wraps 655.36
PULSES_32 = shipped_profile("pulse-counter-32").register("volume")
SDM120 = shipped_profile("eastron-sdm120").register("import_active_energy")  # float32, 12 kWh/h
SDM630 = shipped_profile("eastron-sdm630").register("import_active_energy")
R, J, W, F = (ReadingFlag.RESET, ReadingFlag.IMPLAUSIBLE_JUMP, ReadingFlag.ROLLOVER,
              ReadingFlag.FLOAT32_RESOLUTION)


def flags(reg: object, before: str | None, after: str, seconds: float = 60.0,
          rate_factor: float = 1.0) -> tuple[ReadingFlag, ...]:
    baseline = None if before is None else Baseline(Decimal(before), T)
    return check(reg, Decimal(after), T + timedelta(seconds=seconds), baseline,  # type: ignore[arg-type]
                 rate_factor)


def test_normal_growth_and_no_baseline_are_not_flagged() -> None:
    assert flags(SDM120, None, "1234.5") == ()
    assert flags(SDM120, "1234.5", "1234.6") == ()
    assert flags(SDM120, "1234.5", "1234.5") == ()
    assert flags(PULSES_16, "100.00", "100.05") == ()


def test_a_16_bit_counter_passing_its_width_rolled_over() -> None:
    assert flags(PULSES_16, "655.30", "0.02") == (W,)  # 4 pulses in a minute: plausible
    assert flags(PULSES_32, "42949672.90", "0.04") == (W,)


def test_a_counter_that_falls_otherwise_was_reset() -> None:
    assert flags(PULSES_16, "350.00", "0.00") == (R,)  # power loss of the volatile counter
    assert flags(PULSES_16, "655.30", "300.00") == (R,)  # would be 300 m3 in a minute
    assert flags(SDM120, "1234.5", "12.0") == (R,)  # a float register has no width


def test_growth_faster_than_the_meter_can_measure_is_an_implausible_jump() -> None:
    assert flags(SDM120, "1000", "1000.25", seconds=60) == ()  # 15 kWh/h, within the slack
    assert flags(SDM120, "1000", "1005", seconds=60) == (J,)  # 300 kWh/h
    assert flags(SDM120, "1000", "1005", seconds=3600) == ()  # 5 kWh in an hour: fine
    # a simulated fleet 600 times faster than real time grows 600 times faster too
    assert flags(SDM120, "1000", "1050", seconds=60, rate_factor=600) == ()


def test_a_float32_too_large_for_the_billing_step_loses_resolution() -> None:
    assert flags(SDM630, None, "131000") == ()
    assert flags(SDM630, None, "131072") == (F,)  # float32 steps of 0.015625 from here
    assert flags(SDM630, "150000", "150000.5", seconds=60) == (F,)  # and nothing else
