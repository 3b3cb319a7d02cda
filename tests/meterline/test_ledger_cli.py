"""`meterline ledger check`: proves the books of a database or one account, names what is wrong
and exits non-zero if anything is."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from meterline import db
from meterline.cli import app
from meterline.settings import get_settings
from tests.conftest import PG_ADMIN
from tests.factories import Customer, customers

runner = CliRunner()


@pytest.fixture
async def books() -> AsyncIterator[tuple[str, Customer, Customer]]:
    """A database of its own (a broken balance must not disturb other tests' checks) with two
    accounts; the second one's balance is then broken behind the ledger's back."""
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/meterline_books_{uuid.uuid4().hex[:8]}"
    await db.create_database(url, exist_ok=False)
    try:
        await db.migrate(url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            good, bad = await customers(conn, ["10", "20"])
        yield url, good, bad
    finally:
        await db.drop_database(url)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    async def invoke(url: str, *args: str) -> Any:
        monkeypatch.setenv("METERLINE_DATABASE_URL", url)
        get_settings.cache_clear()
        # in a thread of its own, as from a shell: the command runs its own event loop
        return await asyncio.to_thread(runner.invoke, app, ["ledger", "check", *args])

    yield invoke
    get_settings.cache_clear()


async def _break(url: str, who: Customer) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("SET session_replication_role = replica")  # the rules off
        await conn.execute("UPDATE balances SET amount = 21 WHERE account_id = %s",
                           (who.account_id,))
        await conn.commit()


async def test_ledger_check_proves_the_books_or_names_what_is_wrong(
    books: tuple[str, Customer, Customer], run: Any,
) -> None:
    url, good, bad = books
    clean = await run(url)
    assert (clean.exit_code, clean.output) == (0, "the books balance\n")

    await _break(url, bad)
    broken = await run(url)
    assert broken.exit_code == 1
    assert (f"balance of {bad.account_id} with {bad.provider_id} is 21 but its subscriber "
            "postings sum to 20") in broken.output
    one = await run(url, "--account", good.account_id)
    assert (one.exit_code, one.output) == (0, f"the books of account {good.account_id} balance\n")
    assert (await run(url, "--account", bad.account_id)).exit_code == 1
    missing = await run(url, "--account", "LS-nobody")
    assert missing.exit_code == 2
    assert "No account LS-nobody" in missing.output
