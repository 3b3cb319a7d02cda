"""Device profiles: meter models described as data (TOML files), and what reads and presents
meters by them.

``model`` (the profile: registers, spans, request limit, serial, relay), ``codecs`` (register
words to numbers and back, with byte and word order), ``planning`` (block reads within a
meter's limits), ``loading`` (profile files, shipped ones in ``devices/``). The gateway reads
meters by their profiles and the simulators present meters by the same ones.
"""

from meterline.profiles.codecs import Codec, DataType, DecodingError, Order
from meterline.profiles.loading import (
    ProfileError,
    load_profile,
    load_profiles,
    shipped_profile,
    shipped_profiles,
)
from meterline.profiles.model import Measure, Profile, RegisterSpec, RelaySpec
from meterline.profiles.planning import Read, plan_reads

__all__ = [
    "Codec", "DataType", "DecodingError", "Measure", "Order", "Profile", "ProfileError", "Read",
    "RegisterSpec", "RelaySpec", "load_profile", "load_profiles", "plan_reads",
    "shipped_profile", "shipped_profiles",
]
