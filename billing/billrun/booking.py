"""A chunk's changed bills posted to the journal ledger (meterline.ledger), in the chunk's
transaction, through the ledger's bulk path: staged in ``ledger_lines`` by set-based SQL, each
kind of amount posted as one entry of the chunk.

For every account and provider whose bill's money changed (a bill whose lines changed but
charge the same, such as a tariff's new name, is stored again and posts nothing), what the
stored bill (the chunk's ``old_lines``, read once from ``bill_lines``) had posted is
reversed (charges: ``subscriber +x, revenue -x``; the benefits bills stored before the
tariffs' benefits job booked them: ``subscriber -d, discounts +d``) and the new bill is posted
(charges ``subscriber -x, revenue +x``, recalculations with them), all with the bill's period:
corrections are reversal and repost, never edits. Lines of what rating accrued for meters
behind gateways (method ``rating``) are shown on the bill, never posted: rating posted them.
Benefits are the tariffs' benefits job's own entries. An unchanged bill posts nothing. Entry
keys name the period, the run and the chunk (``bill:2026-03:<run>:<chunk>:charges``), so a
chunk is posted once.
"""

from __future__ import annotations

from datetime import date
from typing import Any, LiteralString

import psycopg

from meterline.ledger import Book, EntryKind, lines_table, post_lines

# What the stored bill of each changed account and provider posted, to reverse it.
_OLD_CHARGES = """
INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
SELECT l.account_id, l.provider_id, l.service, l.period, sum(l.charged + l.recalculation)
  FROM old_lines l JOIN changed_bills c USING (account_id, provider_id)
 WHERE c.money AND l.method <> 'rating'
 GROUP BY l.account_id, l.provider_id, l.service, l.period
HAVING sum(l.charged + l.recalculation) <> 0
"""

_OLD_BENEFITS = """
INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
SELECT l.account_id, l.provider_id, l.service, l.period, -sum(l.benefit)
  FROM old_lines l JOIN changed_bills c USING (account_id, provider_id)
 WHERE c.money
 GROUP BY l.account_id, l.provider_id, l.service, l.period
HAVING sum(l.benefit) <> 0
"""

# The new bill of each changed account and provider.
_NEW_CHARGES = """
INSERT INTO ledger_lines (account_id, provider_id, service, period, amount)
SELECT n.account_id, n.provider_id, n.service, %(period)s, -sum(n.charged + n.recalculation)
  FROM new_lines n JOIN changed_bills c USING (account_id, provider_id)
 WHERE c.money AND n.method <> 'rating'
 GROUP BY n.account_id, n.provider_id, n.service
HAVING sum(n.charged + n.recalculation) <> 0
"""

REVERSALS: tuple[tuple[LiteralString, EntryKind, Book, str], ...] = (
    (_OLD_CHARGES, EntryKind.REVERSAL, Book.REVENUE, "charges-reversed"),
    (_OLD_BENEFITS, EntryKind.REVERSAL, Book.DISCOUNTS, "benefits-reversed"),
)
POSTINGS: tuple[tuple[LiteralString, EntryKind, Book, str], ...] = (
    (_NEW_CHARGES, EntryKind.CHARGE, Book.REVENUE, "charges"),
)


async def book_changes(conn: psycopg.AsyncConnection[Any], period: date, run_id: int,
                       chunk: int, *, reverse: bool = True) -> None:
    """Post the reversal of the changed bills' stored lines (the chunk's ``old_lines``;
    ``reverse`` False: none are stored) and their new lines (the tables ``changed_bills`` and
    ``new_lines`` of the chunk's transaction)."""
    await lines_table(conn)
    key = f"bill:{period:%Y-%m}:{run_id}:{chunk}"
    reason = f"bill run {run_id} of {period:%Y-%m}, chunk {chunk}"
    for stage, kind, counter, what in (REVERSALS if reverse else ()) + POSTINGS:
        await conn.execute(stage, {"period": period})
        await post_lines(conn, kind=kind, key=f"{key}:{what}", counter=counter,
                         reason=f"{reason}: {what.replace('-', ' ')}")


# Providers whose period is closed: a bill run of it is refused. From the closed periods (few,
# usually none), each looked for among the run's accounts.
CLOSED = """
SELECT bp.provider_id
  FROM billing_periods bp
 WHERE bp.period = %(period)s AND bp.closed_at IS NOT NULL
   AND (%(providers)s::text[] IS NULL OR bp.provider_id = ANY(%(providers)s::text[]))
   AND EXISTS (SELECT 1 FROM bill_run_chunks c CROSS JOIN unnest(c.accounts) AS x(account_id)
                 JOIN account_services s ON s.account_id = x.account_id
                WHERE c.run_id = %(run)s AND s.provider_id = bp.provider_id)
 ORDER BY 1
"""
