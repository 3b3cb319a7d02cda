"""The back office's `meterline` commands: what each does, given the settings. The command
line itself (options, help) is in `meterline.cli`, which calls these."""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import typer
from tqdm import tqdm

from billing.accounts import groups
from billing.accounts.groups import Group
from billing.accounts.imports import import_rows
from billing.accounts.town import Town, TownSpec, generate_town
from billing.billrun.run import bill
from billing.documents.bulk import Written, export_selection, render_selection, renderers
from billing.scheduler.jobs import run_job
from meterline import periods
from meterline.bill_runs import Selection, parse_period
from meterline.errors import DomainError
from meterline.settings import Settings
from meterline.tariffs.benefit_entries import book_benefits

T = TypeVar("T")


def refusing(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's work; a domain rule's refusal is printed and the command exits 2."""
    try:
        return asyncio.run(work)
    except DomainError as exc:
        typer.echo(f"refused: {exc.detail}", err=True)
        raise typer.Exit(2) from exc


def import_file(settings: Settings, kind: str, path: Path, *, check: bool,
                report: Path | None) -> None:
    """Import one account file; print the summary and every refused row; exit 1 when a row
    was refused (the others are imported, unless ``check``)."""

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-import"
        ) as conn:
            with path.open(encoding="utf-8-sig", newline="") as lines:
                result = await import_rows(conn, kind, lines, check=check)
        typer.echo(result.summary())
        for row in result.refused:
            typer.echo(f"  line {row.line} ({row.key}): {row.reason}", err=True)
        if report is not None:
            with report.open("w", encoding="utf-8", newline="") as out:
                result.write_csv(out)
        if result.refused:
            raise typer.Exit(1)

    refusing(main())


def town(settings: Settings, *, first_month: str, **fields: Any) -> Town:
    """Generate a town (``fields``: of `TownSpec`; ``first_month`` as YYYY-MM)."""
    spec = TownSpec(first_month=parse_period(first_month), **fields)

    async def main() -> Town:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-town"
        ) as conn:
            return await generate_town(conn, spec)

    made = asyncio.run(main())
    typer.echo(f"town {spec.town} ({spec.prefix}): {made.accounts} new accounts in "
               f"{made.houses} houses, {made.meters} meters read by people, "
               f"{made.house_meters} house meters")
    return made


def billrun(settings: Settings, period: str, selection: Selection, *, started_by: str,
            chunk_accounts: int, workers: int, progress: bool = True) -> None:
    """Bill a period (resuming its unfinished run), with a progress bar of accounts."""

    async def main() -> None:
        month = parse_period(period)
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-billrun"
        ) as conn:
            bar = tqdm(unit=" accounts", disable=not progress, desc=f"bill run {period}")

            def advance(accounts: int) -> None:
                bar.update(accounts)

            with bar:
                run = await bill(conn, month, selection, started_by,
                                 progress=advance, chunk_accounts=chunk_accounts,
                                 workers=workers, database_url=settings.database_url,
                                 on_start=lambda run: bar.reset(total=run.accounts))
            cur = await conn.execute(
                "SELECT accounts, changed FROM bill_runs WHERE id = %s", (run.id,))
            accounts, changed = await cur.fetchone() or (0, 0)
            typer.echo(f"bill run {run.id} of {period}: {accounts} accounts billed, "
                       f"{changed} bills changed")
            booked = await book_benefits(conn, month)
            typer.echo(f"benefits of {period}: "
                       f"{sum(b.action in ('posted', 'corrected') for b in booked)} booked")

    refusing(main())


def documents(settings: Settings, period: str, selection: Selection, folder: Path, *,
              processes: int, progress: bool = True) -> None:
    """Render the payment documents of a selection into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)

    async def main() -> list[Written]:
        month = parse_period(period)
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-documents"
        ) as conn:
            with renderers(processes) as pool, tqdm(unit=" documents", disable=not progress,
                                                    desc=f"documents {period}") as bar:
                return await render_selection(conn, month, selection, folder, pool,
                                              progress=bar.update)

    started = time.perf_counter()
    written = refusing(main())
    seconds = time.perf_counter() - started
    size = sum(w.size for w in written)
    typer.echo(f"{len(written)} documents of {period} in {folder} ({size / 1e6:.1f} MB, "
               f"{len(written) / seconds if seconds else 0:.0f} a second)")


def export(settings: Settings, period: str, selection: Selection, kind: str,
           out: Path) -> None:
    """Export the documents of a selection to ``out``."""

    async def main() -> int:
        month = parse_period(period)
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-export"
        ) as conn:
            with out.open("w", encoding="utf-8", newline="") as stream:
                return await export_selection(conn, month, selection, kind, stream)

    count = refusing(main())
    typer.echo(f"{count} documents of {period} exported to {out} ({kind})")


def run_job_now(settings: Settings, name: str) -> None:
    """Run a scheduler job by hand, recorded with who ran it."""

    async def main() -> str | None:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name=f"meterline-job-{name}"
        ) as conn:
            return await run_job(conn, settings, name, datetime.now(UTC),
                                 f"cli:{getpass.getuser()}")

    detail = refusing(main())
    typer.echo(f"{name}: {detail}")


def close_period(settings: Settings, period: str, provider: str | None) -> None:
    """Close a billed period for its providers (or one): it is never billed again."""

    async def main() -> list[str]:
        month = parse_period(period)
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, application_name="meterline-close-period"
        ) as conn:
            cur = await conn.execute("""
                SELECT DISTINCT provider_id FROM bill_lines
                 WHERE period = %s AND (%s::text IS NULL OR provider_id = %s::text)
                 ORDER BY 1""", (month, provider, provider))
            providers = [p for (p,) in await cur.fetchall()]
            closed = [p for p in providers if await periods.close_period(conn, p, month)]
            await conn.commit()
            return closed

    closed = refusing(main())
    typer.echo(f"{period} closed for {', '.join(closed) or 'no provider (closed already)'}")


_SELECTED = """
SELECT a.id FROM accounts a
  JOIN premises p ON p.id = a.premises_id
  JOIN houses h ON h.id = p.house_id
  JOIN streets s ON s.id = h.street_id
  JOIN cities c ON c.id = s.city_id
 WHERE (%(region)s::text IS NULL OR c.region_code = %(region)s::text)
   AND (%(city)s::text IS NULL OR c.name = %(city)s::text)
   AND (%(house)s::bigint IS NULL OR h.id = %(house)s::bigint)
"""


def save_group(settings: Settings, name: str, accounts: list[str], selection: Selection, *,
               description: str) -> None:
    """Save a group of the accounts named and those of the selection's region, city or house
    (when one is given)."""

    async def main() -> Group:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-group"
        ) as conn:
            members = list(accounts)
            if selection.region or selection.city or selection.house is not None:
                cur = await conn.execute(_SELECTED, {"region": selection.region,
                                                     "city": selection.city,
                                                     "house": selection.house})
                members += [a for (a,) in await cur.fetchall()]
            return await groups.save_group(conn, name, members, f"cli:{getpass.getuser()}",
                                           description)

    saved = refusing(main())
    typer.echo(f"group {saved.name}: {saved.accounts} accounts")


def list_groups(settings: Settings) -> None:
    """Print each saved group: name, accounts, who saved it, description."""

    async def main() -> list[Group]:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-group"
        ) as conn:
            return await groups.groups(conn)

    for group in asyncio.run(main()):
        typer.echo(f"{group.name}\t{group.accounts}\t{group.saved_by}\t{group.description}")
