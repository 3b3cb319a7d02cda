"""Documents of a selection, many at a time: assembled from the database in batches, rendered
by a pool of processes (rendering is CPU work: one process per core), or exported.

Documents are rendered on demand or for a chosen selection; nothing stores a PDF for every
account of a run.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

import psycopg

from billing.documents.exports import Export
from meterline.bill_runs import Selection, check_group
from meterline.documents.assemble import payment_documents
from meterline.documents.model import PaymentDocument
from meterline.documents.pdf import DEFAULT_FONT_DIR, file_name, register_fonts, render_pdf

BATCH = 500

_BILLED = """
SELECT DISTINCT l.account_id
  FROM bill_lines l
  JOIN accounts a ON a.id = l.account_id
  JOIN premises p ON p.id = a.premises_id
  JOIN houses h ON h.id = p.house_id
  JOIN streets s ON s.id = h.street_id
  JOIN cities c ON c.id = s.city_id
 WHERE l.period = %(period)s
   AND (%(region)s::text IS NULL OR c.region_code = %(region)s::text)
   AND (%(city)s::text IS NULL OR c.name = %(city)s::text)
   AND (%(house)s::bigint IS NULL OR h.id = %(house)s::bigint)
   AND (%(provider)s::text IS NULL OR l.provider_id = %(provider)s::text)
   AND (%(accounts)s::text[] IS NULL OR l.account_id = ANY(%(accounts)s::text[]))
   AND (%(group)s::text IS NULL OR EXISTS (
        SELECT 1 FROM account_group_members g
         WHERE g.group_name = %(group)s::text AND g.account_id = l.account_id))
 ORDER BY l.account_id
"""


async def billed_accounts(conn: psycopg.AsyncConnection[Any], period: date,
                          selection: Selection) -> list[str]:
    """The accounts of ``selection`` that have a bill for ``period``, in id order."""
    await check_group(conn, selection)
    cur = await conn.execute(_BILLED, {
        "period": period, "region": selection.region, "city": selection.city,
        "house": selection.house, "provider": selection.provider,
        "accounts": list(selection.accounts) or None, "group": selection.group})
    return [account for (account,) in await cur.fetchall()]


@dataclass(frozen=True)
class Written:
    path: Path
    size: int


def write_pdf(doc: PaymentDocument, folder: Path, font_dir: Path = DEFAULT_FONT_DIR) -> Written:
    """Render one document into ``folder`` (what each process of the pool does)."""
    pdf = render_pdf(doc, font_dir)
    path = folder / file_name(doc)
    path.write_bytes(pdf)
    return Written(path, len(pdf))


def renderers(processes: int, font_dir: Path = DEFAULT_FONT_DIR) -> ProcessPoolExecutor:
    """A pool of rendering processes, fonts registered once in each."""
    return ProcessPoolExecutor(processes, initializer=register_fonts, initargs=(font_dir,))


async def render_selection(
    conn: psycopg.AsyncConnection[Any], period: date, selection: Selection, folder: Path,
    pool: Executor, *, font_dir: Path = DEFAULT_FONT_DIR,
    progress: Callable[[int], None] | None = None,
) -> list[Written]:
    """Render the documents of ``selection`` into ``folder`` (which exists) on ``pool``: the
    next batch is assembled while the pool renders the one before."""
    accounts = await billed_accounts(conn, period, selection)
    written: list[Written] = []
    pending: list[Any] = []

    def collect() -> None:
        for future in pending:
            written.append(future.result())
        if progress is not None:
            progress(len(pending))
        pending.clear()

    for start in range(0, len(accounts), BATCH):
        batch = await payment_documents(conn, period, accounts[start:start + BATCH])
        collect()
        pending.extend(pool.submit(write_pdf, doc, folder, font_dir) for doc in batch)
    collect()
    return written


async def export_selection(conn: psycopg.AsyncConnection[Any], period: date,
                           selection: Selection, kind: str, out: TextIO) -> int:
    """Write the documents of ``selection`` as ``csv`` or ``json`` (print shops) or ``gis``
    (ГИС ЖКХ), a batch at a time; the number of documents."""
    export = Export(kind, out)
    accounts = await billed_accounts(conn, period, selection)
    for start in range(0, len(accounts), BATCH):
        export.write(await payment_documents(conn, period, accounts[start:start + BATCH]))
    return export.close()
