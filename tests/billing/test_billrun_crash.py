"""A bill run killed half-way and resumed bills and posts the same as one that was never
interrupted.

Two towns drawn alike (same seed): one billed in one go on one connection, the other by a
`meterline billrun` process (two workers, the default) killed with SIGKILL while its last
chunk is held up (a test transaction holds a line of that chunk's last account), then resumed
by the same command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date
from typing import Any

import psycopg

from billing.accounts.town import Town
from billing.billrun.run import bill
from meterline.bill_runs import Selection
from tests.factories import town
from tests.waiting import until

PERIOD = date(2026, 3, 1)


async def normalised_lines(conn: psycopg.AsyncConnection[Any], made: Town) -> list[Any]:
    """The town's lines with its own prefixes taken off, so two towns compare."""
    prefix = made.spec.prefix
    cur = await conn.execute("""
        SELECT substr(account_id, length(%(p)s) + 1), service, common,
               substr(provider_id, length(%(p)s) + 1), unit, volume, tariff, method, charged,
               recalculation, recalculation_reason, benefit
          FROM bill_lines WHERE period = %(period)s AND account_id LIKE %(p)s || '%%'
         ORDER BY 1, 2, 3""", {"p": prefix, "period": PERIOD})
    return await cur.fetchall()


async def normalised_balances(conn: psycopg.AsyncConnection[Any], made: Town) -> list[Any]:
    """The town's balances (what the journal posted) with its own prefixes taken off."""
    cur = await conn.execute("""
        SELECT substr(account_id, length(%(p)s) + 1), substr(provider_id, length(%(p)s) + 1),
               amount
          FROM balances WHERE account_id LIKE %(p)s || '%%' ORDER BY 1, 2""",
        {"p": made.spec.prefix})
    return await cur.fetchall()


def command(made: Town, pg_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "meterline", "billrun", "--period", f"{PERIOD:%Y-%m}",
         "--region", made.spec.region, "--chunk-accounts", "60", "--no-progress"],
        env={**os.environ, "METERLINE_DATABASE_URL": pg_url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def test_killed_half_way_and_resumed_bills_the_same(
    conn: psycopg.AsyncConnection[Any], pg_url: str,
) -> None:
    reference = await town(conn, accounts=240, months=3, seed=11)
    subject = await town(conn, accounts=240, months=3, seed=11)
    await bill(conn, PERIOD, Selection(region=reference.spec.region), "test",
               chunk_accounts=60)
    expected = await normalised_lines(conn, reference)
    assert len(expected) > 240 * 7

    last_account = f"{subject.spec.prefix}{subject.accounts - 1:08d}"
    async with await psycopg.AsyncConnection.connect(pg_url) as holder:
        # holds a line of the last account until rolled back: its chunk waits on it
        await holder.execute("""
            INSERT INTO bill_lines (period, account_id, service, provider_id, run_id, unit,
                                    method)
            VALUES (%s, %s, 'maintenance', 'x', 0, 'm2', 'area')""", (PERIOD, last_account))
        process = command(subject, pg_url)
        try:
            async def waiting_on_the_line() -> bool:
                cur = await conn.execute("""
                    SELECT 1 FROM pg_stat_activity
                     WHERE application_name LIKE 'meterline-billrun%%'
                       AND wait_event_type = 'Lock'
                       AND %s = ANY(pg_blocking_pids(pid))""", (holder.info.backend_pid,))
                return await cur.fetchone() is not None

            await until(waiting_on_the_line, what="the bill run to wait on the held line")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        await holder.rollback()

    cur = await conn.execute("""
        SELECT r.id, r.status, r.billed, r.accounts,
               count(c.done_at), count(*) FROM bill_runs r JOIN bill_run_chunks c
            ON c.run_id = r.id
         WHERE r.selection = %s::jsonb GROUP BY r.id""",
        (f'{{"region": "{subject.spec.region}"}}',))
    ((run_id, status, billed, accounts, done, chunks),) = await cur.fetchall()
    assert status == "running" and 0 < done < chunks and 0 < billed < accounts == 240

    resumed = command(subject, pg_url)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output.decode()
    assert f"bill run {run_id} of 2026-03: 240 accounts billed".encode() in output
    assert await normalised_lines(conn, subject) == expected
    assert await normalised_balances(conn, subject) == await normalised_balances(conn, reference)
    assert any(amount for *_, amount in await normalised_balances(conn, subject))
    cur = await conn.execute("SELECT status, billed FROM bill_runs WHERE id = %s", (run_id,))
    assert await cur.fetchone() == ("done", 240)
