"""What a gateway polls and how: its configuration file (TOML or YAML), validated with clear
errors, or the SDM120s that ``gateway_meters`` lists.

    [polling]
    every = "15m"          # or "1s", "30s", "1h", or seconds as a number
    align = true           # on the quarter hour (on the period's multiples of UTC time)

    [checks]
    rate_factor = 1        # a simulated fleet running N times real time: N
    clock_drift_s = 60     # a meter's own clock further off than this is reported

    [[lines]]              # one Modbus connection: a worker of its own, one request at a time
    name = "tcp-1"
    transport = "tcp"
    host = "10.0.0.7"
    port = 502
    timeout = 1.0          # seconds per request (a meter of the line may have its own)
    retries = 1            # a request that gets no answer is sent again this many times,
    backoff = 0.2          # after this many seconds, doubled each time

    [[lines]]
    name = "rs485-1"
    transport = "rtu"
    device = "/dev/ttyUSB0"
    baudrate = 9600
    parity = "N"           # N, E or O
    stopbits = 1
    max_gap = 8            # a read takes in at most this many unwanted registers (slow line)

    [[meters]]
    line = "tcp-1"
    units = "1-20"
    profile = "eastron-sdm120"
    utility = "electricity"   # default: the profile's first

    [[meters]]
    line = "rs485-1"
    units = "1-4"
    profile = "pulse-counter-16"
    utility = "gas"
    timeout = 0.5

Each meter is a *device* named ``<line>-<unit>`` (its status topic, its identity across
meter replacements).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.meters_config import parse_gateway_meters
from meterline.profiles import Profile, ProfileError, load_profiles
from meterline.profiles.loading import describe_errors, pick_profile
from meterline.settings import Settings
from meterline.unit_ids import parse_unit_ids
from meterline.units import Utility

LEGACY_PROFILE = "eastron-sdm120"  # the model of the meters ``gateway_meters`` lists
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


class ConfigError(ValueError):
    """A gateway configuration that cannot be used; the message says where and why."""


def seconds(value: Any) -> Any:
    """A duration: a number of seconds, or text like ``15m``, ``1s``, ``500ms``, ``1h``."""
    if isinstance(value, str):
        found = _DURATION.match(value)
        if not found:
            raise ValueError(f"expected a duration like 15m, 30s or 500ms, got {value!r}")
        return float(found[1]) * _SECONDS[found[2]]
    return value


Duration = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Polling(_Strict):
    every: Duration = Field(1.0, le=86_400, description="Seconds between poll cycles.")
    align: bool = Field(True, description="Poll on multiples of the period (UTC), e.g. on the "
                                          "quarter hour.")

    _every = field_validator("every", mode="before")(seconds)


class Checks(_Strict):
    rate_factor: float = Field(1.0, gt=0, description="How much faster than real time the "
                                                      "meters run (simulated fleets).")
    clock_drift_s: float = Field(60.0, gt=0, description="Meter clock error worth reporting.")
    verify_serial_every: int = Field(
        60, ge=1, description="Cycles between reads of each meter's serial (a meter swapped "
                              "faster than it goes silent is found this way).")


class _Line(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,48}$")
    timeout: Duration = Field(1.0, le=60)
    retries: int = Field(1, ge=0, le=10)
    backoff: float = Field(0.2, ge=0, le=60)
    max_gap: int | None = Field(None, ge=0, le=125, description="Unwanted registers a read may "
                                                               "take in (default: any).")

    _durations = field_validator("timeout", "backoff", mode="before")(seconds)


class TcpLine(_Line):
    transport: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class RtuLine(_Line):
    transport: Literal["rtu"] = "rtu"
    device: Path
    baudrate: int = Field(9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    max_gap: int | None = Field(8, ge=0, le=125)

    @property
    def address(self) -> str:
        return str(self.device)


Line = Annotated[TcpLine | RtuLine, Field(discriminator="transport")]


class MeterGroup(_Strict):
    line: str
    units: list[int] = Field(min_length=1, description='Unit ids: "1-20", "1,2,5" or a list.')
    profile: str
    utility: Utility | None = None
    poll: list[str] | None = Field(None, description="Registers to read (default: the "
                                                     "profile's poll list).")
    block_reads: bool = Field(True, description="False: one request per value (for tests and "
                                                "benchmarks).")
    timeout: Duration | None = Field(None, le=60)
    retries: int | None = Field(None, ge=0, le=10)

    _timeout = field_validator("timeout", mode="before")(seconds)

    @field_validator("units", mode="before")
    @classmethod
    def _unit_ids(cls, value: Any) -> Any:
        return parse_unit_ids(str(value)) if isinstance(value, str | int) else value


class GatewayConfig(_Strict):
    polling: Polling = Field(default_factory=Polling)
    checks: Checks = Field(default_factory=Checks)
    profiles_dir: Path | None = Field(None, description="Profiles of your own (TOML files).")
    lines: list[Line] = Field(min_length=1)
    meters: list[MeterGroup] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [line.name for line in self.lines]
        if len(names) != len(set(names)):
            raise ValueError(f"line names must be unique: {names}")
        addresses = [line.address for line in self.lines]
        if len(addresses) != len(set(addresses)):
            raise ValueError(f"two lines use the same connection: {addresses}")
        used: dict[str, set[int]] = {}
        for group in self.meters:
            if group.line not in names:
                raise ValueError(f"meters name line {group.line!r}; lines are {names}")
            units = used.setdefault(group.line, set())
            twice = units & set(group.units)
            if twice:
                raise ValueError(f"unit(s) {sorted(twice)} listed twice on line {group.line}")
            units |= set(group.units)
        return self

    def line(self, name: str) -> TcpLine | RtuLine:
        return next(line for line in self.lines if line.name == name)

    def profiles(self) -> dict[str, Profile]:
        """The profiles the meters use (shipped ones and ``profiles_dir``); ConfigError for a
        profile that does not exist, a utility it does not meter, a register it lacks."""
        try:
            profiles = load_profiles([self.profiles_dir] if self.profiles_dir else [])
        except ProfileError as exc:
            raise ConfigError(str(exc)) from exc
        for index, group in enumerate(self.meters):
            where = f"meters[{index}]"
            try:
                profile = pick_profile(profiles, group.profile, group.utility)
            except ProfileError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            for name in group.poll or []:
                if name not in {r.name for r in profile.registers}:
                    raise ConfigError(f"{where}.poll: profile {profile.id} has no register "
                                      f"{name!r}")
        return {group.profile: profiles[group.profile] for group in self.meters}


def parse_config(data: Any, source: str) -> GatewayConfig:
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(describe_errors(exc, data if isinstance(data, dict) else None))
        raise ConfigError(f"{source} is not a valid gateway configuration:\n  {problems}") \
            from None
    config.profiles()
    return config


def load_config(path: Path) -> GatewayConfig:
    """The configuration in ``path``: TOML, or YAML for a .yaml/.yml file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the gateway configuration {path}: {exc}") from exc
    try:
        data = (yaml.safe_load(text) if path.suffix in (".yaml", ".yml")
                else tomllib.loads(text))
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} cannot be parsed: {exc}") from exc
    return parse_config(data, str(path))


def config_from_settings(settings: Settings, *, timeout: float = 1.0) -> GatewayConfig:
    """``gateway_config`` if set; otherwise SDM120s at the ``gateway_meters`` endpoints (one
    TCP line each), polled every ``poll_interval`` seconds, checked at ``gateway_rate_factor``."""
    if settings.gateway_config is not None:
        return load_config(settings.gateway_config)
    endpoints = parse_gateway_meters(settings.gateway_meters)
    lines = [TcpLine(name=f"tcp-{n + 1}", host=e.host, port=e.port, timeout=timeout, retries=0)
             for n, e in enumerate(endpoints)]
    meters = [MeterGroup(line=line.name, units=list(e.units), profile=LEGACY_PROFILE)
              for line, e in zip(lines, endpoints, strict=True)]
    return GatewayConfig(polling=Polling(every=settings.poll_interval, align=False),
                         lines=lines, meters=meters,
                         checks=Checks(rate_factor=settings.gateway_rate_factor))
