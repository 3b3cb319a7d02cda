"""Modbus unit ids as people write them in configuration: ``1-20``, ``1,2,5``, ``1-3, 7``."""

from __future__ import annotations

MIN_UNIT, MAX_UNIT = 1, 247  # the unit ids a Modbus device may have


def parse_unit_ids(text: str) -> list[int]:
    """The ids ``text`` lists, in order; ValueError saying what is wrong (not a number, out of
    1-247, a range that runs backwards, an id listed twice, nothing at all)."""
    units: list[int] = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"empty unit id in {text!r}")
        first, dash, last = item.partition("-")
        if dash:
            low, high = _unit(first.strip()), _unit(last.strip())
            if low > high:
                raise ValueError(f"range {item!r} runs backwards")
            ids = range(low, high + 1)
        else:
            ids = range(_unit(item), _unit(item) + 1)
        for unit in ids:
            if unit in units:
                raise ValueError(f"unit id {unit} is listed twice")
            units.append(unit)
    return units


def _unit(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"unit id must be a number, got {text!r}")
    unit = int(text)
    if not MIN_UNIT <= unit <= MAX_UNIT:
        raise ValueError(f"unit id {unit} is outside {MIN_UNIT}-{MAX_UNIT}")
    return unit
