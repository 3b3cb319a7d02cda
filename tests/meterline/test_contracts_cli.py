"""`meterline contracts list|assign`: an operator sees the contract types and puts an account on
one; the policy of the new type decides at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.settings import get_settings
from tests.factories import customer, delivered_notice, set_balance

runner = CliRunner()


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Iterator[Any]:
    async def invoke(*args: str) -> Any:
        monkeypatch.setenv("METERLINE_DATABASE_URL", pg_url)
        get_settings.cache_clear()
        return await asyncio.to_thread(runner.invoke, app, ["contracts", *args])

    yield invoke
    get_settings.cache_clear()


async def test_an_operator_lists_contract_types_and_assigns_one(
        conn: psycopg.AsyncConnection[Any], run: Any) -> None:
    listed = await run("list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split("\t")[0]: line.split("\t")[1:3] for line in listed.output.splitlines()}
    assert rows["household"] == ["household", "statutory"]
    assert rows["business"] == ["business", "notice_then_restrict"]
    assert rows["prepay_cutoff"] == ["prepay_cutoff", "prepay_cutoff"]

    c = await customer(conn, "10", contract_type="household")
    await set_balance(conn, c.account_id, c.provider_id, "-5")
    moved = await run("assign", c.account_id, "business")
    assert (moved.exit_code, moved.output) == (
        0, f"account {c.account_id}: contract type household -> business\n")
    cur = await conn.execute("SELECT contract_type FROM accounts WHERE id = %s", (c.account_id,))
    assert await cur.fetchone() == ("business",)
    # decided at once under the business policy: a notice, the cut 10 days on
    cur = await conn.execute("SELECT rule FROM disconnections_due WHERE account_id = %s",
                             (c.account_id,))
    assert await cur.fetchone() == ("notice_then_restrict",)

    unknown = await run("assign", c.account_id, "nonsense")
    assert unknown.exit_code == 2 and "no contract type 'nonsense'" in unknown.output
    missing = await run("assign", "LS-nobody", "household")
    assert missing.exit_code == 2 and "No account LS-nobody" in missing.output


async def test_a_waiting_cut_follows_a_change_of_contract(
        conn: psycopg.AsyncConnection[Any]) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from meterline.relay import assign_contract_type, decide_relays

    msk = ZoneInfo("Europe/Moscow")
    c = await customer(conn, "10", contract_type="household")
    await set_balance(conn, c.account_id, c.provider_id, "-5")
    async with conn.transaction():  # a household's notice: 20 days
        await decide_relays(conn, [c.account_id], now=datetime(2026, 11, 24, 11, tzinfo=msk))
    await delivered_notice(conn, c.account_id, datetime(2026, 11, 24, 11, 30, tzinfo=msk))
    async with conn.transaction():
        await assign_contract_type(conn, c.account_id, "business")
        # 10 days after the same notice, business hours
        assert await decide_relays(conn, [c.account_id],
                                   now=datetime(2026, 12, 4, 11, 30, tzinfo=msk)) == [
            (c.meter_id, "disconnect")]
