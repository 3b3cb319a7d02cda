"""Tariff zones for splitting consumption: the zone schemes of DOMAIN.md §4 in the tariff
model's own terms (`meterline.tariffs.model.Zone`, laid over the day by
`meterline.tariffs.zones`), so usage by zone uses the same windows a tariff book declares.

Two-zone: day 07-23, night 23-07. Three-zone: peak 07-10 and 17-21, semi-peak 10-17 and
21-23, night 23-07.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache

import numpy as np
import numpy.typing as npt

from meterline.tariffs.model import Zone
from meterline.tariffs.zones import zone_of_minute


class ZoneScheme(StrEnum):
    TWO = "two"
    THREE = "three"


SCHEMES: dict[ZoneScheme, tuple[Zone, ...]] = {
    ZoneScheme.TWO: (
        Zone(name="day", windows=("07:00-23:00",)),
        Zone(name="night", windows=("23:00-07:00",)),
    ),
    ZoneScheme.THREE: (
        Zone(name="peak", windows=("07:00-10:00", "17:00-21:00")),
        Zone(name="semi_peak", windows=("10:00-17:00", "21:00-23:00")),
        Zone(name="night", windows=("23:00-07:00",)),
    ),
}


def zone_names(scheme: ZoneScheme) -> tuple[str, ...]:
    return tuple(zone.name for zone in SCHEMES[scheme])


@cache
def _zone_of_minute(scheme: ZoneScheme) -> npt.NDArray[np.int64]:
    return np.array(zone_of_minute(SCHEMES[scheme]), dtype=np.int64)


def zone_of(scheme: ZoneScheme, local_minute: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The zone (index into ``zone_names``) of each local minute of the day (0..1439)."""
    return _zone_of_minute(scheme)[local_minute]
