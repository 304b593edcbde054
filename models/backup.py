"""The whole database to one file and back.

- SQLite: the online backup API (`sqlite3.Connection.backup`), which copies a consistent snapshot page by page
  while the server goes on writing (WAL: readers never block writers), into a single self-contained file.
  Restore is the same API the other way round, so the live file, its -wal and -shm stay consistent (copying a
  file over a WAL database does not).
- PostgreSQL: `pg_dump --format=custom` and `pg_restore --clean --if-exists --single-transaction` (all or
  nothing). The password goes to them in PGPASSWORD, never on a command line (which `ps` shows) or in a message.

A backup or restore that fails leaves nothing half-done: a backup is written beside its target and renamed into
place when complete; a restore checks the file before it touches the database.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from models.db import normalize_url

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"  # the first bytes of a pg_dump archive in custom format


class BackupError(Exception):
    """What went wrong, in words an operator can act on (never with a password in them)."""


@dataclass(frozen=True)
class Contents:
    """What a database holds, to say what a restore would replace."""

    revision: str | None
    requests: int
    audit_events: int

    def __str__(self) -> str:
        return f"schema {self.revision or '(none)'}, {self.requests} requests, {self.audit_events} audit events"


def contents(url: str) -> Contents | None:
    """What the database at `url` holds; None when it has no tables at all (a new, empty database)."""
    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if not tables:
                return None

            def scalar(sql: str, table: str) -> object:
                return conn.execute(sa.text(sql)).scalar() if table in tables else None

            revision = scalar("SELECT version_num FROM alembic_version", "alembic_version")
            requests = scalar("SELECT count(*) FROM requests", "requests") or 0
            events = scalar("SELECT count(*) FROM audit_events", "audit_events") or 0
            return Contents(str(revision) if revision else None, int(str(requests)), int(str(events)))
    finally:
        engine.dispose()


def backup(url: str, target: Path, *, pg_bindir: Path | None = None) -> None:
    """Write a backup of the database at `url` to `target` (replaced only once the backup is complete)."""
    parsed = sa.make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        source = _sqlite_file(parsed)
        if not source.is_file():
            raise BackupError(f"there is no database file {source}")
        with _replacing(target) as temp:
            _sqlite_backup(source, temp)
    elif parsed.get_backend_name() == "postgresql":
        tools = PgTools.find(parsed, pg_bindir)
        with _replacing(target) as temp:
            tools.run("pg_dump", "--format=custom", "--no-password", f"--file={temp}", f"--dbname={tools.dsn}")
    else:
        raise BackupError(f"cannot back up a {parsed.get_backend_name()} database")


def restore(url: str, source: Path, *, pg_bindir: Path | None = None) -> str | None:
    """Replace the database at `url` with the backup in `source`; return the backup's schema revision. The file
    is checked first: one that is not a backup of this kind of database, or is damaged, changes nothing."""
    parsed = sa.make_url(normalize_url(url))
    if check_fits(url, source) == "sqlite":
        return _sqlite_restore(source, _sqlite_file(parsed))
    tools = PgTools.find(parsed, pg_bindir)
    revision = _archive_revision(tools, source)
    present = contents(url)
    if present is not None and present.revision != revision:
        # --clean drops and recreates what the archive holds: tables of another schema revision would stay
        raise BackupError(f"the database is at schema {present.revision or '(none)'} but the backup at "
                          f"{revision or '(none)'}: restore into an empty database (createdb), then run "
                          "`madoguchi db upgrade`")
    tools.run("pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
              "--exit-on-error", "--no-password", f"--dbname={tools.dsn}", str(source))
    return revision


def check_fits(url: str, source: Path) -> str:
    """The backup's kind ('sqlite' or 'postgresql') if it can be restored into the database at `url`."""
    kind, backend = backup_kind(source), sa.make_url(normalize_url(url)).get_backend_name()
    if kind != backend:
        raise BackupError(f"{source} is a {kind} backup, but DATABASE_URL is a {backend} database")
    return kind


def backup_kind(source: Path) -> str:
    """'sqlite' or 'postgresql', from the file's first bytes."""
    try:
        with source.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {source}: {exc.strerror}") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_MAGIC):
        return "postgresql"
    raise BackupError(f"{source} is not a madoguchi backup (neither a SQLite database nor a pg_dump archive "
                      "in custom format)")


def _archive_revision(tools: PgTools, source: Path) -> str | None:
    """The schema revision in a pg_dump archive (its alembic_version row); reading the archive's table of
    contents also proves it is one pg_restore can read."""
    tools.run("pg_restore", "--list", "--file=/dev/null", str(source))
    text = tools.run("pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(source))
    match = re.search(r"^COPY \S*alembic_version .*FROM stdin;\n([^\n\\]+)\n", text, re.MULTILINE)
    return match.group(1).strip() if match else None


# ------------------------------------------------------------------------------------------------ SQLite

def _sqlite_file(url: sa.URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore into")
    return Path(url.database)


def _open_sqlite(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=30, isolation_level=None)


def _sqlite_backup(source: Path, target: Path) -> None:
    with closing(_open_sqlite(source)) as src, closing(_open_sqlite(target)) as dst:
        # pages=-1 (the default): one step, one read transaction, so one consistent snapshot; in WAL mode the
        # server's writers go on meanwhile
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file (no -wal beside it)
        _check_sqlite(dst, target)


def _check_sqlite(conn: sqlite3.Connection, path: Path) -> None:
    try:
        problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is damaged: {exc}") from None
    if problems != ["ok"]:
        raise BackupError(f"{path} is damaged: {'; '.join(problems[:3])}")


def _sqlite_restore(source: Path, target: Path) -> str | None:
    with closing(_open_sqlite(source)) as src:
        _check_sqlite(src, source)
        try:
            row = src.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:
            row = None
        if not target.parent.is_dir():
            raise BackupError(f"there is no folder {target.parent} for the database file {target.name}")
        with closing(_open_sqlite(target)) as dst:
            src.backup(dst)  # one write transaction on the live file: other connections see all of it or none
            dst.execute("PRAGMA journal_mode=WAL")  # as the server runs it (models/db.py)
    return str(row[0]) if row else None


@contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` that takes its place when the block ends without an error."""
    if not target.parent.is_dir():
        raise BackupError(f"there is no folder {target.parent}")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())  # on disk before it counts as the backup
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ PostgreSQL

@dataclass(frozen=True)
class PgTools:
    """pg_dump and pg_restore of a version that can handle the server, and how to reach the database."""

    bindir: Path
    dsn: str  # a libpq URI without the password (libpq_dsn)
    password: str | None

    @classmethod
    def find(cls, url: sa.URL, bindir: Path | None) -> PgTools:
        """`bindir` (MADOGUCHI_PG_BINDIR) if given, else the first of: Debian's /usr/lib/postgresql/N/bin
        (the server's version first, then newer ones), the directory of pg_dump on PATH, `pg_config --bindir`.
        A pg_dump older than the server cannot dump it: refused here with what to install."""
        need = _server_major(url)
        found: list[tuple[Path, int]] = []
        for candidate in ([bindir] if bindir else _candidate_bindirs(need)):
            major = _tool_major(candidate / "pg_dump")
            if major is not None:
                found.append((candidate, major))
                if major >= need and _tool_major(candidate / "pg_restore") is not None:
                    return cls(candidate, libpq_dsn(url), url.password)
        where = f" in {bindir}" if bindir else ""
        if not found:
            raise BackupError(f"pg_dump and pg_restore not found{where}: install the PostgreSQL client "
                              f"(Debian: apt-get install postgresql-client-{need}) or set MADOGUCHI_PG_BINDIR")
        versions = ", ".join(f"{d / 'pg_dump'} is version {m}" for d, m in found)
        raise BackupError(f"the server is PostgreSQL {need}, but {versions}: pg_dump must be at least as new as "
                          f"the server (Debian: apt-get install postgresql-client-{need}, or set MADOGUCHI_PG_BINDIR)")

    def run(self, tool: str, *args: str) -> str:
        """Run a tool; its standard output, or a BackupError with its own message."""
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        done = subprocess.run([str(self.bindir / tool), *args], env=env, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            if self.password:
                detail = detail.replace(self.password, "***")  # no tool should echo it; never let it through
            raise BackupError(f"{tool} failed: {detail or f'exit status {done.returncode}'}")
        return done.stdout


def libpq_dsn(url: sa.URL) -> str:
    """The database's address as a libpq URI for pg_dump and pg_restore, without the password (which they get
    in PGPASSWORD). Built afresh: `URL.set(password=None)` would keep it."""
    bare = sa.URL.create("postgresql", username=url.username, host=url.host, port=url.port, database=url.database,
                         query=url.query)
    return bare.render_as_string(hide_password=False)


def _server_major(url: sa.URL) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(str(conn.execute(sa.text("SHOW server_version_num")).scalar())) // 10000
    except sa.exc.DBAPIError as exc:
        raise BackupError(f"cannot reach the database: {exc.orig}") from None
    finally:
        engine.dispose()


def _candidate_bindirs(need: int) -> list[Path]:
    debian = Path("/usr/lib/postgresql")
    majors = sorted((int(p.name) for p in debian.glob("*") if p.name.isdigit()), key=lambda m: (m != need, m))
    dirs = [debian / str(m) / "bin" for m in majors]
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            dirs.append(Path(done.stdout.strip()))
    return list(dict.fromkeys(dirs))


def _tool_major(path: Path) -> int | None:
    """The major version of a PostgreSQL tool ("pg_dump (PostgreSQL) 15.18" -> 15), None if it is not there."""
    if not os.access(path, os.X_OK):
        return None
    done = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"\) (\d+)", done.stdout)
    return int(match.group(1)) if done.returncode == 0 and match else None
