"""`meterline payments import FILE`: both layouts, bad lines, the same registry twice, totals
that do not match, an operation received through another file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from meterline.cli import app
from meterline.settings import get_settings
from tests.conftest import unique
from tests.factories import (
    RegistryRow,
    charge_month,
    housing_account,
    post_registry,
    sberbank_registry,
)

runner = CliRunner()


async def cli(*args: str) -> Result:
    """The command as a user runs it (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(runner.invoke, app, list(args))


@pytest.fixture(autouse=True)
def database(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("METERLINE_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def paid(conn: psycopg.AsyncConnection[Any], account: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        "SELECT key, amount, period, line FROM payments WHERE account_id = %s ORDER BY line",
        (account,))
    return await cur.fetchall()


@pytest.mark.parametrize("layout", ["sberbank", "post"])
async def test_a_registry_is_posted_once_with_its_bad_lines_refused(
    conn: psycopg.AsyncConnection[Any], tmp_path: Path, layout: str,
) -> None:
    a = await housing_account(conn)
    b = await housing_account(conn)
    await charge_month(conn, a, date(2024, 11, 1), {"maintenance": "1000.00"})
    ops = [unique("op") for _ in range(4)]
    rows = [RegistryRow(a.account_id, "1000.00", operation_id=ops[0]),
            RegistryRow(b.account_id, "250.50", period=None, operation_id=ops[1]),
            RegistryRow("LS-NOBODY", "99.00", operation_id=ops[2]),
            RegistryRow(a.account_id, "10.005", operation_id=ops[3])]
    make = sberbank_registry if layout == "sberbank" else post_registry
    first = 1 if layout == "sberbank" else 3  # the post layout has two header lines
    registry = tmp_path / f"{layout}.txt"
    registry.write_bytes(make(rows, total="1359.505"))

    result = await cli("payments", "import", str(registry), "--layout", layout)
    assert result.exit_code == 1, result.output
    assert "posted 2, received before 0, refused 2" in result.stdout
    assert f"line {first + 2}: no account LS-NOBODY" in result.stderr
    assert f"line {first + 3}: amount 10.005 is not a positive sum in whole kopecks" in \
        result.stderr
    assert await paid(conn, a.account_id) == [
        (f"payment:registry:{layout}:{ops[0]}", Decimal("1000.00"), date(2024, 11, 1), first)]
    cur = await conn.execute(
        "SELECT line, reason FROM registry_refusals r JOIN registries g ON g.id = r.registry_id"
        " WHERE g.file_name = %s ORDER BY line", (registry.name,))
    assert [line for line, _ in await cur.fetchall()] == [first + 2, first + 3]

    again = await cli("payments", "import", str(registry), "--layout", layout)
    assert again.exit_code == 2 and "this registry was imported on" in again.stderr
    assert len(await paid(conn, a.account_id)) == 1


async def test_a_registry_whose_totals_do_not_match_is_refused_whole(
    conn: psycopg.AsyncConnection[Any], tmp_path: Path,
) -> None:
    a = await housing_account(conn)
    registry = tmp_path / "short.txt"
    registry.write_bytes(sberbank_registry(
        [RegistryRow(a.account_id, "100.00", operation_id=unique("op"))], total="1000.00"))
    result = await cli("payments", "import", str(registry))
    assert result.exit_code == 2
    assert "refused whole: line 2: the closing line says 1 payments for 1000.00" in \
        result.stderr
    assert await paid(conn, a.account_id) == []
    cur = await conn.execute("SELECT count(*) FROM registries WHERE file_name = 'short.txt'")
    assert await cur.fetchone() == (0,)


async def test_an_operation_sent_again_in_another_file_is_not_received_twice(
    conn: psycopg.AsyncConnection[Any], tmp_path: Path,
) -> None:
    a = await housing_account(conn)
    row = RegistryRow(a.account_id, "300.00", operation_id=unique("op"))
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_bytes(sberbank_registry([row], number="1"))
    two.write_bytes(sberbank_registry([row], number="2"))  # another file, the same payment
    assert (await cli("payments", "import", str(one))).exit_code == 0
    result = await cli("payments", "import", str(two))
    assert result.exit_code == 0 and "posted 0, received before 1, refused 0" in result.stdout
    assert len(await paid(conn, a.account_id)) == 1
    # the same operation number with another amount is a bad line, not a second payment
    three = tmp_path / "three.txt"
    three.write_bytes(sberbank_registry([RegistryRow(a.account_id, "301.00",
                                                     operation_id=row.operation_id)],
                                        number="3"))
    clash = await cli("payments", "import", str(three))
    assert clash.exit_code == 1
    assert f"line 1: operation {row.operation_id} was received before for account " \
        f"{a.account_id}, 300.00" in clash.stderr
