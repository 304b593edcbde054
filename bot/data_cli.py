"""`madoguchi export ...`, `madoguchi backup` and `madoguchi restore`: the company's data out of madoguchi (for
Excel, an auditor, a data warehouse) and the whole database to a file and back. The work is in bot/export.py and
models/backup.py; this module reads the options, says what happened and sets the exit code (2: bad input,
nothing written or changed; 1: it could not be done)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.console import escape
from bot.export import TABLES, ExportError, Format, byte_order_mark, export, parse_period, replacing
from models.db import normalize_url

export_app = typer.Typer(help="Requests, decisions or audit events of a period as CSV or JSON lines.",
                         no_args_is_help=True)

FromOption = Annotated[str | None, typer.Option(
    "--from", help="First day (YYYY-MM-DD, in the company's time zone, included); default: the beginning.")]
ToOption = Annotated[str | None, typer.Option(
    "--to", help="Last day (YYYY-MM-DD, in the company's time zone, included); default: up to now.")]
FormatOption = Annotated[Format, typer.Option("--format", help="csv (a header line) or jsonl (a JSON object a line).")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write to this file (replaced only once complete); "
                                                              "default: standard output.")]
BomOption = Annotated[bool | None, typer.Option(
    "--bom/--no-bom", help="Start a CSV with a UTF-8 byte order mark, which Excel needs to read Japanese "
                           "(default: with --out yes, on standard output no).")]


def _run(kind: str, first: str | None, last: str | None, fmt: Format, out_file: Path | None,
         bom: bool | None) -> None:
    from bot.cli import _database, _policy, err, out
    from config.settings import get_settings

    try:
        period = parse_period(first, last)
        with_bom = byte_order_mark(fmt, out_file, bom)
    except ExportError as exc:
        err.print(f"[red]✗ {escape(exc.message.en)}\n  {escape(exc.message.ja)}[/]", highlight=False)
        raise typer.Exit(2) from None
    settings = get_settings()
    zone = ZoneInfo(_policy(settings).company.timezone)
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:  # SQLite would make an empty one: say so instead, and leave no file behind
        err.print(f"[red]✗ there is no database file {escape(str(missing))} (DATABASE_URL)[/]", highlight=False)
        raise typer.Exit(1)
    db = _database(settings)
    try:
        if out_file is None:
            if with_bom:
                sys.stdout.write("\ufeff")
            count = export(db, kind, period, zone, fmt, sys.stdout)
            sys.stdout.flush()
        else:
            with replacing(out_file, bom=with_bom) as target:
                count = export(db, kind, period, zone, fmt, target)
    except SQLAlchemyError as exc:  # unreachable, not migrated...: said plainly, and no file was left behind
        cause = getattr(exc, "orig", None) or exc  # the driver's words, without SQLAlchemy's SQL and links
        err.print(f"[red]✗ cannot read the database:[/] {type(cause).__name__}: {escape(str(cause))}",
                  highlight=False)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if out_file is not None:  # on standard output the data alone: no line of ours in the middle of it
        out.print(f"[green]✓ wrote {count} {TABLES[kind].noun} to {escape(str(out_file))}[/]", highlight=False)


def _missing_sqlite_file(url: str) -> Path | None:
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


@export_app.command("requests")
def export_requests(first: FromOption = None, last: ToOption = None, fmt: FormatOption = Format.csv,
                    out_file: OutOption = None, bom: BomOption = None) -> None:
    """Requests submitted in the period: number, type, status, requester, round, times, the form's answers."""
    _run("requests", first, last, fmt, out_file, bom)


@export_app.command("decisions")
def export_decisions(first: FromOption = None, last: ToOption = None, fmt: FormatOption = Format.csv,
                     out_file: OutOption = None, bom: BomOption = None) -> None:
    """Decisions made in the period: request, step, decision, who decided (and for whom: 代理), comment, time."""
    _run("decisions", first, last, fmt, out_file, bom)


@export_app.command("audit")
def export_audit(first: FromOption = None, last: ToOption = None, fmt: FormatOption = Format.csv,
                 out_file: OutOption = None, bom: BomOption = None) -> None:
    """Audit events recorded in the period, in chain order, with their hashes."""
    _run("audit", first, last, fmt, out_file, bom)


def backup(target: Annotated[Path, typer.Argument(help="The file to write (SQLite: a database file; "
                                                       "PostgreSQL: a pg_dump archive in custom format).")],
           force: Annotated[bool, typer.Option("--force", help="Replace the file if it exists.")] = False) -> None:
    """Back up the whole database to a file; safe while the server runs."""
    from bot.cli import err, out
    from config.settings import get_settings
    from models.backup import BackupError
    from models.backup import backup as make_backup

    if target.exists() and not force:
        err.print(f"[red]✗ {escape(str(target))} exists: choose another name, or --force to replace it[/]",
                  highlight=False)
        raise typer.Exit(2)
    settings = get_settings()
    try:
        make_backup(settings.database_url, target, pg_bindir=settings.pg_bindir)
    except BackupError as exc:
        err.print(f"[red]✗ backup failed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"[green]✓ backed up to {escape(str(target))}[/] ({target.stat().st_size:,} bytes)", highlight=False)


def restore(source: Annotated[Path, typer.Argument(help="A file from `madoguchi backup`.")],
            yes: Annotated[bool, typer.Option("--yes", "-y", help="Replace a database that holds data without "
                                                                   "asking.")] = False) -> None:
    """Replace the database with a backup (stop the server first). A database that holds data is replaced only
    after a yes (or with --yes)."""
    from bot.cli import err, out
    from config.settings import get_settings
    from models.backup import BackupError, check_fits, contents
    from models.backup import restore as restore_backup
    from models.schema import head_revision

    settings = get_settings()
    try:
        check_fits(settings.database_url, source)  # not a backup of this kind: said before asking anything
        present = contents(settings.database_url)
    except BackupError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        err.print(f"[red]✗ cannot reach the database:[/] {type(cause).__name__}: {escape(str(cause))}",
                  highlight=False)
        raise typer.Exit(1) from None
    if present is not None and not yes:
        err.print(f"The database holds data ({present}); the restore replaces all of it.", highlight=False)
        try:
            replace = typer.confirm("Replace it with the backup?", default=False, err=True)
        except typer.Abort:  # no answer (end of input, Ctrl-C) is a no
            replace = False
        if not replace:
            err.print("[yellow]nothing was changed[/]")
            raise typer.Exit(1)
    try:
        revision = restore_backup(settings.database_url, source, pg_bindir=settings.pg_bindir)
    except BackupError as exc:
        err.print(f"[red]✗ restore failed, nothing was changed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    after = contents(settings.database_url)
    out.print(f"[green]✓ restored {escape(str(source))}[/]: {after}", highlight=False)
    if revision != head_revision():
        out.print(f"[yellow]the backup's schema is {revision or '(none)'}, this version's {head_revision()}: "
                  "run `madoguchi db upgrade` before starting the server[/]")
