"""What a simulator serves: its configuration file (TOML), or the one-server fleet the
settings describe.

    speedup = 600                  # simulated seconds per real second
    seed = 1                       # of the load profiles
    state_file = "var/simulators/state.json"   # registers and relays across restarts

    [[tcp]]                        # a Modbus TCP server (up to 247 unit ids)
    port = 5020
    [[tcp.meters]]
    units = "1-20"
    profile = "eastron-sdm120"
    serial_base = 10000000         # unit n of the group: serial_base + its index in the group
    load = "household"             # default: by the utility (industry for three-phase meters)

    [[rtu]]                        # a Modbus RTU line on a pseudo-terminal
    name = "rs485-1"
    link = "var/simulators/rs485-1"   # the device path a master opens (a symlink)
    [[rtu.meters]]
    units = "1-8"
    profile = "pulse-counter-16"
    utility = "gas"
    serial_base = 20000000

    [[faults]]                     # injected this many real seconds after start
    at = 30
    server = "tcp:5020"
    unit = 3
    fault = { kind = "rollover" }

Every meter has a key, ``tcp:<port>/<unit>`` or ``rtu:<name>/<unit>``, under which the state
file keeps it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from meterline.profiles import Profile, ProfileError, load_profiles
from meterline.profiles.loading import describe_errors, pick_profile
from meterline.settings import Settings
from meterline.unit_ids import parse_unit_ids
from meterline.units import Utility
from simulators.faults import Fault
from simulators.load_profiles import LoadKind

MAX_SERIAL = 0xFFFF_FFFF
DEFAULT_LOAD: dict[Utility, LoadKind] = {
    Utility.ELECTRICITY: LoadKind.HOUSEHOLD,
    Utility.COLD_WATER: LoadKind.COLD_WATER,
    Utility.HOT_WATER: LoadKind.HOT_WATER,
    Utility.GAS: LoadKind.GAS,
    Utility.HEAT: LoadKind.HEAT,
}


class ConfigError(ValueError):
    """A simulator configuration that cannot be served; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MeterGroup(_Strict):
    units: list[int] = Field(description='Unit ids: "1-20", "1,2,5" or a list.')
    profile: str
    serial_base: int = Field(ge=0, le=MAX_SERIAL)
    utility: Utility | None = Field(None, description="Default: the profile's first utility.")
    load: LoadKind | None = Field(None, description="Default: by the utility.")

    @field_validator("units", mode="before")
    @classmethod
    def _unit_ids(cls, value: Any) -> Any:
        if isinstance(value, str | int):
            return parse_unit_ids(str(value))
        return value

    @model_validator(mode="after")
    def _serials_fit(self) -> Self:
        if self.serial_base + len(self.units) - 1 > MAX_SERIAL:
            raise ValueError(f"serials from {self.serial_base} do not fit in a uint32")
        return self

    def serial(self, index: int) -> int:
        return self.serial_base + index


class TcpServer(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535, description="0: any free port.")
    meters: list[MeterGroup] = Field(min_length=1)

    @property
    def server(self) -> str:
        return f"tcp:{self.port}"


class RtuLine(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    link: Path = Field(description="Where the line's device path appears (a symlink).")
    baudrate: int = Field(9600, gt=0)
    meters: list[MeterGroup] = Field(min_length=1)

    @property
    def server(self) -> str:
        return f"rtu:{self.name}"


class ScheduledFault(_Strict):
    at: float = Field(ge=0, description="Real seconds after the simulator started.")
    server: str = Field(description='"tcp:<port>" or "rtu:<name>"')
    unit: int = Field(ge=1, le=247)
    fault: Fault


class SimulatorConfig(_Strict):
    speedup: float = Field(600.0, gt=0)
    seed: int = 1
    state_file: Path | None = Field(
        None, description="Registers, relays and serials kept across restarts."
    )
    profiles_dir: Path | None = None
    tcp: list[TcpServer] = Field(default_factory=list)
    rtu: list[RtuLine] = Field(default_factory=list)
    faults: list[ScheduledFault] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.tcp and not self.rtu:
            raise ValueError("nothing to serve: add a [[tcp]] server or an [[rtu]] line")
        names = [s.server for s in self.servers if not isinstance(s, TcpServer) or s.port]
        if len(names) != len(set(names)):
            raise ValueError(f"two servers share a name: {names}")
        serials: set[int] = set()
        for server in self.servers:
            units: set[int] = set()
            for group in server.meters:
                if units & set(group.units):
                    raise ValueError(f"unit id(s) {sorted(units & set(group.units))} "
                                     "listed twice on one server")
                units |= set(group.units)
                mine = {group.serial(i) for i in range(len(group.units))}
                if serials & mine:
                    raise ValueError(f"serial {min(serials & mine)} given to two meters")
                serials |= mine
        return self

    @property
    def servers(self) -> list[TcpServer | RtuLine]:
        """The TCP servers, then the RTU lines."""
        return [*self.tcp, *self.rtu]

    def profiles(self) -> dict[str, Profile]:
        profiles = load_profiles([self.profiles_dir] if self.profiles_dir else [])
        for server in self.servers:
            for group in server.meters:
                try:
                    pick_profile(profiles, group.profile, group.utility)
                except ProfileError as exc:
                    raise ConfigError(f"{server.server}: {exc}") from None
        return profiles


def load_config(path: Path) -> SimulatorConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the simulator configuration {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        return SimulatorConfig.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(describe_errors(exc, data))
        raise ConfigError(f"{path} is not a valid simulator configuration:\n  {problems}") from None


def config_from_settings(settings: Settings) -> SimulatorConfig:
    """``sim_config`` if set; otherwise ``sim_meters`` SDM120 meters on sim_host:sim_port."""
    if settings.sim_config is not None:
        return load_config(settings.sim_config)
    group = MeterGroup(units=list(range(1, settings.sim_meters + 1)), profile="eastron-sdm120",
                       serial_base=settings.sim_serial_base)
    return SimulatorConfig(
        speedup=settings.sim_speedup, seed=settings.sim_seed,
        state_file=settings.sim_state_dir / f"meters-{settings.sim_port}.json",
        tcp=[TcpServer(host=settings.sim_host, port=settings.sim_port, meters=[group])],
    )


__all__ = ["ConfigError", "MeterGroup", "ProfileError", "RtuLine", "ScheduledFault",
           "SimulatorConfig", "TcpServer", "config_from_settings", "load_config"]
