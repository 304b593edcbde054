"""`madoguchi broadcast ...`: HR broadcasts for operators: send, list, report (and CSV for Excel), remind the
outstanding, cancel. The same use cases as the chat form (workflow/broadcasts.py); messages leave through the
outbox when the server's delivery loop runs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from bot.console import escape
from models import people
from workflow import broadcasts as bc
from workflow.audiences import Audience

broadcast_app = typer.Typer(help="HR broadcasts with acknowledgement (お知らせ).", no_args_is_help=True)

AsOption = Annotated[str, typer.Option("--as", help="Email of the HR or admin employee acting.")]


def _author(db, email: str) -> int:  # type: ignore[no-untyped-def]
    from bot.cli import err

    with db.unit_of_work(write=False) as conn:
        person = people.find_employee_by_email(conn, email)
    if not bc.may_send(person):
        err.print(f"[red]✗ {escape(email)}: {bc.NOT_ALLOWED.en} / {bc.NOT_ALLOWED.ja}[/]")
        raise typer.Exit(1)
    assert person is not None
    return person.id


def _audience(text: str) -> Audience:
    from bot.cli import err

    kind, _, values = text.partition(":")
    found = Audience.parse(kind.strip(), values)
    if found is None:
        err.print(f"[red]✗ --audience {escape(text)!r}: expected everyone, departments:CODE,..., roles:ROLE,..., "
                  "people:EMAIL,... or query:five_day_shortfall[/]")
        raise typer.Exit(2)
    return found


def _fail(result: bc.Result) -> None:
    from bot.cli import err

    for field, text in (result.errors or {"": result.message}).items():
        where = f"{field}: " if field else ""
        err.print(f"[red]✗ {where}{escape(text.en)} / {escape(text.ja)}[/]")
    raise typer.Exit(1)


@broadcast_app.command("send")
def send(audience: Annotated[str, typer.Option(help="everyone | departments:SALES,BACK | roles:hr | "
                                                    "people:a@example.jp,... | query:five_day_shortfall")],
         ja: Annotated[str, typer.Option(help="The message in Japanese.")] = "",
         en: Annotated[str, typer.Option(help="The message in English.")] = "",
         ack: Annotated[bool, typer.Option("--ack/--no-ack", help="Ask for “I have read / 確認しました”.")] = False,
         at: Annotated[str | None, typer.Option(help="Send at (ISO time with zone); default now.")] = None,
         weekly: Annotated[bool, typer.Option(help="Repeat every week on that day and time.")] = False,
         until: Annotated[str | None, typer.Option(help="Last day of the repeat (YYYY-MM-DD).")] = None,
         author: AsOption = "") -> None:
    """Make a broadcast (sent now, or at --at, repeated weekly until --until)."""
    from bot.cli import _database, _policy, err, out
    from config.settings import get_settings

    settings = get_settings()
    policy = _policy(settings)
    try:
        send_at = datetime.fromisoformat(at) if at else None
        last = date.fromisoformat(until) if until else None
    except ValueError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    if send_at is not None and send_at.tzinfo is None:
        err.print("[red]✗ --at needs a zone, e.g. 2026-06-08T09:00+09:00[/]")
        raise typer.Exit(2)
    now = datetime.now(UTC)
    db = _database(settings)
    try:
        repeat = bc.weekly(send_at or now, policy.company.timezone) if weekly else None
        draft = bc.Draft(_author(db, author), _audience(audience), ja, en, ack, send_at, repeat, last)
        result = bc.create(db, policy, draft, now)
    finally:
        db.dispose()
    if not result.ok:
        _fail(result)
    out.print(f"[green]✓ {escape(result.message.en)}[/] / {escape(result.message.ja)}")


@broadcast_app.command("list")
def list_(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """Recent broadcasts with their counts."""
    from bot.cli import _database, out
    from config.settings import get_settings

    db = _database(get_settings())
    try:
        with db.unit_of_work(write=False) as conn:
            reports = list(bc.recent(conn, limit))
            authors = people.get_employees(conn, {r.broadcast.author_id for r in reports})
    finally:
        db.dispose()
    from rich.table import Table

    table = Table("id", "created", "by", "audience", "ack", "next", "recipients", "delivered", "acknowledged",
                  "outstanding", "failed")
    for r in reports:
        b = r.broadcast
        who = authors[b.author_id].email if b.author_id in authors else "?"
        target = b.audience["kind"] + (":" + ",".join(b.audience.get("values") or []) if b.audience.get("values")
                                       else "")
        state = "cancelled" if b.cancelled_at else (f"{b.next_at:%Y-%m-%d %H:%M}Z" if b.next_at else "-")
        table.add_row(str(b.id), f"{b.created_at:%Y-%m-%d %H:%M}Z", who, target, "yes" if b.ack_required else "no",
                      state, str(len(r.recipients)), str(r.delivered), str(r.acknowledged), str(r.outstanding),
                      str(r.failed))
    out.print(table)


@broadcast_app.command("report")
def report(broadcast_id: Annotated[int, typer.Argument(help="The broadcast's number.")],
           csv_file: Annotated[Path | None, typer.Option("--csv", help="Write the recipients as CSV "
                                                                      "(UTF-8 with BOM, for Excel).")] = None) -> None:
    """Who got the latest occurrence and who acknowledged it: delivered, acknowledged, outstanding, failed."""
    from bot.cli import _database, _policy, err, out
    from config.settings import get_settings

    settings = get_settings()
    policy = _policy(settings)
    db = _database(settings)
    try:
        with db.unit_of_work(write=False) as conn:
            found = bc.report(conn, broadcast_id)
    finally:
        db.dispose()
    if found is None:
        err.print(f"[red]✗ no broadcast #{broadcast_id}[/]")
        raise typer.Exit(1)
    out.print(f"broadcast #{broadcast_id}: {len(found.recipients)} recipients, delivered {found.delivered}, "
              f"acknowledged {found.acknowledged}, outstanding {found.outstanding}, failed {found.failed} "
              f"(of which not reachable on the platform {found.unreachable})")
    text = bc.report_csv(found, policy.company.timezone)
    if csv_file is not None:
        csv_file.write_text(text, encoding="utf-8-sig", newline="")
        out.print(f"[green]✓ wrote {csv_file}[/]")
        return
    from rich.table import Table

    table = Table(*bc.CSV_HEADER)
    for cells in list(csv.reader(io.StringIO(text)))[1:]:
        table.add_row(*[escape(cell) for cell in cells])
    out.print(table)


@broadcast_app.command("remind")
def remind(broadcast_id: Annotated[int, typer.Argument()], author: AsOption = "") -> None:
    """Re-send the latest occurrence to those who have not acknowledged it."""
    _act(bc.remind_outstanding, broadcast_id, author)


@broadcast_app.command("cancel")
def cancel(broadcast_id: Annotated[int, typer.Argument()], author: AsOption = "") -> None:
    """Stop a broadcast's future occurrences."""
    _act(bc.cancel, broadcast_id, author)


def _act(use_case, broadcast_id: int, author: str) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import _database, out
    from config.settings import get_settings

    db = _database(get_settings())
    try:
        result = use_case(db, broadcast_id, _author(db, author), datetime.now(UTC))
    finally:
        db.dispose()
    if not result.ok:
        _fail(result)
    out.print(f"[green]✓ {escape(result.message.en)}[/] / {escape(result.message.ja)}")
