"""`madoguchi backup` and `madoguchi restore` on real databases (SQLite file: the online backup API; PostgreSQL:
pg_dump / pg_restore), through the CLI: a round trip gives back exactly what was exported before and the audit
chain verifies; a database holding data is replaced only after a yes; bad files change nothing."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from config.policy import Policy
from models.db import Database
from tests.conftest import _truncate
from tests.integration.test_export import History, Invoke, cli, cli_on, flat, seed_history  # noqa: F401  (fixture)
from workflow.engine import Engine


@pytest.fixture
def sqlite_cli(sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    yield from cli_on(sqlite_db, tmp_path, monkeypatch)


@pytest.fixture
def pg_db(pg_database: Database) -> Database:
    _truncate(pg_database)
    return pg_database


@pytest.fixture
def pg_cli(pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    yield from cli_on(pg_db, tmp_path, monkeypatch)


def everything(cli: Invoke) -> dict[str, str]:  # noqa: F811
    return {kind: cli("export", kind, "--format", "jsonl").stdout for kind in ("requests", "decisions", "audit")}


def mutate(db: Database, policy: Policy, history: History) -> None:
    """What happens after a backup: the sent-back request is withdrawn, then an event is cut off the audit trail."""
    assert Engine(db, policy).withdraw(history.next_morning, history.org.bob).ok
    with db.unit_of_work() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)"))


def test_a_round_trip_gives_back_what_there_was(cli: Invoke, db: Database, policy: Policy,  # noqa: F811
                                                tmp_path: Path) -> None:
    history = seed_history(db, policy)
    before = everything(cli)
    target = tmp_path / ("backup.db" if db.dialect == "sqlite" else "backup.dump")

    result = cli("backup", str(target))

    assert f"✓ backed up to {target}" in flat(result.stdout)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # it holds everyone's requests: for its owner only
    mutate(db, policy, history)
    assert everything(cli) != before
    assert "audit trail broken" in flat(cli("audit", "verify", code=1).stderr)

    result = cli("restore", str(target), "--yes")

    db.engine.dispose()  # pooled connections of before the restore
    assert "✓ restored" in flat(result.stdout) and "2 requests" in flat(result.stdout)
    assert everything(cli) == before
    assert "✓ audit trail intact" in cli("audit", "verify").stdout
    # and the restored database goes on working: numbering continues after the restored requests
    out = Engine(db, policy).submit(history.org.alice, "expense", {"purpose": "研修", "items": [
        {"date": "2026-06-01", "payee": "研修社", "amount": 5_000, "tax_rate": "10", "category": "travel"}]})
    assert out.request is not None and out.request.number == "EXP-2026-0003"
    assert "✓ audit trail intact" in cli("audit", "verify").stdout


def test_restore_asks_before_replacing_data(cli: Invoke, db: Database, policy: Policy,  # noqa: F811
                                            tmp_path: Path) -> None:
    history = seed_history(db, policy)
    target = tmp_path / "backup.file"
    cli("backup", str(target))
    mutate(db, policy, history)
    mutated = everything(cli)

    for answer in ("n\n", "", "\n"):  # no, end of input, just Enter (the default is no)
        result = cli("restore", str(target), input=answer, code=1)
        assert "The database holds data (schema" in flat(result.stderr)
        assert "nothing was changed" in flat(result.stderr)
    assert everything(cli) == mutated

    cli("restore", str(target), input="y\n")
    db.engine.dispose()
    assert everything(cli) != mutated
    assert "✓ audit trail intact" in cli("audit", "verify").stdout


def test_a_file_that_is_not_a_backup_changes_nothing(cli: Invoke, db: Database, policy: Policy,  # noqa: F811
                                                     tmp_path: Path) -> None:
    seed_history(db, policy)
    before = everything(cli)
    bogus = tmp_path / "requests.csv"
    bogus.write_text("number,type\n", encoding="utf-8")

    result = cli("restore", str(bogus), "--yes", code=2)

    assert f"{bogus} is not a madoguchi backup" in flat(result.stderr)
    assert "✗ cannot read" in flat(cli("restore", str(tmp_path / "missing.db"), "--yes", code=2).stderr)
    assert everything(cli) == before


def test_backup_does_not_overwrite_a_file_unless_forced(cli: Invoke, db: Database, tmp_path: Path) -> None:  # noqa: F811
    target = tmp_path / "backup.file"
    target.write_bytes(b"an older backup")

    assert f"{target} exists" in flat(cli("backup", str(target), code=2).stderr)
    assert target.read_bytes() == b"an older backup"

    cli("backup", str(target), "--force")
    assert target.read_bytes() != b"an older backup"
    assert not list(tmp_path.glob("*.partial"))


# --- SQLite -------------------------------------------------------------------------------------------------

def test_sqlite_backup_while_a_write_is_under_way(sqlite_cli: Invoke, sqlite_db: Database, policy: Policy,
                                                  tmp_path: Path) -> None:
    """The server keeps writing during a backup (WAL): the backup waits for nobody and holds what was committed."""
    seed_history(sqlite_db, policy)
    target = tmp_path / "live.db"
    with sqlite_db.unit_of_work() as conn:  # BEGIN IMMEDIATE: the write lock is held until the block ends
        conn.execute(sa.text("UPDATE requests SET status = 'withdrawn'"))
        sqlite_cli("backup", str(target))
    copy = Database(f"sqlite:///{target}")
    try:
        with copy.unit_of_work(write=False) as conn:
            statuses = conn.execute(sa.text("SELECT status FROM requests ORDER BY id")).scalars().all()
    finally:
        copy.dispose()
    assert statuses == ["approved", "sent_back"]  # the uncommitted update is not in it
    assert not Path(f"{target}-wal").exists()  # one self-contained file


def test_sqlite_restore_into_a_new_file_needs_no_confirmation(sqlite_cli: Invoke, sqlite_db: Database,
                                                              policy: Policy, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seed_history(sqlite_db, policy)
    before = everything(sqlite_cli)
    target = tmp_path / "backup.db"
    sqlite_cli("backup", str(target))
    fresh = tmp_path / "fresh" / "madoguchi.db"
    fresh.parent.mkdir()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{fresh}")
    from config.settings import get_settings
    get_settings.cache_clear()

    assert "✓ restored" in sqlite_cli("restore", str(target)).stdout
    assert everything(sqlite_cli) == before


@pytest.mark.postgres
def test_a_sqlite_backup_does_not_go_into_postgresql(pg_cli: Invoke, tmp_path: Path) -> None:
    sqlite_file = tmp_path / "other.db"
    other = Database(f"sqlite:///{sqlite_file}")
    other.create_all()
    other.dispose()

    result = pg_cli("restore", str(sqlite_file), "--yes", code=2)

    assert f"{sqlite_file} is a sqlite backup, but DATABASE_URL is a postgresql database" in flat(result.stderr)


# --- PostgreSQL ---------------------------------------------------------------------------------------------

def _fake_tools(folder: Path, version: str) -> Path:
    """pg_dump and pg_restore that only tell their version (MADOGUCHI_PG_BINDIR points here)."""
    folder.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        path = folder / tool
        path.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\n", encoding="utf-8")
        path.chmod(0o755)
    return folder


@pytest.mark.postgres
def test_a_pg_dump_older_than_the_server_is_refused_with_what_to_install(
        pg_cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADOGUCHI_PG_BINDIR", str(_fake_tools(tmp_path / "old", "9.6.24")))
    from config.settings import get_settings
    get_settings.cache_clear()

    result = pg_cli("backup", str(tmp_path / "b.dump"), code=1)

    text = flat(result.stderr)
    assert "the server is PostgreSQL" in text and "pg_dump is version 9" in text
    assert "pg_dump must be at least as new as the server" in text and "postgresql-client-" in text
    assert not (tmp_path / "b.dump").exists()
    monkeypatch.setenv("MADOGUCHI_PG_BINDIR", str(tmp_path / "nowhere"))
    get_settings.cache_clear()
    assert "pg_dump and pg_restore not found in" in flat(pg_cli("backup", str(tmp_path / "b.dump"), code=1).stderr)


@pytest.mark.postgres
def test_pg_restore_refuses_a_database_at_another_schema_revision(pg_cli: Invoke, pg_db: Database, policy: Policy,
                                                                  tmp_path: Path) -> None:
    seed_history(pg_db, policy)
    target = tmp_path / "b.dump"
    pg_cli("backup", str(target))
    with pg_db.unit_of_work() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'future'"))
    try:
        result = pg_cli("restore", str(target), "--yes", code=1)
        assert (f"the database is at schema future but the backup at {revision}: restore into an empty "
                "database") in flat(result.stderr)
        assert "nothing was changed" in flat(result.stderr)
    finally:
        with pg_db.unit_of_work() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})


def test_the_password_goes_in_pgpassword_never_on_the_command_line(tmp_path: Path) -> None:
    """PgTools with a password: the tool sees it in its environment, not in its arguments, and a message that
    would carry it is masked. The "tool" records what it got."""
    from models.backup import BackupError, PgTools, libpq_dsn

    record = tmp_path / "seen"
    tool = tmp_path / "pg_dump"
    tool.write_text(f'#!/bin/sh\necho "$@" > {record}\necho "PGPASSWORD=$PGPASSWORD" >> {record}\n'
                    'echo "FATAL: password s3cr3t! rejected" >&2\nexit 1\n', encoding="utf-8")
    tool.chmod(0o755)
    url = sa.make_url("postgresql+psycopg://app:s3cr3t!@db.example.jp:5432/madoguchi")
    tools = PgTools(tmp_path, libpq_dsn(url), url.password)

    with pytest.raises(BackupError) as caught:
        tools.run("pg_dump", f"--dbname={tools.dsn}")

    args, env = record.read_text(encoding="utf-8").splitlines()
    assert args == "--dbname=postgresql://app@db.example.jp:5432/madoguchi"
    assert env == "PGPASSWORD=s3cr3t!"
    assert "s3cr3t" not in str(caught.value) and "password *** rejected" in str(caught.value)
    assert os.environ.get("PGPASSWORD") != "s3cr3t!"  # only the child's environment had it
