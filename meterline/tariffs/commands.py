"""`meterline tariffs ...`: load, check and list tariff books; book standing charges and
benefits."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from meterline.errors import DomainError
from meterline.money import kopecks
from meterline.settings import get_settings
from meterline.tariffs.benefit_entries import BookedBenefit, book_benefits
from meterline.tariffs.books import read_book
from meterline.tariffs.standing import Booked, book_standing_charges
from meterline.tariffs.store import LoadReport, StoredPlan, load_book, read_plans
from meterline.units import Utility

app = typer.Typer(help="Tariff books (load, check, list); standing charges and benefits.",
                  no_args_is_help=True)

Files = Annotated[list[Path], typer.Argument(help="Tariff book files (TOML).", exists=True,
                                             dir_okay=False, readable=True)]


def _refused(path: Path, error: DomainError) -> None:
    typer.echo(f"{path}: {error.detail}", err=True)


@app.command()
def check(files: Files) -> None:
    """Check books without storing them: every problem, named by where it is."""
    failed = False
    for path in files:
        try:
            book = read_book(path)
        except DomainError as error:
            _refused(path, error)
            failed = True
            continue
        typer.echo(f"{path}: provider {book.provider.id}, {len(book.plans)} plans, "
                   f"{sum(len(p.versions) for p in book.plans)} versions, "
                   f"{len(book.benefits)} benefits: fine")
    if failed:
        raise typer.Exit(1)


@app.command()
def load(files: Files) -> None:
    """Load books into the database, each whole or not at all. Loading a book again changes
    nothing; a new version of a plan is added, a stored one is never edited."""
    url = get_settings().database_url

    async def store(path: Path) -> LoadReport:
        book = read_book(path)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await load_book(conn, book)

    failed = False
    for path in files:
        try:
            report = asyncio.run(store(path))
        except DomainError as error:
            _refused(path, error)
            failed = True
            continue
        for line in report.lines():
            typer.echo(f"{path}: {line}")
    if failed:
        raise typer.Exit(1)


def _number(value: Decimal) -> str:
    """6.430000 -> 6.43, 3900.000000 -> 3900."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _describe(stored: StoredPlan) -> list[str]:
    plan = stored.plan
    head = (f"{plan.provider_id}/{plan.code}: {plan.name} ({plan.service}, per {plan.basis}"
            f"{', default' if plan.default else ''})")
    lines = [head]
    for i, version in enumerate(plan.versions):
        until = plan.ends(i)
        zones = ", ".join(
            f"{z.name} {' '.join(z.windows)}: {' / '.join(map(_number, version.prices[k]))}"
            for k, z in enumerate(version.zones))
        bands = (f"; bands up to {', '.join(map(_number, version.bands))}" if version.bands
                 else f"; social norm {', '.join(map(_number, version.social_norm))}"
                 if version.social_norm else "")
        lines.append(f"  from {version.valid_from}{f' to {until}' if until else ''}: "
                     f"{zones}{bands}")
    return lines


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)") from exc


@app.command("standing-charges")
def standing_charges(
    day: Annotated[date, typer.Option(parser=_day, metavar="YYYY-MM-DD",
                                      help="The local day to charge.")],
) -> None:
    """Book the standing charges of a day: every account taking a service whose plan charges
    one, once per account, provider, service and day (running it again books nothing twice)."""
    url = get_settings().database_url

    async def book() -> Booked:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            booked = await book_standing_charges(conn, day)
            await conn.commit()
            return booked

    booked = asyncio.run(book())
    if not booked.charges:
        typer.echo(f"{day}: nothing to book (no standing charge owed, or booked already)")
    else:
        typer.echo(f"{day}: {booked.charges} standing charges booked, "
                   f"{kopecks(booked.amount):,} RUB (entry {booked.entry_id})")


def _month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a month (YYYY-MM)") from exc


@app.command()
def benefits(
    period: Annotated[date, typer.Option(parser=_month, metavar="YYYY-MM",
                                         help="The billing month.")],
) -> None:
    """Book the benefits of a billing month as their own ledger lines: every grant held in it,
    by its rule's percent and norm. Running it again changes nothing; a benefit whose charges
    changed since is reversed and posted again."""
    url = get_settings().database_url

    async def book() -> list[BookedBenefit]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            booked = await book_benefits(conn, period)
            await conn.commit()
            return booked

    booked = asyncio.run(book())
    for b in booked:
        typer.echo(f"{b.account_id} {b.provider_id} {b.service} {b.rule}: "
                   f"{kopecks(b.amount)} RUB ({b.action})")
    counts = {action: sum(1 for b in booked if b.action == action)
              for action in ("posted", "corrected", "unchanged", "nothing")}
    typer.echo(f"{period:%Y-%m}: " + ", ".join(f"{n} {a}" for a, n in counts.items()))


@app.command("list")
def list_plans(
    provider: Annotated[str | None, typer.Option(help="Only this provider's plans.")] = None,
    utility: Annotated[Utility | None, typer.Option(help="Only plans of this utility.")] = None,
) -> None:
    """List the stored plans with their versions and base prices."""
    url = get_settings().database_url

    async def read() -> list[StoredPlan]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await read_plans(conn, provider=provider, utility=utility)

    for stored in asyncio.run(read()):
        for line in _describe(stored):
            typer.echo(line)
