"""The payments and penalties commands of `meterline` (the command line itself, with its
options and help, is in `meterline.cli`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import typer

from billing.payments.imports import import_registry
from billing.payments.registries import RegistryRefused, load_layout
from meterline.errors import DomainError
from meterline.settings import Settings


def import_registry_file(settings: Settings, path: Path, layout_name: str) -> None:
    """Import a bank registry; print the summary and every refused line. Exit 1 when a line
    was refused (the others are posted), 2 when the file was refused whole or imported
    before."""

    data = path.read_bytes()

    async def main() -> None:
        layout = load_layout(layout_name)
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="meterline-payments",
        ) as conn:
            done = await import_registry(conn, data, layout, path.name)
        typer.echo(done.summary())
        for line in done.refused:
            typer.echo(f"  line {line.line}: {line.reason}", err=True)
        if done.refused:
            raise typer.Exit(1)

    try:
        asyncio.run(main())
    except RegistryRefused as exc:
        typer.echo(f"refused whole: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    except DomainError as exc:
        typer.echo(f"refused: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
