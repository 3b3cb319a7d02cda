"""The gateway's configuration file: TOML or YAML, validated, errors that say where and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import (
    ConfigError,
    RtuLine,
    TcpLine,
    config_from_settings,
    load_config,
    parse_config,
)
from gateway.devices import DeviceTable
from gateway.lines import Line
from meterline.settings import Settings
from meterline.units import Utility

TOML = """
[polling]
every = "15m"

[checks]
rate_factor = 600

[[lines]]
name = "tcp-1"
transport = "tcp"
host = "10.0.0.7"
timeout = "500ms"

[[lines]]
name = "rs485-1"
transport = "rtu"
device = "/dev/ttyUSB0"
baudrate = 19200
parity = "E"

[[meters]]
line = "tcp-1"
units = "1-3, 7"
profile = "eastron-sdm120"

[[meters]]
line = "rs485-1"
units = [1, 2]
profile = "pulse-counter-16"
utility = "gas"
timeout = 0.3
retries = 3
"""

YAML = """
polling: {every: 1s, align: false}
lines:
  - {name: tcp-1, transport: tcp, host: 127.0.0.1, port: 5020}
meters:
  - {line: tcp-1, units: 1-2, profile: heat-meter}
"""


async def test_a_toml_configuration(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(TOML)
    config = load_config(path)
    assert (config.polling.every, config.polling.align, config.checks.rate_factor) == (
        900.0, True, 600)
    tcp, rtu = config.lines
    assert isinstance(tcp, TcpLine) and (tcp.address, tcp.timeout, rtu.max_gap) == (
        "10.0.0.7:502", 0.5, 8)
    assert isinstance(rtu, RtuLine) and (rtu.baudrate, rtu.parity) == (19200, "E")
    assert config.meters[0].units == [1, 2, 3, 7]
    table = DeviceTable.build(config, {line.name: Line(line) for line in config.lines})
    names = [d.name for d in table.devices]
    assert names == ["tcp-1-1", "tcp-1-2", "tcp-1-3", "tcp-1-7", "rs485-1-1", "rs485-1-2"]
    gas = table.devices[-1]
    assert (gas.utility, gas.timeout, gas.retries) == (Utility.GAS, 0.3, 3)
    sdm = table.devices[0]
    assert (sdm.utility, sdm.timeout, sdm.retries, len(sdm.plan)) == (
        Utility.ELECTRICITY, 0.5, 1, 1)


def test_a_yaml_configuration(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(YAML)
    config = load_config(path)
    assert (config.polling.every, config.polling.align) == (1.0, False)
    assert config.meters[0].units == [1, 2] and config.meters[0].profile == "heat-meter"


@pytest.mark.parametrize(("change", "expected"), [
    ({"polling": {"every": "soon"}}, "polling.every: expected a duration like 15m"),
    ({"lines": [{"name": "a", "transport": "modbus-udp", "host": "x"}]},
     "lines[0] (a): Input tag 'modbus-udp' found using 'transport' does not match"),
    ({"meters": [{"line": "nowhere", "units": "1", "profile": "eastron-sdm120"}]},
     "meters name line 'nowhere'"),
    ({"meters": [{"line": "tcp-1", "units": "1-300", "profile": "eastron-sdm120"}]},
     "meters[0].units: unit id 300 is outside 1-247"),
    ({"meters": [{"line": "tcp-1", "units": "1", "profile": "sdm999"}]},
     "meters[0]: unknown profile 'sdm999'"),
    ({"meters": [{"line": "tcp-1", "units": "1", "profile": "heat-meter",
                  "utility": "gas"}]},
     "meters[0]: profile heat-meter meters heat, not gas"),
    ({"meters": [{"line": "tcp-1", "units": "1", "profile": "heat-meter",
                  "poll": ["voltage"]}]},
     "meters[0].poll: profile heat-meter has no register 'voltage'"),
    ({"meters": [{"line": "tcp-1", "units": "1-2", "profile": "heat-meter"},
                 {"line": "tcp-1", "units": "2", "profile": "heat-meter"}]},
     "unit(s) [2] listed twice on line tcp-1"),
    ({"lines": [{"name": "tcp-1", "transport": "tcp", "host": "h", "retries": 99}]},
     "lines[0] (tcp-1).tcp.retries: Input should be less than or equal to 10"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
])
def test_configuration_errors_say_where_and_why(change: dict[str, object],
                                                expected: str) -> None:
    data: dict[str, object] = {
        "lines": [{"name": "tcp-1", "transport": "tcp", "host": "127.0.0.1"}],
        "meters": [{"line": "tcp-1", "units": "1", "profile": "eastron-sdm120"}],
        **change,
    }
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "gateway.toml")
    assert expected in str(raised.value)


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[[lines]\n")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_config(tmp_path / "bad.toml")


def test_without_a_file_the_settings_meters_are_sdm120s_on_tcp_lines() -> None:
    settings = Settings(_env_file=None, gateway_meters="127.0.0.1:5020/1-3;10.0.0.7:502/5",
                        poll_interval=0.5)
    config = config_from_settings(settings, timeout=0.25)
    assert [(line.name, line.address, line.timeout, line.retries) for line in config.lines] == [
        ("tcp-1", "127.0.0.1:5020", 0.25, 0), ("tcp-2", "10.0.0.7:502", 0.25, 0)]
    assert [(m.line, m.units, m.profile) for m in config.meters] == [
        ("tcp-1", [1, 2, 3], "eastron-sdm120"), ("tcp-2", [5], "eastron-sdm120")]
    assert (config.polling.every, config.polling.align) == (0.5, False)


def test_the_settings_may_name_a_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yml"
    path.write_text(YAML)
    config = config_from_settings(Settings(_env_file=None, gateway_config=path))
    assert config.meters[0].profile == "heat-meter"
