"""The `madoguchi` command line, run in-process through typer's CliRunner against a real SQLite file.

Settings come from the environment like in production (DATABASE_URL, MADOGUCHI_WORKFLOWS); get_settings is
cached, so every test clears it on the way in and out. Rich wraps long lines at 80 columns when output is not
a terminal, so messages are compared with their whitespace flattened (`flat`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from click.testing import Result
from typer.testing import CliRunner

from bot.cli import app
from config.policy import json_schema
from config.settings import DEFAULT_WORKFLOWS, get_settings
from models.audit import audit_events, audit_head
from models.db import Database
from models.people import departments, employees
from models.schema import head_revision
from workflow.leave import LEDGER_HEADER

DEMO_ORG = DEFAULT_WORKFLOWS.parent / "demo_org.csv"
Invoke = Callable[..., Result]


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The environment the CLI reads: an (absent) SQLite file in tmp_path and the shipped workflows.yaml."""
    path = tmp_path / "madoguchi.db"
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("MADOGUCHI_WORKFLOWS", str(DEFAULT_WORKFLOWS))
    monkeypatch.delenv("MADOGUCHI_TIMEZONE", raising=False)
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


@pytest.fixture
def migrated(db_path: Path, sqlite_template: Path) -> Path:
    shutil.copy(sqlite_template, db_path)
    return db_path


@pytest.fixture
def invoke(db_path: Path) -> Invoke:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(app, list(args))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == code, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return result
    return run


def sql(path: Path, statement: str, **params: object) -> list[tuple[object, ...]]:
    db = Database(f"sqlite:///{path}")
    try:
        with db.unit_of_work() as conn:
            result = conn.execute(sa.text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        db.dispose()


def count(path: Path, table: sa.Table) -> int:
    return int(sql(path, f"SELECT count(*) FROM {table.name}")[0][0])  # type: ignore[call-overload]


def demo_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(DEMO_ORG.read_text(encoding="utf-8-sig"))))


# --- check --------------------------------------------------------------------------------------------------

def test_check_lists_the_shipped_types(invoke: Invoke) -> None:
    result = invoke("check")
    text = flat(result.stdout)
    assert str(DEFAULT_WORKFLOWS) in text
    assert "timezone Asia/Tokyo" in text
    for key, prefix in (("leave", "LV"), ("expense", "EXP"), ("stamp", "STP"), ("it", "IT")):
        assert re.search(rf"\b{key}\b[^\n]*\b{prefix}-YYYY", result.stdout), key  # one table row each
    assert "✓ configuration is valid" in text
    assert result.stderr == ""


def _broken_workflows(path: Path) -> Path:
    data = yaml.safe_load(DEFAULT_WORKFLOWS.read_text(encoding="utf-8"))
    data["types"]["expense"]["route"][2]["approver"] = "boss"
    data["types"]["stamp"]["fields"][0]["type"] = "textarea"
    data["company"]["timezone"] = "Asia/Tokio"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_check_prints_every_problem_with_its_path(invoke: Invoke, tmp_path: Path) -> None:
    broken = _broken_workflows(tmp_path / "broken.yaml")

    result = invoke("check", "--workflows", str(broken), code=1)

    lines = result.stderr.splitlines()
    assert lines[0] == "workflows.yaml has 3 problem(s):"
    problems = [line for line in lines[1:] if line.startswith("  ✗ ")]
    assert len(problems) == len(lines) - 1, "one line per problem"
    assert all(p.startswith(f"  ✗ {broken}: ") for p in problems)
    wheres = sorted(p.removeprefix(f"  ✗ {broken}: ").split(": ")[0] for p in problems)
    assert wheres == ["company.timezone", "types.expense.route[2].approver", "types.stamp.fields[0].type"]
    assert "unknown approver 'boss'; expected one of:" in result.stderr
    assert "[red]" not in result.stderr  # markup is rendered, not printed
    assert "configuration is valid" not in result.stdout


def test_check_reports_the_semantic_problem_once_the_schema_is_satisfied(invoke: Invoke, tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_WORKFLOWS.read_text(encoding="utf-8"))
    data["types"]["expense"]["route"][1]["when"][0]["fact"] = "totl"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    result = invoke("check", "--workflows", str(broken), code=1)

    assert f"  ✗ {broken}: types.expense.route[1].when[0].fact: unknown fact 'totl'" in result.stderr


def test_check_reads_madoguchi_workflows(invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADOGUCHI_WORKFLOWS", str(tmp_path / "missing.yaml"))
    get_settings.cache_clear()

    result = invoke("check", code=1)

    assert f"{tmp_path / 'missing.yaml'}: file not found" in result.stderr


def test_check_database_needs_the_schema_then_passes(invoke: Invoke, db_path: Path) -> None:
    result = invoke("check", "--database", code=1)
    assert f"database schema is at nothing, expected {head_revision()}: run `madoguchi db upgrade`" in flat(
        result.stderr)
    assert "configuration is valid" not in result.stdout

    assert f"✓ schema at {head_revision()}" in invoke("db", "upgrade").stdout
    assert f"database: {head_revision()}; latest: {head_revision()}" in invoke("db", "current").stdout

    result = invoke("check", "--database")
    assert f"✓ database reachable, schema at {head_revision()}" in result.stdout
    assert "✓ configuration is valid" in result.stdout


def test_db_current_on_an_empty_database(invoke: Invoke) -> None:
    assert f"database: (empty); latest: {head_revision()}" in invoke("db", "current").stdout


# --- org import ---------------------------------------------------------------------------------------------

def test_org_import_then_reimport_changes_nothing(invoke: Invoke, migrated: Path) -> None:
    people = len(demo_rows())
    departments_in_file = len({row["部署コード"] for row in demo_rows()})

    result = invoke("org", "import", str(DEMO_ORG))
    assert (f"✓ imported: {people} new, 0 updated, 0 unchanged, 0 deactivated, "
            f"{departments_in_file} new departments") in flat(result.stdout)
    assert count(migrated, employees) == people

    result = invoke("org", "import", str(DEMO_ORG))
    assert f"✓ imported: 0 new, 0 updated, {people} unchanged, 0 deactivated, 0 new departments" in flat(
        result.stdout)
    assert count(migrated, employees) == people
    assert count(migrated, departments) == departments_in_file


def test_org_import_with_bad_rows_imports_nothing(invoke: Invoke, migrated: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("\r\n".join([
        "社員番号,メールアドレス,氏名,氏名（英字）,部署コード,部署名,上長メールアドレス,役割",
        "E1,boss@example.jp,社長 太郎,Taro Shacho,EXEC,役員,,admin",
        "E2,not-an-email,有村 亜里沙,Arisa Arimura,SALES,営業部,boss@example.jp,",
        "E3,bob@example.jp,坊田 茂,Shigeru Bota,SALES,営業部,boss@example.jp,wizard",
    ]) + "\r\n", encoding="utf-8")

    result = invoke("org", "import", str(bad), code=1)

    text = flat(result.stderr)
    assert f"{bad}: 2 problem(s); nothing was imported" in text
    assert "line 3, email: 'not-an-email'" in text and "3行目" in text
    assert "line 4, roles: 'wizard'" in text and "4行目" in text
    assert "line 2" not in text
    assert result.stdout == ""
    assert count(migrated, employees) == 0
    assert count(migrated, departments) == 0
    assert count(migrated, audit_events) == 0


def test_org_import_of_a_missing_file(invoke: Invoke, migrated: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = invoke("org", "import", str(missing), code=1)
    assert f"✗ cannot read {missing}: No such file or directory" in flat(result.stderr)


# --- audit verify -------------------------------------------------------------------------------------------

@pytest.fixture
def imported(invoke: Invoke, migrated: Path) -> Path:
    invoke("org", "import", str(DEMO_ORG))
    return migrated


def test_audit_verify_on_an_empty_trail(invoke: Invoke, migrated: Path) -> None:
    assert "✓ audit trail intact: 0 events" in invoke("audit", "verify").stdout


def test_audit_verify_intact_then_edited(invoke: Invoke, imported: Path) -> None:
    events = count(imported, audit_events)
    assert events >= 1
    assert f"✓ audit trail intact: {events} events" in invoke("audit", "verify").stdout

    sql(imported, "UPDATE audit_events SET data = :data WHERE seq = 1", data='{"forged":true}')

    result = invoke("audit", "verify", code=1)
    text = flat(result.stderr)
    assert f"audit trail broken (1 problem(s) in {events} events)" in text
    row_id = sql(imported, "SELECT id FROM audit_events WHERE seq = 1")[0][0]
    assert f"✗ event #1 (row id {row_id}): content does not match its hash (edited?)" in text


def test_audit_verify_notices_the_last_event_deleted(invoke: Invoke, imported: Path) -> None:
    events = count(imported, audit_events)
    sql(imported, f"DELETE FROM audit_events WHERE seq = {events}")
    assert sql(imported, f"SELECT seq FROM {audit_head.name}") == [(events,)]

    result = invoke("audit", "verify", code=1)

    text = flat(result.stderr)
    assert (f"✗ event #{events}: the chain ends at event {events - 1} but the head records event {events} "
            "(the latest events were deleted?)") in text


# --- leave --------------------------------------------------------------------------------------------------

def _grants_recorded(result: Result) -> int:
    match = re.search(r"✓ (\d+) grant\(s\) recorded as of 2026-10-01", result.stdout)
    assert match, result.stdout
    return int(match.group(1))


def test_leave_grant_is_idempotent(invoke: Invoke, imported: Path) -> None:
    first = _grants_recorded(invoke("leave", "grant", "--as-of", "2026-10-01"))
    stored = int(sql(imported, "SELECT count(*) FROM leave_grants")[0][0])  # type: ignore[call-overload]
    assert first > 0 and first == stored

    assert _grants_recorded(invoke("leave", "grant", "--as-of", "2026-10-01")) == 0
    assert int(sql(imported, "SELECT count(*) FROM leave_grants")[0][0]) == stored  # type: ignore[call-overload]


@pytest.mark.parametrize("value", ["nonsense", "2026-02-30", "01/10/2026"])
def test_leave_grant_refuses_a_bad_date(invoke: Invoke, migrated: Path, value: str) -> None:
    result = invoke("leave", "grant", "--as-of", value, code=2)
    assert f"--as-of must be a date such as 2026-04-01, not {value!r}" in flat(result.stderr)
    assert int(sql(migrated, "SELECT count(*) FROM leave_grants")[0][0]) == 0  # type: ignore[call-overload]


def _ledger(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8")
    assert text.endswith("\r\n")  # RFC 4180 line ends, as Excel writes them
    return list(csv.reader(io.StringIO(text, newline="")))


def test_leave_ledger_prints_csv_with_the_japanese_header(invoke: Invoke, imported: Path) -> None:
    invoke("leave", "grant", "--as-of", "2026-10-01")

    rows = _ledger(invoke("leave", "ledger", "--year", "2026").stdout_bytes)

    assert rows[0] == LEDGER_HEADER
    assert rows[0][:4] == ["社員番号", "氏名", "メールアドレス", "入社日"]
    body = rows[1:]
    assert all(len(r) == len(LEDGER_HEADER) for r in body)
    hired_by_april = {r["メールアドレス"] for r in demo_rows() if r["入社日"] <= "2026/04/01"}
    assert hired_by_april <= {r[2] for r in body}
    # 山田 (hired 2012-04-01, 14+ years): 20 days on 2026-10-01, valid two years
    assert ["E0001", "山田 一郎", "yamada.ichiro@example.jp", "2012-04-01", "2026-10-01", "20", "2028-10-01"] in [
        r[:7] for r in body]


def test_leave_ledger_out_writes_utf8_with_bom(invoke: Invoke, imported: Path, tmp_path: Path) -> None:
    invoke("leave", "grant", "--as-of", "2026-10-01")
    target = tmp_path / "ledger.csv"

    result = invoke("leave", "ledger", "--year", "2026", "--out", str(target))

    assert f"✓ wrote {target}" in flat(result.stdout)
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data[3:] == invoke("leave", "ledger", "--year", "2026").stdout_bytes
    assert _ledger(data[3:])[0] == LEDGER_HEADER


def test_leave_ledger_on_an_empty_company_is_the_header_only(invoke: Invoke, migrated: Path) -> None:
    assert _ledger(invoke("leave", "ledger", "--year", "2026").stdout_bytes) == [LEDGER_HEADER]


# --- config schema ------------------------------------------------------------------------------------------

def test_config_schema_prints_json(invoke: Invoke, tmp_path: Path) -> None:
    assert json.loads(invoke("config", "schema").stdout) == json_schema()

    target = tmp_path / "workflows.schema.json"
    invoke("config", "schema", "--out", str(target))
    assert json.loads(target.read_text(encoding="utf-8")) == json_schema()


def test_org_notify_chooses_where_a_persons_messages_go(invoke: Invoke, migrated: Path) -> None:
    invoke("org", "import", str(DEMO_ORG))
    email = demo_rows()[1]["メールアドレス"]
    result = invoke("org", "notify", email, "teams")
    assert "messages go to teams" in flat(result.stdout)
    assert sql(migrated, "SELECT notify_platform FROM employees WHERE email = :e", e=email) == [("teams",)]
    assert "(unchanged)" in flat(invoke("org", "notify", email, "Teams").stdout)
    invoke("org", "notify", email, "auto")
    assert sql(migrated, "SELECT notify_platform FROM employees WHERE email = :e", e=email) == [(None,)]
    events = sql(migrated, "SELECT actor_id FROM audit_events WHERE kind = 'employee.notify_platform_chosen'")
    assert events == [(None,), (None,)]  # an operator's choice: no person acted
    assert "choose slack, teams or auto" in flat(invoke("org", "notify", email, "fax", code=2).stderr)
    assert "nobody with this email" in flat(invoke("org", "notify", "nobody@example.jp", "slack", code=1).stderr)
    assert sql(migrated, "SELECT count(*) FROM audit_events WHERE kind = 'employee.notify_platform_chosen'") == [(2,)]
