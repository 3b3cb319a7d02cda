"""Parsing ``gateway_meters``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.meters_config import EndpointConfig, MetersConfigError, parse_gateway_meters
from gateway.service import Gateway
from meterline.settings import Settings


def test_ranges_lists_and_several_endpoints() -> None:
    assert parse_gateway_meters("127.0.0.1:5020/1-3;10.0.0.7:502/1,2,5") == (
        EndpointConfig("127.0.0.1", 5020, (1, 2, 3)),
        EndpointConfig("10.0.0.7", 502, (1, 2, 5)),
    )


def test_default_setting_is_twenty_meters_on_the_simulator() -> None:
    (endpoint,) = parse_gateway_meters(Settings.model_fields["gateway_meters"].default)
    assert (endpoint.host, endpoint.port) == ("127.0.0.1", 5020)
    assert endpoint.units == tuple(range(1, 21))


def test_mixed_units_spaces_trailing_separator_and_repeated_endpoint() -> None:
    assert parse_gateway_meters(" meters.local:502 / 1-2, 7 ; meters.local:502/9 ;") == (
        EndpointConfig("meters.local", 502, (1, 2, 7, 9)),
    )


def test_ipv6_hosts_go_in_brackets() -> None:
    (endpoint,) = parse_gateway_meters("[::1]:1502/4")
    assert endpoint.host == "::1" and endpoint.address == "[::1]:1502"
    with pytest.raises(MetersConfigError, match="brackets"):
        parse_gateway_meters("::1:1502/4")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no meters"),
        (" ; ", "no meters"),
        ("127.0.0.1:5020", "expected host:port/units"),
        ("127.0.0.1:5020/", "expected host:port/units"),
        ("127.0.0.1/1-3", "expected host:port"),
        (":5020/1", "expected host:port"),
        ("127.0.0.1:port/1", "port must be a number"),
        ("127.0.0.1:70000/1", "port must be a number"),
        ("127.0.0.1:5020/0", "outside 1-247"),
        ("127.0.0.1:5020/1-248", "outside 1-247"),
        ("127.0.0.1:5020/5-2", "runs backwards"),
        ("127.0.0.1:5020/1,,2", "empty unit"),
        ("127.0.0.1:5020/one", "must be a number"),
        ("127.0.0.1:5020/1-3,2", "listed twice"),
        ("127.0.0.1:5020/1-3;127.0.0.1:5020/3", "listed twice"),
        ("my host:5020/1", "bad host"),
    ],
)
def test_bad_strings_get_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(MetersConfigError, match=message):
        parse_gateway_meters(spec)


def test_errors_quote_the_group_at_fault() -> None:
    with pytest.raises(MetersConfigError) as caught:
        parse_gateway_meters("127.0.0.1:5020/1-3;10.0.0.7:502/x")
    assert "'10.0.0.7:502/x'" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_gateway_refuses_to_start_on_a_bad_setting(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(MetersConfigError, match="outside 1-247"):
        Gateway(make_settings(gateway_meters="127.0.0.1:5020/300"))
