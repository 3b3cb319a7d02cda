"""Which meters a gateway polls, from ``Settings.gateway_meters``.

Format: ``host:port/units`` groups separated by ``;``; units are ranges and single ids
separated by commas: ``127.0.0.1:5020/1-20;10.0.0.7:502/1,2,5``. An IPv6 host goes in
brackets (``[::1]:502/1``). Two groups may name the same endpoint; a unit may not repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_UNIT, MAX_UNIT = 1, 247


class MetersConfigError(ValueError):
    """``gateway_meters`` cannot be understood; the message says where and why."""


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    host: str
    port: int
    units: tuple[int, ...]

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _parse_address(text: str, group: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text:
        raise MetersConfigError(f"{group!r}: expected host:port before '/', got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise MetersConfigError(f"{group!r}: put an IPv6 host in brackets, like [::1]:502")
    if not host or any(c.isspace() for c in host):
        raise MetersConfigError(f"{group!r}: bad host {host!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise MetersConfigError(f"{group!r}: port must be a number 1-65535, got {port_text!r}")
    return host, int(port_text)


def _parse_unit(text: str, group: str) -> int:
    if not text.isdigit():
        raise MetersConfigError(f"{group!r}: unit id must be a number, got {text!r}")
    unit = int(text)
    if not MIN_UNIT <= unit <= MAX_UNIT:
        raise MetersConfigError(
            f"{group!r}: unit id {unit} is outside {MIN_UNIT}-{MAX_UNIT}"
        )
    return unit


def _parse_units(text: str, group: str) -> list[int]:
    units: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise MetersConfigError(f"{group!r}: empty unit in {text!r}")
        first, dash, last = item.partition("-")
        if dash:
            low, high = _parse_unit(first.strip(), group), _parse_unit(last.strip(), group)
            if low > high:
                raise MetersConfigError(f"{group!r}: range {item!r} runs backwards")
            units.extend(range(low, high + 1))
        else:
            units.append(_parse_unit(item, group))
    return units


def parse_gateway_meters(spec: str) -> tuple[EndpointConfig, ...]:
    """The endpoints and unit ids ``spec`` lists, in the order given; MetersConfigError
    for anything malformed, out of range or repeated."""
    endpoints: dict[tuple[str, int], list[int]] = {}
    for raw in spec.split(";"):
        group = raw.strip()
        if not group:
            continue
        address, slash, units_text = group.partition("/")
        if not slash or not units_text.strip():
            raise MetersConfigError(
                f"{group!r}: expected host:port/units, like 127.0.0.1:5020/1-20"
            )
        key = _parse_address(address.strip(), group)
        units = endpoints.setdefault(key, [])
        for unit in _parse_units(units_text, group):
            if unit in units:
                raise MetersConfigError(f"{group!r}: unit {unit} of {address} is listed twice")
            units.append(unit)
    if not endpoints:
        raise MetersConfigError(
            f"no meters in {spec!r}: expected host:port/units groups separated by ';'"
        )
    return tuple(
        EndpointConfig(host, port, tuple(units)) for (host, port), units in endpoints.items()
    )
