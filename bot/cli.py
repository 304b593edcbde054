"""The `madoguchi` command line: check the configuration, migrate, import the org, verify the audit trail,
print the leave ledger. Errors go to stderr with a non-zero exit; nothing half-done is left behind."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from bot.console import LazyConsole, escape
from config.policy import Policy, PolicyError, json_schema, load_policy, with_timezone
from config.settings import Settings, get_settings
from models import people
from models.db import Database
from models.schema import current_revision, head_revision, upgrade
from workflow import audit, leave
from workflow.engine import calendar_for
from workflow.leave_law import add_months

app = typer.Typer(help="madoguchi (窓口): back-office requests from chat.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database schema (Alembic).", no_args_is_help=True)
org_app = typer.Typer(help="People and departments.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
leave_app = typer.Typer(help="Paid leave (年次有給休暇).", no_args_is_help=True)
config_app = typer.Typer(help="workflows.yaml.", no_args_is_help=True)
slack_app = typer.Typer(help="The Slack app.", no_args_is_help=True)
for sub, name in ((db_app, "db"), (org_app, "org"), (audit_app, "audit"), (leave_app, "leave"),
                  (config_app, "config"), (slack_app, "slack")):
    app.add_typer(sub, name=name)

out = LazyConsole()
err = LazyConsole(stderr=True)


def _policy(settings: Settings) -> Policy:
    try:
        return with_timezone(load_policy(settings.workflows), settings.timezone)
    except PolicyError as exc:
        err.print(f"[bold red]workflows.yaml has {len(exc.problems)} problem(s):[/]")
        for problem in exc.problems:
            err.print(f"  [red]✗[/] {escape(problem)}", highlight=False, soft_wrap=True)  # one line each: grep-able
        raise typer.Exit(1) from None


def _serve_settings() -> Settings:
    """The settings, or exit 1 naming each variable that is wrong (before anything starts)."""
    try:
        return get_settings()
    except ValidationError as exc:
        err.print(f"[bold red]the environment has {exc.error_count()} problem(s):[/]")
        for problem in exc.errors():
            name = ".".join(str(p) for p in problem["loc"])
            got = f" (got {problem.get('input')!r})" if name.startswith("MADOGUCHI_") else ""  # never a secret
            err.print(f"  [red]✗[/] {escape(name)}: {escape(problem['msg'])}{escape(got)}", highlight=False)
        raise typer.Exit(1) from None


def _banner(text: str) -> None:
    """aiohttp's "Running on ..." as a log line (one JSON object with MADOGUCHI_LOG_FORMAT=json, not bare text)."""
    logging.getLogger(__name__).info(text.replace("\n", " "))


def _database(settings: Settings) -> Database:
    return Database(settings.database_url, synchronous=settings.sqlite_synchronous)


WorkflowsOption = Annotated[Path | None, typer.Option("--workflows", "-w", help="Path to workflows.yaml "
                                                                                  "(default: MADOGUCHI_WORKFLOWS).")]


@app.command()
def check(workflows: WorkflowsOption = None,
          database: Annotated[bool, typer.Option(help="Also check the database is reachable and migrated.")]
          = False,
          connect: Annotated[bool, typer.Option("--connect", help="Also check connectivity: the database, Slack "
                                                "(auth.test), Teams (a token from Microsoft's login).")]
          = False) -> None:
    """Validate the configuration and print what is configured (exit 1 on any problem)."""
    settings = get_settings()
    if workflows is not None:
        settings = settings.model_copy(update={"workflows": workflows})
    policy = _policy(settings)
    company = policy.company
    out.print(f"[bold]{company.name.ja}[/] ({company.name.en}) — {settings.workflows}")
    out.print(f"timezone {company.timezone}, working hours {company.working_hours.start:%H:%M}-"
              f"{company.working_hours.end:%H:%M}, fiscal year starts in month {company.fiscal_year_start_month}")
    from rich.table import Table

    table = Table("type", "number", "title", "fields", "route", "SLA (business days)")
    for key, spec in policy.types.items():
        route = " → ".join(_step_label(s) for s in spec.route)
        sla = spec.sla or policy.defaults.sla
        table.add_row(key, f"{spec.prefix}-YYYY-0001", f"{spec.title.ja} / {spec.title.en}",
                      str(len(spec.fields)), route, str(sla.business_days))
    out.print(table)
    if database:
        _check_database(settings)
    if connect:
        _check_connections(settings)
    out.print("[green]✓ configuration is valid[/]")


def _step_label(step) -> str:  # type: ignore[no-untyped-def]
    who = step.approver or "+".join(step.approvers or [])
    extra = f" if {' and '.join(c.fact for c in step.when)}" if step.when else ""
    mode = {"inform": " (FYI)", "queue": " (queue)"}.get(step.kind, "")
    return f"{step.id} ({who}{mode}{extra})"


def _check_database(settings: Settings) -> None:
    db = _database(settings)
    try:
        current, head = current_revision(db.engine), head_revision()
    except Exception as exc:  # connectivity problems come in many driver-specific shapes
        err.print(f"[red]✗ database unreachable:[/] {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if current != head:
        err.print(f"[red]✗ database schema is at {current or 'nothing'}, expected {head}:[/] "
                  "run `madoguchi db upgrade`")
        raise typer.Exit(1)
    out.print(f"[green]✓ database reachable, schema at {head}[/]")


def _say_slack_mode(settings: Settings) -> None:
    """Which Slack mode the settings make (bot/server.py decides the same way), when it may surprise."""
    token = bool(settings.slack_bot_token and settings.slack_signing_secret)
    oauth = bool(settings.slack_client_id and settings.slack_client_secret and settings.slack_signing_secret)
    if token and (settings.slack_client_id or settings.slack_client_secret):
        err.print("[yellow]SLACK_BOT_TOKEN is set: one workspace; SLACK_CLIENT_ID / SLACK_CLIENT_SECRET are "
                  "ignored (unset SLACK_BOT_TOKEN for installs into several workspaces)[/]")
    elif oauth and not token:
        err.print("Slack: installs into several workspaces (OAuth): /slack/install, /slack/oauth_redirect, "
                  "/slack/events")
    elif not token:
        err.print("[yellow]SLACK_BOT_TOKEN / SLACK_SIGNING_SECRET not set (nor SLACK_CLIENT_ID / "
                  "SLACK_CLIENT_SECRET): /slack/events is off[/]")
        if settings.slack_app_token:
            err.print("[yellow]SLACK_APP_TOKEN is set, but Socket Mode needs SLACK_BOT_TOKEN (or "
                      "SLACK_CLIENT_ID / SLACK_CLIENT_SECRET) and SLACK_SIGNING_SECRET too: Socket Mode is off[/]")


def _check_connections(settings: Settings) -> None:
    from bot.connectivity import check_all

    checks = check_all(settings)
    for c in checks:
        mark = {"ok": "[green]✓", "failed": "[red]✗", "skipped": "[yellow]–"}[c.state]
        (err if c.state == "failed" else out).print(f"{mark} {c.name}:[/] {escape(c.detail)}", highlight=False)
    failed = [c.name for c in checks if c.state == "failed"]
    if failed:
        err.print(f"[bold red]✗ cannot connect to: {', '.join(failed)}[/]")
        raise typer.Exit(1)


@app.command()
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000) -> None:
    """Run the HTTP server: POST /slack/events (when Slack is configured), POST /api/messages, GET /healthz,
    /readyz and /metrics. SIGTERM stops it gracefully (see bot/server.py)."""
    from aiohttp import web  # the server's dependencies only when serving

    from bot.logging_setup import configure
    from bot.server import SHUTDOWN_HTTP, make_app, settle_heap_at_start
    from bot.slack.socket_mode import SocketModeError

    settings = _serve_settings()
    configure(settings)
    policy = _policy(settings)  # a broken workflows.yaml stops here, before listening
    _say_slack_mode(settings)
    application = make_app(settings, policy=policy)
    settle_heap_at_start(application)
    try:
        # access_log None: bot/observability.py logs each request itself, with its request id
        web.run_app(application, host=host, port=port, shutdown_timeout=SHUTDOWN_HTTP,
                    access_log=None, print=_banner)
    except SocketModeError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]")
        raise typer.Exit(1) from None


@app.command()
def demo(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
         port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
         database: Annotated[Path, typer.Option(help="The demo's SQLite file, made afresh at each start.")]
         = Path("madoguchi-demo.db")) -> None:
    """Try madoguchi in a browser: a Slack-like playground at http://HOST:PORT with a demo company of 30
    people, on SQLite, with no Slack workspace. The bot runs its real Slack code path against the playground."""
    from aiohttp import web

    from bot.logging_setup import configure
    from bot.playground import demo as demo_company
    from bot.playground.app import api_url, make_playground, mount
    from bot.playground.clock import DemoClock, add_clock_control
    from bot.server import DATABASE, DELIVERY, SHUTDOWN_HTTP, make_app, settle_heap_at_start

    settings = _serve_settings()
    if "log_level" not in settings.model_fields_set:
        # the page long-polls and the bot calls the playground's own Web API: a line per request would bury the
        # demo's terminal; a newcomer sees warnings and errors only (MADOGUCHI_LOG_LEVEL=INFO shows them all)
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure(settings)
    policy = _policy(settings)
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    playground = make_playground(base)
    for stale in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)  # the playground's Slack lives in memory: its database starts with it
    url = f"sqlite:///{database.resolve()}"
    db = Database(url, synchronous=settings.sqlite_synchronous)
    try:
        company = demo_company.seed(db, policy, playground.workspace)
    finally:
        db.dispose()
    demo_settings = settings.model_copy(update={
        "database_url": url, "slack_bot_token": playground.bot_token,
        "slack_signing_secret": playground.signing_secret, "slack_api_url": api_url(base)})
    clock = DemoClock()  # the page's "+1 business day" moves it; the engine, delivery and tick all read it
    app = make_app(demo_settings, policy=policy, warm=False, clock=clock)
    mount(app, playground)
    add_clock_control(app, clock, app[DATABASE], policy, app[DELIVERY].wake)
    settle_heap_at_start(app)
    out.print(f"[bold]madoguchi playground[/] — {len(company.people)} people of {escape(policy.company.name.ja)}, "
              f"database {database}")
    out.print(f"  open [bold cyan]{base}/?as={company.first}[/] — pick who you are, then type "
              f"[bold]/madoguchi[/] (or 申請 / leave / expense ...)")
    web.run_app(app, host=host, port=port, print=None, shutdown_timeout=SHUTDOWN_HTTP, access_log=None)


@app.command()
def tick(at: Annotated[str | None, typer.Option(help="As of this moment (ISO 8601, e.g. 2026-06-03T10:00+09:00); "
                                                      "default now.")] = None) -> None:
    """Run all due work once (nudge digests, escalations...) as of a moment, and say what was done."""
    from bot.scheduler import tick as run_tick

    settings = get_settings()
    policy = _policy(settings)
    try:
        moment = datetime.fromisoformat(at) if at else datetime.now(UTC)
    except ValueError:
        err.print(f"[red]✗ --at {escape(at or '')}: not an ISO 8601 time such as 2026-06-03T10:00+09:00[/]")
        raise typer.Exit(1) from None
    if moment.tzinfo is None:
        err.print(f"[red]✗ --at {escape(at or '')}: give a time zone (e.g. +09:00 or Z)[/]")
        raise typer.Exit(1)
    db = _database(settings)
    try:
        done = run_tick(db, policy, moment)
    finally:
        db.dispose()
    out.print(f"tick as of {moment.isoformat()}: " + ", ".join(f"{name} {n}" for name, n in done.items()))
    if any(n < 0 for n in done.values()):
        raise typer.Exit(1)


@config_app.command("schema")
def config_schema(out_file: Annotated[Path | None, typer.Option("--out", help="Write to a file.")] = None) -> None:
    """Print the JSON Schema of workflows.yaml (for editors)."""
    text = json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n"
    if out_file:
        out_file.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the schema to the latest revision."""
    settings = get_settings()
    db = _database(settings)
    try:
        upgrade(db.engine, revision)
        out.print(f"[green]✓ schema at {current_revision(db.engine)}[/]")
    finally:
        db.dispose()


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the latest one."""
    db = _database(get_settings())
    try:
        out.print(f"database: {current_revision(db.engine) or '(empty)'}; latest: {head_revision()}")
    finally:
        db.dispose()


@org_app.command("import")
def org_import(file: Annotated[Path, typer.Argument(help="CSV: UTF-8 (with or without BOM) or Shift_JIS.")],
               deactivate_missing: Annotated[bool, typer.Option(
                   help="Mark people who are not in the file inactive (never deleted).")] = False) -> None:
    """Import people and departments from CSV: every row is checked; nothing is imported if any row is bad."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        err.print(f"[red]✗ cannot read {file}:[/] {exc.strerror}")
        raise typer.Exit(1) from None
    # imported here, not at the top: `madoguchi serve` need not load them
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from workflow.org_import import OrgImportError, import_org

    db = _database(get_settings())
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err.console,
                      transient=True) as progress:
            task = progress.add_task("importing / 取り込み中", total=None)
            report = import_org(db, data, deactivate_missing=deactivate_missing, now=datetime.now(UTC),
                                progress=lambda done, total: progress.update(task, completed=done, total=total))
    except OrgImportError as exc:
        err.print(f"[red]✗ {exc.message.ja}\n  {exc.message.en}[/]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if report.errors:
        err.print(f"[bold red]{file}: {len(report.errors)} problem(s); nothing was imported / "
                  f"問題が {len(report.errors)} 件あるため取り込みませんでした[/]")
        for e in report.errors:
            err.print(f"  ✗ {e.message.ja}\n    {e.message.en}", markup=False, highlight=False)
        raise typer.Exit(1)
    out.print(f"[green]✓ imported:[/] {report.created} new, {report.updated} updated, {report.unchanged} "
              f"unchanged, {report.deactivated} deactivated, {report.departments_created} new departments")


@org_app.command("notify")
def org_notify(email: Annotated[str, typer.Argument(help="The person's email, as in the org file.")],
               platform: Annotated[str, typer.Argument(help="slack, teams, or auto (where they were last seen).")],
               ) -> None:
    """Choose where a person's messages go (as they can themselves with `/madoguchi notify`); audited."""
    from models import people as staff
    from workflow.identity import PLATFORMS, choose_notify_platform

    choice = platform.strip().lower()
    if choice not in (*PLATFORMS, "auto"):
        err.print(f"[red]✗ {escape(platform)}: choose slack, teams or auto / slack・teams・auto から選んでください[/]")
        raise typer.Exit(2)
    db = _database(get_settings())
    try:
        with db.unit_of_work() as conn:
            person = staff.find_employee_by_email(conn, email.strip().lower())
            if person is None:
                err.print(f"[red]✗ {escape(email)}: nobody with this email / このメールアドレスの人はいません[/]")
                raise typer.Exit(1)
            changed = choose_notify_platform(conn, person.id, None if choice == "auto" else choice,
                                             datetime.now(UTC), None)
    finally:
        db.dispose()
    where = "wherever they were last seen / 最後に使ったところ" if choice == "auto" else choice
    out.print(f"[green]✓[/] {escape(person.name_en)}: messages go to {where}" + ("" if changed else " (unchanged)"))


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit trail's hash chain; name every edited, deleted or reordered event."""
    db = _database(get_settings())
    try:
        with db.unit_of_work(write=False) as conn:
            count, breaks = audit.verify(conn)
    finally:
        db.dispose()
    if breaks:
        err.print(f"[bold red]✗ audit trail broken ({len(breaks)} problem(s) in {count} events):[/]")
        for b in breaks:
            where = f"event #{b.seq}" + (f" (row id {b.event_id})" if b.event_id is not None else "")
            err.print(f"  ✗ {where}: {b.problem}", markup=False, highlight=False)
        raise typer.Exit(1)
    out.print(f"[green]✓ audit trail intact: {count} events[/]")


@leave_app.command("ledger")
def leave_ledger(year: Annotated[int, typer.Option(help="Fiscal year (e.g. 2026 = April 2026 - March 2027).")],
                 out_file: Annotated[Path | None, typer.Option("--out", help="Write the CSV to a file "
                                                                          "(UTF-8 with BOM, for Excel).")] = None,
                 ) -> None:
    """年次有給休暇管理簿: grant dates, days granted and each date taken, per worker, as CSV."""
    settings = get_settings()
    policy = _policy(settings)
    start = date(year, policy.company.fiscal_year_start_month, 1)
    end = date.fromordinal(add_months(start, 12).toordinal() - 1)
    db = _database(settings)
    try:
        with db.unit_of_work() as conn:
            now = datetime.now(UTC)
            for person in people.all_employees(conn, active_only=True):
                leave.sync_grants(conn, person, min(end, now.date()), now)
            text = leave.ledger_csv(conn, start, end)
    finally:
        db.dispose()
    if out_file:
        out_file.write_text(text, encoding="utf-8-sig", newline="")
        out.print(f"[green]✓ wrote {out_file}[/]")
    else:
        sys.stdout.write(text)


@leave_app.command("grant")
def leave_grant(as_of: Annotated[str | None, typer.Option(help="Date (YYYY-MM-DD); default today.")] = None) -> None:
    """Record the statutory grants due by a date for every active employee (idempotent)."""
    try:
        day = date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()
    except ValueError:
        err.print(f"[red]✗ --as-of must be a date such as 2026-04-01, not {as_of!r}[/]")
        raise typer.Exit(2) from None
    settings = get_settings()
    calendar_for(_policy(settings))  # the calendar must load before touching data
    db = _database(settings)
    added = 0
    try:
        with db.unit_of_work() as conn:
            for person in people.all_employees(conn, active_only=True):
                added += leave.sync_grants(conn, person, day, datetime.now(UTC))
    finally:
        db.dispose()
    out.print(f"[green]✓ {added} grant(s) recorded as of {day}[/]")


@slack_app.command("manifest")
def slack_manifest(
    url: Annotated[str | None, typer.Option(help="Public base URL of this server, e.g. https://bot.example.com "
                                                 "(Slack calls <url>/slack/events).")] = None,
    socket_mode: Annotated[bool, typer.Option("--socket-mode", help="Socket Mode: no public URL.")] = False,
    name: Annotated[str, typer.Option(help="The app's and bot's name.")] = "madoguchi",
    command: Annotated[str, typer.Option(help="The slash command.")] = "/madoguchi",
    oauth: Annotated[bool, typer.Option("--oauth", help="Installs into several workspaces (SLACK_CLIENT_ID): "
                                                        "the redirect URL <url>/slack/oauth_redirect and the "
                                                        "uninstall events.")] = False,
) -> None:
    """Print a Slack app manifest (YAML) to paste into "Create an app → From a manifest"."""
    from bot.slack.manifest import ManifestError, manifest_yaml  # Bolt loads only for Slack commands

    try:
        text = manifest_yaml(url, socket_mode=socket_mode, name=name, command=command, oauth=oauth)
    except ManifestError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    # plain print: rich would wrap long lines and colour the YAML
    sys.stdout.write(text)


teams_app = typer.Typer(help="The Teams app.", no_args_is_help=True)
app.add_typer(teams_app, name="teams")


@teams_app.command("package")
def teams_package(
    app_id: Annotated[str, typer.Option(help="The bot's Microsoft App ID (a GUID): the app id and the bot id.")],
    name: Annotated[str, typer.Option(help="The app's short name in Teams (at most 30 characters).")]
    = "madoguchi",
    out_file: Annotated[Path, typer.Option("--out", help="The zip to write.")] = Path("madoguchi-teams.zip"),
    domain: Annotated[str | None, typer.Option(help="This server's host, e.g. bot.example.com "
                                                    "(validDomains and the developer URLs).")] = None,
) -> None:
    """Write the Teams app package (manifest.json, ja-jp.json, icons) to upload in Teams or its admin center."""
    from bot.teams.package import PackageError, write_package

    try:
        write_package(out_file, app_id, name=name, domain=domain)
    except PackageError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"[green]✓ wrote {escape(str(out_file))}[/]: upload it in Teams (Apps → Manage your apps → "
              "Upload an app) / Teams の「アプリ → アプリを管理 → アプリをアップロード」から追加してください", highlight=False)


outbox_app = typer.Typer(help="Messages the bot sends (the outbox).", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("dead")
def outbox_dead(limit: Annotated[int, typer.Option(help="How many of the latest to list.")] = 50) -> None:
    """Messages that could not be delivered (a permanent error: the person or channel is gone, a scope is
    missing), latest first, with the error."""
    from workflow import delivery

    settings = get_settings()
    db = _database(settings)
    try:
        with db.unit_of_work(write=False) as conn:
            count, latest = delivery.undelivered(conn, limit)
    finally:
        db.dispose()
    if not count:
        out.print("[green]✓ every message was delivered (or is still on its way)[/]")
        return
    for u in latest:  # one a line, never cut or wrapped: grep-able
        request = f" ({u.number})" if u.number else ""
        out.print(f"#{u.id} {u.created_at:%Y-%m-%d %H:%M} UTC {u.kind} → {escape(u.recipient_name('ja'))}{request}: "
                  f"[red]{escape(u.error)}[/]", highlight=False)
    out.print(f"{count} undelivered; `madoguchi outbox retry ID` sends one again once its cause is fixed")


@outbox_app.command("retry")
def outbox_retry(message_id: Annotated[int, typer.Argument(help="The id from `madoguchi outbox dead`.")]) -> None:
    """Send an undelivered message again (after fixing the cause, e.g. inviting the bot to the channel)."""
    from workflow import delivery

    settings = get_settings()
    db = _database(settings)
    try:
        with db.unit_of_work() as conn:
            again = delivery.retry_dead(conn, message_id, datetime.now(UTC))
    finally:
        db.dispose()
    if not again:
        err.print(f"[red]✗ message {message_id} is not an undelivered one (see `madoguchi outbox dead`)[/]")
        raise typer.Exit(1)
    out.print(f"[green]✓ message {message_id} will be sent again by the running server[/]")


# `madoguchi broadcast ...` lives in its own module (it reads this one's helpers when a command runs)
from bot.broadcast_cli import broadcast_app  # noqa: E402

app.add_typer(broadcast_app, name="broadcast")

# `madoguchi export ...`, `backup` and `restore` (the company's data out, the database to a file and back)
from bot.data_cli import backup, export_app, restore  # noqa: E402

app.add_typer(export_app, name="export")
app.command()(backup)
app.command()(restore)


if __name__ == "__main__":
    app()
