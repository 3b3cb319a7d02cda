"""The monthly bill run: a period, a selection of accounts, chunks of houses billed one
transaction each.

``start`` records the run (who or what started it, the selection), cuts the selected
accounts into chunks of whole houses (a house's common-property lines need all its
apartments) and checks that every selected service has a price, in one transaction. Each
worker takes its share of the chunks not done and ``prepare``s them, set-based, in
temporary tables of its own session (billing.billrun.lines: the volumes of their meters and
houses; the workers prepare side by side); ``bill_chunk`` prices a chunk's lines, compares
them with the lines stored for the period, replaces those of each account and provider whose
bill changed, and marks the chunk done, in one transaction. A run
killed half-way resumes at its first chunk not done; billing accounts again with nothing
changed changes nothing. One run of a period at a time: an advisory lock held by the run's
connection, which goes with a killed process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from billing.billrun.booking import CLOSED, book_changes
from billing.billrun.lines import (
    ANALYSED,
    CHUNK,
    PREPARE,
    PREPARED,
    RUN_SELECTED,
    SUBSTITUTED,
    UNPRICED,
    execute_all,
)
from billing.billrun.pricing import price_remaining_lines
from meterline.bill_runs import Selection, check_group, check_period
from meterline.errors import Conflict, DomainError, Invalid, NotFound

CHUNK_ACCOUNTS = 20_000
LOCK = 0x62696C6C  # advisory lock namespace of bill runs; the second key is the period


@dataclass(frozen=True)
class Run:
    id: int
    period: date
    selection: Selection
    started_by: str
    accounts: int
    chunks: int


def next_month(period: date) -> date:
    return date(period.year + period.month // 12, period.month % 12 + 1, 1)


def previous_month(period: date) -> date:
    return date(period.year - (period.month == 1), (period.month - 2) % 12 + 1, 1)


_SELECT = """
WITH selected AS (
    SELECT a.id, p.house_id
      FROM accounts a
      JOIN premises p ON p.id = a.premises_id
      JOIN houses h ON h.id = p.house_id
      JOIN streets s ON s.id = h.street_id
      JOIN cities c ON c.id = s.city_id
     WHERE (%(region)s::text IS NULL OR c.region_code = %(region)s::text)
       AND (%(city)s::text IS NULL OR c.name = %(city)s::text)
       AND (%(house)s::bigint IS NULL OR h.id = %(house)s::bigint)
       AND (%(accounts)s::text[] IS NULL OR a.id = ANY(%(accounts)s::text[]))
       AND (%(group)s::text IS NULL OR EXISTS (
            SELECT 1 FROM account_group_members g
             WHERE g.group_name = %(group)s::text AND g.account_id = a.id))
       AND (%(provider)s::text IS NULL OR EXISTS (
            SELECT 1 FROM account_services x
             WHERE x.account_id = a.id AND x.provider_id = %(provider)s::text
               AND x.valid_from <= %(period)s
               AND (x.valid_to IS NULL OR x.valid_to > %(period)s)))
), houses AS (
    SELECT house_id, count(*) AS n,
           sum(count(*)) OVER (ORDER BY house_id) - count(*) AS before
      FROM selected GROUP BY house_id
)
INSERT INTO bill_run_chunks (run_id, chunk, accounts)
SELECT %(run)s, (h.before / %(chunk)s)::integer, array_agg(s.id ORDER BY s.id)
  FROM selected s JOIN houses h USING (house_id)
 GROUP BY (h.before / %(chunk)s)::integer
RETURNING cardinality(accounts)
"""


HISTORY_MONTHS = 14  # of readings a run looks at: the average's six months and more


def months_before(period: date, months: int) -> date:
    index = period.year * 12 + period.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _params(selection: Selection, period: date) -> dict[str, Any]:
    return {"region": selection.region, "city": selection.city, "house": selection.house,
            "provider": selection.provider,
            "providers": [selection.provider] if selection.provider else None,
            "accounts": list(selection.accounts) or None, "group": selection.group,
            "period": period,
            "next": next_month(period),
            # bounds in UTC around the window, a day wider than any time zone shifts them
            "history_from": months_before(period, HISTORY_MONTHS) - timedelta(days=1),
            "history_to": next_month(period) + timedelta(days=1)}


def schema(run_id: int) -> sql.Identifier:
    """The schema in which a run started before chunks prepared their own volumes kept what
    it prepared (dropped when it finishes)."""
    return sql.Identifier(f"bill_run_{run_id}")


async def enter(conn: psycopg.AsyncConnection[Any]) -> None:
    """In the current transaction: no JIT (compiling plans cost seconds, the statements run
    in milliseconds), quick ANALYZE, and room for sorts and hashes."""
    await conn.execute("SET LOCAL jit = off")
    # the chunk's own tables are analysed for their sizes (join plans), not for
    # fine distributions: a sample of 3,000 rows, not 30,000
    await conn.execute("SET LOCAL default_statistics_target = 10")
    # a chunk's sorts and hashes in memory (the default 4 MB spilled them to disk)
    await conn.execute("SET LOCAL work_mem = '128MB'")


async def lock_period(conn: psycopg.AsyncConnection[Any], period: date) -> None:
    """Hold the period's run lock on this connection (until it closes), or ``Conflict``."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                             (LOCK, period.year * 12 + period.month))
    row = await cur.fetchone()
    if not (row and row[0]):
        raise Conflict(f"a bill run of {period:%Y-%m} is running", code="bill-run-running")


async def start(
    conn: psycopg.AsyncConnection[Any], period: date, selection: Selection, started_by: str,
    *, chunk_accounts: int = CHUNK_ACCOUNTS, queued: int | None = None,
) -> Run:
    """Record a run (or take the ``queued`` one) and its chunks, and check its prices, in one
    transaction. Refused when nothing is selected or a selected account's service has no
    price in force; a refused queued run is marked failed with the reason."""
    check_period(period)
    try:
        await check_group(conn, selection)
        return await _start(conn, period, selection, started_by, chunk_accounts, queued)
    except DomainError as exc:
        if queued is not None:
            await conn.execute("""
                UPDATE bill_runs SET status = 'failed', detail = %s, finished_at = now()
                 WHERE id = %s""", (exc.detail, queued))
        raise


async def _start(conn: psycopg.AsyncConnection[Any], period: date, selection: Selection,
                 started_by: str, chunk_accounts: int, queued: int | None) -> Run:
    params = _params(selection, period)
    async with conn.transaction():
        if queued is None:
            cur = await conn.execute("""
                INSERT INTO bill_runs (period, selection, started_by) VALUES (%s, %s, %s)
                RETURNING id""", (period, json.dumps(selection.as_json()), started_by))
        else:
            cur = await conn.execute("""
                UPDATE bill_runs SET status = 'running', started_at = now()
                 WHERE id = %s AND status = 'queued' RETURNING id""", (queued,))
        row = await cur.fetchone()
        if row is None:
            raise Conflict(f"bill run {queued} is not queued", code="bill-run-not-queued")
        run_id = int(row[0])
        cur = await conn.execute(_SELECT, {**params, "run": run_id, "chunk": chunk_accounts})
        sizes = [n for (n,) in await cur.fetchall()]
        if not sizes:
            raise NotFound(f"no housing account matches {selection.as_json() or 'the run'}")
        cur = await conn.execute(CLOSED, {**params, "run": run_id})
        closed = [provider for (provider,) in await cur.fetchall()]
        if closed:
            raise Conflict(f"the period {period:%Y-%m} is closed for {', '.join(closed)}: a "
                           "correction goes into the next period", code="period-closed")
        await conn.execute("UPDATE bill_runs SET accounts = %s WHERE id = %s",
                           (sum(sizes), run_id))
        await enter(conn)
        await execute_all(conn, (RUN_SELECTED,), {**params, "run": run_id})
        cur = await conn.execute(UNPRICED, params)
        unpriced = [f"{service} of {provider}" for provider, service in await cur.fetchall()]
        if unpriced:
            raise Invalid(f"no price in force on {period}: {', '.join(unpriced)}",
                          code="no-price", field=["period"])
    return Run(run_id, period, selection, started_by, sum(sizes), len(sizes))


async def find(conn: psycopg.AsyncConnection[Any], run_id: int) -> Run:
    cur = await conn.execute("""
        SELECT r.period, r.selection, r.started_by, r.accounts,
               (SELECT count(*) FROM bill_run_chunks c WHERE c.run_id = r.id)
          FROM bill_runs r WHERE r.id = %s""", (run_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no bill run {run_id}")
    period, selection, started_by, accounts, chunks = row
    return Run(run_id, period, Selection.from_json(selection), started_by, accounts, chunks)


async def unfinished(conn: psycopg.AsyncConnection[Any], period: date,
                     selection: Selection) -> Run | None:
    """The latest run of the period with this selection that has not finished."""
    cur = await conn.execute("""
        SELECT id FROM bill_runs
         WHERE period = %s AND status = 'running' AND selection = %s::jsonb
         ORDER BY id DESC LIMIT 1""", (period, json.dumps(selection.as_json())))
    row = await cur.fetchone()
    return None if row is None else await find(conn, int(row[0]))


# --- one chunk ----------------------------------------------------------------------------

# The lines stored for the period of the chunk's accounts, found by their key (the accounts),
# read once for the comparison and the reversal: none when the chunk is billed a first time.
# (account, provider) pairs of the chunk whose bill differs from the stored one (either
# side of a service that changed provider), and whether its money did: what each service
# charged (a stored benefit, from before the tariffs' benefits job, is money to reverse).
_OLD_LINES = """
CREATE TEMP TABLE old_lines ON COMMIT DROP AS
SELECT l.*
  FROM run_accounts a
 CROSS JOIN LATERAL (
       -- each account's lines by the key's index, whatever the table's statistics say (a
       -- first run fills the period as it goes): OFFSET 0 keeps this a lookup per account,
       -- never a scan of the whole period's lines joined afterwards
       SELECT l.ctid AS line, l.* FROM bill_lines l
        WHERE l.period = %(period)s AND l.account_id = a.account_id OFFSET 0) l
 WHERE a.chunk = %(chunk)s
   AND (%(providers)s::text[] IS NULL OR l.provider_id = ANY(%(providers)s::text[]))
"""

_CHANGED = """
CREATE TEMP TABLE changed_bills ON COMMIT DROP AS
WITH old AS (
    SELECT * FROM old_lines
), differ AS (
    SELECT n.account_id AS new_account, n.provider_id AS new_provider,
           o.account_id AS old_account, o.provider_id AS old_provider
      FROM new_lines n
      FULL JOIN old o USING (account_id, service, common, rated)
     WHERE (n.provider_id, n.unit, n.volume, n.tariff, n.tariff_ref, n.method, n.charged,
            n.recalculation, n.recalculation_reason, n.benefit, n.parts)
           IS DISTINCT FROM
           (o.provider_id, o.unit, o.volume, o.tariff, o.tariff_ref, o.method, o.charged,
            o.recalculation, o.recalculation_reason, o.benefit, o.parts)
), touched AS (
    SELECT new_account AS account_id, new_provider AS provider_id FROM differ
     WHERE new_account IS NOT NULL
    UNION
    SELECT old_account, old_provider FROM differ WHERE old_account IS NOT NULL
), money AS (
    SELECT account_id, provider_id
      FROM (SELECT n.account_id, n.provider_id, n.service, n.charged + n.recalculation AS amount,
                   false AS benefit
              FROM new_lines n JOIN touched USING (account_id, provider_id)
             WHERE n.method <> 'rating'
            UNION ALL
            SELECT o.account_id, o.provider_id, o.service, -(o.charged + o.recalculation),
                   o.benefit <> 0
              FROM old o JOIN touched USING (account_id, provider_id)
             WHERE o.method <> 'rating') m
     GROUP BY account_id, provider_id, service
    HAVING sum(amount) <> 0 OR bool_or(benefit)
)
SELECT t.account_id, t.provider_id,
       EXISTS (SELECT 1 FROM money m
                WHERE (m.account_id, m.provider_id) = (t.account_id, t.provider_id)) AS money
  FROM touched t
"""

# The same when nothing is stored (a chunk billed a first time): every pair of its new lines,
# and whether any of its services charges money.
_CHANGED_FIRST = """
CREATE TEMP TABLE changed_bills ON COMMIT DROP AS
SELECT account_id, provider_id, coalesce(bool_or(amount <> 0), false) AS money
  FROM (SELECT account_id, provider_id, service,
               sum(charged + recalculation) FILTER (WHERE method <> 'rating') AS amount
          FROM new_lines GROUP BY account_id, provider_id, service) s
 GROUP BY account_id, provider_id
"""

# the stored lines of the changed bills, as read into old_lines (by their row address: the
# chunk's transaction holds them, no other run bills the period)
_DROP_OLD = """
DELETE FROM bill_lines
 WHERE ctid = ANY(ARRAY(SELECT o.line FROM old_lines o
                          JOIN changed_bills c USING (account_id, provider_id)))
   AND period = %(period)s
"""

_PUT_NEW = """
INSERT INTO bill_lines (period, account_id, service, common, provider_id, run_id, unit,
                        volume, tariff, tariff_ref, method, charged, recalculation,
                        recalculation_reason, benefit, parts)
SELECT %(period)s, n.account_id, n.service, n.common, n.provider_id, %(run)s, n.unit,
       n.volume, n.tariff, n.tariff_ref, n.method, n.charged, n.recalculation,
       n.recalculation_reason, n.benefit, n.parts
  FROM new_lines n JOIN changed_bills c USING (account_id, provider_id)
"""

_DROP_SUBSTITUTED = """
DELETE FROM meter_volumes v USING run_meters m, run_accounts c
 WHERE v.period = %(period)s AND v.meter_id = m.meter_id AND m.account_id = c.account_id
   AND c.chunk = %(chunk)s
"""

_PUT_SUBSTITUTED = """
INSERT INTO meter_volumes (period, meter_id, account_id, volume, method)
SELECT %(period)s, meter_id, account_id, volume, method FROM (""" + SUBSTITUTED + """) s
"""

_DONE = """
WITH chunk AS (
    UPDATE bill_run_chunks SET done_at = now()
     WHERE run_id = %(run)s AND chunk = %(chunk)s AND done_at IS NULL
    RETURNING cardinality(accounts) AS n
), changed AS (
    SELECT count(DISTINCT account_id) AS n FROM changed_bills
)
UPDATE bill_runs SET billed = billed + (SELECT n FROM chunk),
                     changed = changed + (SELECT n FROM changed)
 WHERE id = %(run)s AND EXISTS (SELECT 1 FROM chunk)
RETURNING (SELECT n FROM chunk), (SELECT n FROM changed)
"""


@dataclass(frozen=True)
class ChunkBilled:
    accounts: int  # in the chunk
    changed: int  # whose bill changed


_NEXT_CHUNK = """
SELECT chunk FROM bill_run_chunks
 WHERE run_id = %s AND done_at IS NULL ORDER BY chunk LIMIT 1 FOR UPDATE SKIP LOCKED
"""


async def drop_prepared(conn: psycopg.AsyncConnection[Any]) -> None:
    """Drop what the session prepared (nothing when it prepared nothing)."""
    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
        sql.SQL(", ").join(sql.Identifier("pg_temp", t) for t in PREPARED)))


async def prepare(conn: psycopg.AsyncConnection[Any], run: Run, chunks: list[int]) -> None:
    """In the current transaction: prepare ``chunks`` of ``run`` in temporary tables of the
    session (replacing what it prepared before), for its chunk transactions after."""
    await drop_prepared(conn)
    await enter(conn)
    params = {**_params(run.selection, run.period), "run": run.id, "chunks": chunks}
    await execute_all(conn, PREPARE, params)
    await conn.execute(sql.SQL("ANALYZE {}").format(
        sql.SQL(", ").join(sql.Identifier("pg_temp", t) for t in ANALYSED)))


async def _prepared(conn: psycopg.AsyncConnection[Any], run: Run, chunk: int) -> bool:
    cur = await conn.execute("SELECT to_regclass('pg_temp.run_prepared') IS NOT NULL")
    row = await cur.fetchone()
    if not (row and row[0]):
        return False
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_temp.run_prepared WHERE run_id = %s AND chunk = %s)",
        (run.id, chunk))
    row = await cur.fetchone()
    return bool(row and row[0])


async def bill_chunk(conn: psycopg.AsyncConnection[Any], run: Run,
                     chunk: int | None = None) -> ChunkBilled | None:
    """Bill one chunk in one transaction: ``chunk``, or the first one no other worker holds.
    None when there is none left (or ``chunk`` was done already)."""
    async with conn.transaction():
        if chunk is None:
            cur = await conn.execute(_NEXT_CHUNK, (run.id,))
        else:
            cur = await conn.execute("""
                SELECT chunk FROM bill_run_chunks
                 WHERE run_id = %s AND chunk = %s AND done_at IS NULL FOR UPDATE""",
                (run.id, chunk))
        row = await cur.fetchone()
        if row is None:
            return None
        chunk = int(row[0])
        if not await _prepared(conn, run, chunk):
            await prepare(conn, run, [chunk])
        await enter(conn)
        params = {**_params(run.selection, run.period), "run": run.id, "chunk": chunk}
        await execute_all(conn, CHUNK, params)
        await price_remaining_lines(conn, run.period, next_month(run.period))
        stored = (await conn.execute(_OLD_LINES, params)).rowcount > 0
        if stored:  # plans that know both sides' sizes
            await conn.execute("ANALYZE new_lines, old_lines")
        await conn.execute(_CHANGED if stored else _CHANGED_FIRST, params)
        await conn.execute("ANALYZE changed_bills")  # often empty: plans that know it
        await book_changes(conn, run.period, run.id, chunk, reverse=stored)
        if stored:
            await conn.execute(_DROP_OLD, params)
        await conn.execute(_PUT_NEW, params)
        await conn.execute(_DROP_SUBSTITUTED, params)
        await conn.execute(_PUT_SUBSTITUTED, params)
        cur = await conn.execute(_DONE, params)
        size, changed = await cur.fetchone() or (0, 0)
    return ChunkBilled(int(size), int(changed))


async def finish(conn: psycopg.AsyncConnection[Any], run: Run) -> None:
    """The run is done (a run started before chunks prepared their own volumes: what it
    prepared goes)."""
    async with conn.transaction():
        await conn.execute("""
            UPDATE bill_runs SET status = 'done', finished_at = now()
             WHERE id = %s AND status = 'running'""", (run.id,))
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema(run.id)))


Progress = Callable[[int], None]  # accounts billed by the chunk just done


async def _work(conn: psycopg.AsyncConnection[Any], run: Run, progress: Progress | None,
                worker: int, workers: int) -> None:
    """Prepare this worker's share of the chunks not done (every ``workers``-th, from its
    ``worker``-th) and bill them, then any chunk still left, until none is."""
    try:
        cur = await conn.execute("""
            SELECT coalesce(array_agg(chunk ORDER BY chunk), '{}') FROM bill_run_chunks
             WHERE run_id = %s AND done_at IS NULL AND chunk %% %s = %s""",
            (run.id, workers, worker))
        row = await cur.fetchone()
        share: list[int] = list(row[0]) if row else []
        if share:
            async with conn.transaction():
                await prepare(conn, run, share)
        for chunk in share:
            billed = await bill_chunk(conn, run, chunk)
            if billed is not None and progress is not None:
                progress(billed.accounts)
        while (billed := await bill_chunk(conn, run)) is not None:
            if progress is not None:
                progress(billed.accounts)
    finally:
        # what the session prepared goes with the run (a broken or busy session, as when the
        # other worker failed, drops it when it ends)
        if conn.info.transaction_status == TransactionStatus.IDLE:
            await drop_prepared(conn)


async def bill(
    conn: psycopg.AsyncConnection[Any], period: date, selection: Selection, started_by: str,
    *, progress: Progress | None = None, chunk_accounts: int = CHUNK_ACCOUNTS,
    on_start: Callable[[Run], None] | None = None, queued: int | None = None,
    workers: int = 1, database_url: str | None = None,
) -> Run:
    """Bill ``selection`` for ``period``: resume the unfinished run of the same period and
    selection, or start one; chunk after chunk until done, on ``workers`` connections at
    once (chunks are whole houses: they never touch the same rows; the others connect to
    ``database_url``). ``conn`` is in autocommit mode and holds the period's lock for the
    run. ``on_start`` hears of the run once it is known, ``progress`` of each chunk done."""
    await lock_period(conn, check_period(period))
    try:
        run = await unfinished(conn, period, selection) or await start(
            conn, period, selection, started_by, chunk_accounts=chunk_accounts, queued=queued)
        if queued is not None and run.id != queued:
            # an unfinished run of the same period and selection goes on instead
            await conn.execute("""
                UPDATE bill_runs SET status = 'done', finished_at = now(),
                       detail = %s WHERE id = %s AND status = 'queued'""",
                (f"resumed bill run {run.id} instead", queued))
        if on_start is not None:
            on_start(run)
        async with AsyncExitStack() as stack:
            others = [await stack.enter_async_context(await psycopg.AsyncConnection.connect(
                database_url or conn.info.dsn, autocommit=True,
                application_name="meterline-billrun-worker")) for _ in range(workers - 1)]
            async with asyncio.TaskGroup() as group:
                connections = (conn, *others)
                for n, worker in enumerate(connections):
                    group.create_task(_work(worker, run, progress, n, len(connections)))
        await finish(conn, run)
        return run
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s, %s)",
                           (LOCK, period.year * 12 + period.month))
