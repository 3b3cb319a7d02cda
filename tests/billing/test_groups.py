"""Saved groups of accounts: saved whole or refused whole, and selected by name by a bill
run, documents and exports."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest

from billing.accounts.groups import delete_group, groups, save_group
from billing.billrun.run import bill
from billing.documents.bulk import billed_accounts
from meterline.bill_runs import Selection, queue
from meterline.errors import Invalid, NotFound
from meterline.units import Service
from tests.factories import housing

PERIOD = date(2026, 3, 1)


async def test_a_group_naming_an_unknown_account_is_refused_whole_and_saving_replaces(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2), ("40", 1), ("30", 1)],
                          services=(Service.MAINTENANCE,), metered=())
    one, two, three = house.accounts
    name = f"g-{house.region}"
    with pytest.raises(Invalid, match=f"no account NOPE-1, NOPE-2: group {name} not saved"):
        await save_group(conn, name, [one, "NOPE-2", "NOPE-1"], "test")
    with pytest.raises(NotFound):
        await groups(conn, name)  # nothing of it was saved
    with pytest.raises(Invalid, match="a group's name is"):
        await save_group(conn, "no spaces", [one], "test")
    with pytest.raises(Invalid, match="would have no account"):
        await save_group(conn, name, [" "], "test")

    await save_group(conn, name, [one, two, one], "test", "debtors of March")
    saved = await save_group(conn, name, [two, three], "test", "debtors of April")
    assert (saved.accounts, (await groups(conn, name))[0].description) == (
        2, "debtors of April")
    cur = await conn.execute("SELECT account_id FROM account_group_members "
                             "WHERE group_name = %s ORDER BY 1", (name,))
    assert [a for (a,) in await cur.fetchall()] == [two, three]
    await delete_group(conn, name)
    with pytest.raises(NotFound):
        await delete_group(conn, name)


async def test_a_bill_run_documents_and_a_queued_run_select_a_saved_group(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    house = await housing(conn, [("50", 2), ("40", 1), ("30", 1)],
                          services=(Service.MAINTENANCE,), metered=())
    one, two, three = house.accounts
    name = f"g-{house.region}"
    await save_group(conn, name, [one, three], "test")
    run = await bill(conn, PERIOD, Selection(group=name), "test")
    assert run.accounts == 2
    cur = await conn.execute("SELECT DISTINCT account_id FROM bill_lines WHERE period = %s "
                             "AND account_id = ANY(%s) ORDER BY 1", (PERIOD, house.accounts))
    assert [a for (a,) in await cur.fetchall()] == [one, three]
    cur = await conn.execute("SELECT selection FROM bill_runs WHERE id = %s", (run.id,))
    assert await cur.fetchone() == ({"group": name},)

    await bill(conn, PERIOD, Selection(region=house.region), "test")  # all three billed
    assert await billed_accounts(conn, PERIOD, Selection(group=name)) == [one, three]

    with pytest.raises(NotFound, match="no saved group 'nope'"):
        await bill(conn, PERIOD, Selection(group="nope"), "test")
    with pytest.raises(NotFound, match="no saved group 'nope'"):
        await queue(conn, PERIOD, Selection(group="nope"), "test")
    with pytest.raises(NotFound, match="no saved group 'nope'"):
        await billed_accounts(conn, PERIOD, Selection(group="nope"))
    assert two not in await billed_accounts(conn, PERIOD, Selection(group=name))
