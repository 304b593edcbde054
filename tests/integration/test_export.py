"""`madoguchi export requests|decisions|audit` on real databases (SQLite file and PostgreSQL), through the CLI:
columns, the period in the company's zone (both ends included), CSV for Excel (BOM, formulas kept as text),
JSON lines, and bad input refused with exit 2 and nothing written."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from bot.cli import app
from config.policy import Policy
from config.settings import DEFAULT_WORKFLOWS, get_settings
from models import requests as rq
from models.db import Database
from tests.conftest import Clock, Org, make_org
from workflow.audit import event_hash
from workflow.engine import Engine

Invoke = Callable[..., Result]


def flat(text: str) -> str:
    return " ".join(text.split())


def cli_on(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """The CLI with DATABASE_URL pointing at `database` (SQLite or PostgreSQL), as a fixture's body."""
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv("MADOGUCHI_WORKFLOWS", str(DEFAULT_WORKFLOWS))
    monkeypatch.delenv("MADOGUCHI_TIMEZONE", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, code: int = 0, input: str | None = None) -> Result:
        result = runner.invoke(app, list(args), input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == code, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return result
    yield run
    get_settings.cache_clear()


@pytest.fixture
def cli(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    yield from cli_on(db, tmp_path, monkeypatch)


@dataclass
class History:
    org: Org
    late_evening: int  # EXP-2026-0001, filed 2026-06-01 23:30 JST (still June 1st in Tokyo, June 1st in UTC too)
    next_morning: int  # EXP-2026-0002, filed 2026-06-02 10:00 JST


def item(amount: int) -> dict[str, Any]:
    return {"date": "2026-06-01", "payee": "JR東日本", "amount": amount, "tax_rate": "10", "category": "travel"}


def jst(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC) - timedelta(hours=9)


def pending(db: Database, request_id: int) -> rq.Assignment:
    with db.unit_of_work(write=False) as conn:
        return next(a for a in rq.assignments_of(conn, request_id) if a.status == "pending")


def seed_history(db: Database, policy: Policy) -> History:
    """Two expenses: one approved by the sales head acting for the manager (代理) and by finance, one sent back
    with a comment that looks like an Excel formula."""
    org = make_org(db)
    clock = Clock(jst(1, 23, 30))
    engine = Engine(db, policy, clock=clock)
    first = engine.submit(org.alice, "expense", {"purpose": "大阪出張", "items": [item(12_000)]}).request
    clock.now = jst(2, 10)
    second = engine.submit(org.bob, "expense", {"purpose": "Client dinner", "items": [item(8_000)]}).request
    assert first is not None and second is not None
    assert engine.delegate(org.manager, org.sales_head, jst(2, 0), jst(9, 0)).ok
    clock.now = jst(2, 11)
    assert engine.decide(pending(db, first.id).id, org.sales_head, "approve").ok
    clock.now = jst(2, 15)
    assert engine.decide(pending(db, first.id).id, org.finance1, "approve", "確認済み").ok
    clock.now = jst(3, 9, 15)
    assert engine.decide(pending(db, second.id).id, org.manager, "send_back", "=1+1 金額を確認してください").ok
    return History(org, first.id, second.id)


@pytest.fixture
def history(db: Database, policy: Policy) -> History:
    return seed_history(db, policy)


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def jsonl(data: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


# --- requests -----------------------------------------------------------------------------------------------

def test_requests_as_csv_with_times_in_the_company_zone(cli: Invoke, history: History) -> None:
    result = cli("export", "requests")

    assert result.stdout_bytes.startswith(b"number,type,status,requester_code,requester_email,requester_name,")
    assert not result.stdout_bytes.startswith(b"\xef\xbb\xbf")  # standard output goes to a program: no BOM
    assert b"\r\n" in result.stdout_bytes  # RFC 4180 line ends, as Excel writes them
    rows = csv_rows(result.stdout_bytes)
    assert [(r["number"], r["status"], r["requester_email"], r["requester_name"]) for r in rows] == [
        ("EXP-2026-0001", "approved", "alice@example.jp", "高橋 愛"),
        ("EXP-2026-0002", "sent_back", "bob@example.jp", "田中 健")]
    first = rows[0]
    assert first["type"] == "expense" and first["round"] == "1"
    assert first["submitted_at"] == "2026-06-01T23:30:00+09:00"
    assert first["decided_at"] == "2026-06-02T15:00:00+09:00"
    assert rows[1]["decided_at"] == ""
    payload = json.loads(first["payload"])
    assert payload["purpose"] == "大阪出張" and payload["items"][0]["amount"] == 12_000


def test_the_period_is_calendar_days_in_tokyo_both_included(cli: Invoke, history: History) -> None:
    def numbers(*period: str) -> list[str]:
        return [r["number"] for r in csv_rows(cli("export", "requests", *period).stdout_bytes)]

    # 23:30 JST on June 1st is 14:30 UTC: June 1st in Tokyo, whatever the server's clock zone
    assert numbers("--to", "2026-06-01") == ["EXP-2026-0001"]
    assert numbers("--from", "2026-06-02") == ["EXP-2026-0002"]
    assert numbers("--from", "2026-06-01", "--to", "2026-06-02") == ["EXP-2026-0001", "EXP-2026-0002"]
    assert numbers("--from", "2026-06-03") == []


def test_madoguchi_timezone_moves_the_period(cli: Invoke, history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADOGUCHI_TIMEZONE", "UTC")
    get_settings.cache_clear()

    rows = csv_rows(cli("export", "requests", "--from", "2026-06-01", "--to", "2026-06-01").stdout_bytes)

    # in UTC the second request (01:00 UTC on June 2nd) is on June 2nd too; the first one stays on June 1st
    assert [(r["number"], r["submitted_at"]) for r in rows] == [("EXP-2026-0001", "2026-06-01T14:30:00+00:00")]


# --- decisions ----------------------------------------------------------------------------------------------

def test_decisions_name_who_decided_and_for_whom(cli: Invoke, history: History) -> None:
    rows = jsonl(cli("export", "decisions", "--format", "jsonl").stdout)

    assert [(r["request_number"], r["step"], r["decision"], r["approver_email"], r["acting_for_email"])
            for r in rows] == [
        ("EXP-2026-0001", "manager", "approved", "head@example.jp", "mgr@example.jp"),  # 代理: for the manager
        ("EXP-2026-0001", "finance", "approved", "fin1@example.jp", None),
        ("EXP-2026-0002", "manager", "sent_back", "mgr@example.jp", None)]
    assert rows[0]["acting_for_name"] == "鈴木 一郎" and rows[0]["approver_name"] == "佐藤 花子"
    assert rows[1]["comment"] == "確認済み" and rows[1]["decided_at"] == "2026-06-02T15:00:00+09:00"
    assert rows[2]["comment"] == "=1+1 金額を確認してください"  # JSON lines keep every text as it was
    assert set(rows[0]) == {"request_number", "request_type", "round", "step", "decision", "approver_email",
                            "approver_name", "acting_for_email", "acting_for_name", "comment", "decided_at"}


def test_a_comment_that_looks_like_a_formula_stays_text_in_csv(cli: Invoke, history: History) -> None:
    rows = csv_rows(cli("export", "decisions", "--from", "2026-06-03").stdout_bytes)

    assert [(r["request_number"], r["comment"]) for r in rows] == [("EXP-2026-0002", "'=1+1 金額を確認してください")]


# --- audit --------------------------------------------------------------------------------------------------

def test_audit_events_carry_what_recomputes_their_hashes(cli: Invoke, history: History, db: Database) -> None:
    events = jsonl(cli("export", "audit", "--format", "jsonl").stdout)

    with db.unit_of_work(write=False) as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one()
    assert len(events) == stored > 0
    assert [e["seq"] for e in events] == list(range(1, stored + 1))
    for e in events:  # an auditor needs nothing but the export to check the chain
        at = datetime.fromisoformat(e["at"])
        assert at.utcoffset() == timedelta(hours=9)
        assert event_hash(e["seq"], at.astimezone(UTC), e["actor_id"], e["request_id"], e["event"], e["data"],
                          e["prev_hash"]) == e["hash"]
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(events, events[1:], strict=False))
    sent_back = [e for e in events if e["event"] == "assignment.sent_back"]
    assert [(e["actor_email"], e["request_number"]) for e in sent_back] == [("mgr@example.jp", "EXP-2026-0002")]


def test_audit_of_one_day(cli: Invoke, history: History) -> None:
    rows = csv_rows(cli("export", "audit", "--from", "2026-06-03", "--to", "2026-06-03").stdout_bytes)

    assert rows and all(r["at"].startswith("2026-06-03T09:15:00") for r in rows)
    assert {r["request_number"] for r in rows} == {"EXP-2026-0002"}


# --- files, BOM ---------------------------------------------------------------------------------------------

def test_a_csv_file_starts_with_a_bom_for_excel(cli: Invoke, history: History, tmp_path: Path) -> None:
    target = tmp_path / "requests.csv"

    result = cli("export", "requests", "--out", str(target))

    assert f"✓ wrote 2 requests to {target}" in flat(result.stdout)
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data[3:] == cli("export", "requests").stdout_bytes
    assert not list(tmp_path.glob("*.partial"))

    cli("export", "requests", "--out", str(target), "--no-bom")
    assert not target.read_bytes().startswith(b"\xef\xbb\xbf")
    assert cli("export", "requests", "--bom").stdout_bytes.startswith(b"\xef\xbb\xbf")


def test_jsonl_to_a_file_has_no_bom(cli: Invoke, history: History, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    cli("export", "audit", "--format", "jsonl", "--out", str(target))
    text = target.read_text(encoding="utf-8")
    assert text.startswith('{"seq": 1,')
    assert all(json.loads(line) for line in text.splitlines())


def test_an_empty_database_exports_the_header_only(cli: Invoke) -> None:
    assert cli("export", "decisions").stdout.splitlines() == [
        "request_number,request_type,round,step,decision,approver_email,approver_name,acting_for_email,"
        "acting_for_name,comment,decided_at"]
    assert cli("export", "audit", "--format", "jsonl").stdout == ""


# --- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-02-30"], "--from must be a date such as 2026-04-01, not '2026-02-30'"),
    (["--to", "06/01/2026"], "--to must be a date such as 2026-04-01, not '06/01/2026'"),
    (["--from", "2026-06-02", "--to", "2026-06-01"], "--from 2026-06-02 is after --to 2026-06-01"),
    (["--format", "jsonl", "--bom"], "--bom is for CSV only"),
])
def test_bad_input_is_refused_and_nothing_is_written(cli: Invoke, history: History, tmp_path: Path,
                                                     args: list[str], message: str) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()

    result = cli("export", "requests", *args, "--out", str(folder / "out.csv"), code=2)

    assert message in flat(result.stderr)
    assert result.stdout == ""
    assert list(folder.iterdir()) == []


def test_an_unknown_format_or_folder_is_refused(cli: Invoke, history: History, tmp_path: Path) -> None:
    assert "'xml' is not one of" in flat(cli("export", "audit", "--format", "xml", code=2).stderr)
    missing = tmp_path / "nope" / "audit.csv"
    assert f"there is no folder {missing.parent}" in flat(cli("export", "audit", "--out", str(missing),
                                                              code=2).stderr)


def test_a_missing_sqlite_file_is_said_not_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "typo.db"
    run = cli_on(Database(f"sqlite:///{missing}"), tmp_path, monkeypatch)
    invoke = next(run)
    try:
        result = invoke("export", "requests", code=1)
    finally:
        run.close()
    assert f"✗ there is no database file {missing} (DATABASE_URL)" in flat(result.stderr)
    assert not missing.exists()


@pytest.mark.postgres
def test_postgresql_streams_through_a_server_side_cursor(pg_database: Database, policy: Policy) -> None:
    """On PostgreSQL rows come from a named cursor a batch at a time; a plain cursor would hold every row of
    the result in the client's memory (libpq's, where tracemalloc in bench/export.py does not see it)."""
    from models import exports
    from tests.conftest import _truncate

    _truncate(pg_database)
    seed_history(pg_database, policy)
    with pg_database.unit_of_work(write=False) as conn:
        rows = exports.audit_trail(conn, None, None)
        assert next(rows).seq == 1
        cursors = conn.execute(sa.text("SELECT statement FROM pg_cursors")).scalars().all()
        assert any("audit_events" in s for s in cursors), cursors
        rows.close()  # an abandoned export releases its cursor at once
        assert conn.execute(sa.text("SELECT count(*) FROM pg_cursors")).scalar_one() == 0
