"""Tariff zones of the day, in local time (DOMAIN.md §4), behind one function.

Two-zone: day 07-23, night 23-07. Three-zone: peak 07-10 and 17-21, semi-peak 10-17 and
21-23, night 23-07. Every zone boundary is on a whole local hour.

This is the schedule DOMAIN.md gives; it moves to the tariff model (zones as data with
validity dates) when that lands, and only `zone_of` changes.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt


class ZoneScheme(StrEnum):
    TWO = "two"
    THREE = "three"


# per scheme: the zone names, and the zone (an index into the names) of each local hour 0..23
_HOURS: dict[ZoneScheme, tuple[tuple[str, ...], tuple[int, ...]]] = {
    ZoneScheme.TWO: (("day", "night"), (1,) * 7 + (0,) * 16 + (1,)),
    ZoneScheme.THREE: (
        ("peak", "semi_peak", "night"),
        (2,) * 7 + (0,) * 3 + (1,) * 7 + (0,) * 4 + (1,) * 2 + (2,),
    ),
}


def zone_names(scheme: ZoneScheme) -> tuple[str, ...]:
    return _HOURS[scheme][0]


def zone_of(scheme: ZoneScheme, local_hour: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The zone (index into ``zone_names``) of each local hour of the day (0..23)."""
    return np.asarray(_HOURS[scheme][1], dtype=np.int64)[local_hour]
