"""The `meterline reports` commands: each report written as CSV or PDF (by the file's
extension), or as CSV to standard output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import typer

from billing.reports.tables import Report, to_csv, to_pdf
from meterline.errors import DomainError
from meterline.settings import Settings


def write_report(settings: Settings, out: Path | None,
                 make: Callable[[psycopg.AsyncConnection[Any]], Awaitable[Report]]) -> None:
    if out is not None and out.suffix.lower() not in (".csv", ".pdf"):
        typer.echo(f"{out}: write a .csv or a .pdf", err=True)
        raise typer.Exit(2)

    async def main() -> Report:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, application_name="meterline-reports",
        ) as conn:
            return await make(conn)

    try:
        report = asyncio.run(main())
    except DomainError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    if out is None:
        sys.stdout.write(to_csv(report).decode("utf-8-sig"))
        return
    out.write_bytes(to_pdf(report) if out.suffix.lower() == ".pdf" else to_csv(report))
    typer.echo(f"{report.title}: {len(report.rows)} rows written to {out}")
