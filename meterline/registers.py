"""What the platform knows of a meter's billing registers beyond their readings: the span of a
counter of known width (after which it rolls over), from the meter's device profile.

Rating's register policy (``rating.core``) uses the span to tell a rollover (consumption
``value + span - level``) from a reset; a meter with no profile, or a register that is not a
fixed-width counter, has span 0: no drop of its is taken for a rollover.
"""

from __future__ import annotations

from functools import cache

from meterline.profiles import ProfileError
from meterline.profiles.loading import shipped_profiles

MICRO = 1_000_000


@cache
def counter_span_micro(profile_id: str | None, register: str) -> int:
    """The span of the billing register ``register`` of meters of profile ``profile_id`` in
    micro-units (2^counter_bits x scale), or 0 when it does not wrap or is not known."""
    if profile_id is None:
        return 0
    try:
        profile = shipped_profiles().get(profile_id)
    except ProfileError:
        return 0
    if profile is None:
        return 0
    for spec in profile.registers:
        if spec.register is not None and spec.register.value == register and spec.wraps_at:
            return int(spec.wraps_at * spec.scale * MICRO)
    return 0
