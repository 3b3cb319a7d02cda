"""Reading bank registries through their layout files: both shipped layouts, bad lines
refused with their line number and reason, files refused whole when they cannot be trusted."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.payments.registries import RegistryRefused, load_layout, parse
from meterline.errors import Invalid
from tests.factories import RegistryRow, post_registry, sberbank_registry

SBER = load_layout("sberbank")
POST = load_layout("post")
ROWS = [RegistryRow("LS-1", "1500.00", period="2024-11", operation_id="501"),
        RegistryRow("LS-2", "250.50", paid_on="2024-12-01", period=None, operation_id="502",
                    payer="ПЕТРОВА АННА СЕРГЕЕВНА")]


@pytest.mark.parametrize(("layout", "make"), [(SBER, sberbank_registry), (POST, post_registry)])
def test_both_layouts_read_the_same_payments(layout: object, make: object) -> None:
    assert callable(make)
    registry = parse(make(ROWS), load_layout(layout.id))  # type: ignore[attr-defined]
    first, second = registry.payments
    assert (first.account_id, first.amount, first.paid_on, first.period, first.operation_id) == (
        "LS-1", Decimal("1500.00"), date(2024, 12, 2), date(2024, 11, 1), "501")
    assert (second.account_id, second.amount, second.paid_on, second.period) == (
        "LS-2", Decimal("250.50"), date(2024, 12, 1), None)
    assert second.payer.startswith("ПЕТРОВ")
    assert (registry.count, registry.total, registry.refused) == (2, Decimal("1750.50"), ())


def test_the_sberbank_layout_reads_its_own_lines_and_number() -> None:
    data = (b"02-12-2024;10-15-32;9038;1234;501234567890;LS-10000001;"
            + "ИВАНОВ ИВАН ИВАНОВИЧ;МОСКВА,УЛ ЛЕНИНА,1,5".encode("cp1251")
            + b";1124;1500,00;1492,50;7,50\r\n=1;1500,00;1492,50;7,50;0,00;42;02-12-2024\r\n")
    registry = parse(data, SBER)
    (payment,) = registry.payments
    assert payment.line == 1 and payment.address == "МОСКВА,УЛ ЛЕНИНА,1,5"
    assert payment.period == date(2024, 11, 1) and registry.number == "42"
    assert len(registry.digest) == 64


def test_a_bad_line_is_refused_with_its_number_and_reason_and_the_others_stand() -> None:
    rows = [
        RegistryRow("LS-1", "100.00", operation_id="1"),
        RegistryRow("LS 2", "200.00", operation_id="2"),  # line 4 (after 2 header lines)
        RegistryRow("LS-3", "300.005", operation_id="3"),
        RegistryRow("LS-4", "400.00", operation_id="1"),
        RegistryRow("LS-5", "500.00", operation_id="5", period="2024-13"),
    ]
    registry = parse(post_registry(rows, total="1500.005"), POST)
    assert [p.account_id for p in registry.payments] == ["LS-1"]
    assert [(r.line, r.reason) for r in registry.refused] == [
        (4, "account 'LS 2' is not a personal account number"),
        (5, "amount 300.005 is not a positive sum in whole kopecks"),
        (6, "operation 1 is also on line 3"),
        (7, "period '13.2024' is not %m.%Y"),
    ]
    assert registry.refused[0].amount == Decimal("200.00")


def test_a_file_whose_totals_do_not_match_is_refused_whole() -> None:
    with pytest.raises(RegistryRefused, match=r"says 2 payments for 1750\.51, the file "
                                              r"has 2 for 1750\.50"):
        parse(sberbank_registry(ROWS, total="1750.51"), SBER)
    with pytest.raises(RegistryRefused, match="line 5: the closing line says 3 payments"):
        parse(post_registry(ROWS, count=3), POST)


def test_a_file_without_its_closing_line_or_not_in_its_encoding_is_refused_whole() -> None:
    truncated = b"\r\n".join(sberbank_registry(ROWS).split(b"\r\n")[:2])
    with pytest.raises(RegistryRefused, match="no closing line starting with '='"):
        parse(truncated, SBER)
    utf8 = post_registry(ROWS).decode("cp1251").encode("utf-8").replace(b"LS-2", b"LS-2\x98")
    with pytest.raises(RegistryRefused, match="not cp1251 text"):
        parse(utf8, POST)
    unreadable = sberbank_registry(ROWS).replace(b"250,50;250,50", b"25O,50;250,50")
    with pytest.raises(RegistryRefused, match="line 2: amount '25O,50' is not a number"):
        parse(unreadable, SBER)


def test_an_unknown_layout_names_the_known_ones() -> None:
    with pytest.raises(Invalid, match=r"known: post, sberbank"):
        load_layout("nobank")
