"""Shared fixtures: real databases (SQLite file, PostgreSQL server), a controllable clock, a small company.

PostgreSQL comes from MADOGUCHI_TEST_POSTGRES_URL (scripts/pg-dev starts one; .ci/run always does). Without it
the PostgreSQL variants are skipped with a visible reason, unless MADOGUCHI_REQUIRE_POSTGRES=1 (CI), where a
missing server fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from config.policy import Policy, load_policy
from config.settings import DEFAULT_WORKFLOWS
from models import people
from models.base import metadata
from models.db import Database
from models.schema import upgrade

PG_URL = os.environ.get("MADOGUCHI_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("MADOGUCHI_REQUIRE_POSTGRES") == "1"
PG_SKIP_REASON = "PostgreSQL not available: set MADOGUCHI_TEST_POSTGRES_URL (scripts/pg-dev starts a server)"


def pytest_report_header(config: pytest.Config) -> str:
    return f"PostgreSQL tests: {'on' if PG_URL else 'SKIPPED (' + PG_SKIP_REASON + ')'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head by Alembic; each test gets a copy (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    db.dispose()
    return path


def postgres_url() -> str:
    """The test PostgreSQL server's URL; skips the test without one (fails it with MADOGUCHI_REQUIRE_POSTGRES=1, as
    CI sets)."""
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("MADOGUCHI_REQUIRE_POSTGRES=1 but MADOGUCHI_TEST_POSTGRES_URL is not set")
        pytest.skip(PG_SKIP_REASON)
    return PG_URL


@contextmanager
def scratch_database(server: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server at `server`, dropped at the end (so several test or bench runs
    can share one server); its URL."""
    name = f"{prefix}{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)
        admin.dispose()


@contextmanager
def own_postgres_database(prefix: str, pool_size: int = 5, server: str | None = None) -> Iterator[Database]:
    """A `scratch_database` migrated by Alembic, on `server` (default: the test server; skips without one, see
    `postgres_url`)."""
    with scratch_database(server or postgres_url(), prefix) as url:
        db = Database(url, pool_size=pool_size)
        try:
            upgrade(db.engine)
            yield db
        finally:
            db.dispose()


def drop_database(admin: sa.Engine, name: str, attempts: int = 5) -> None:
    """Drop a test's or a bench's own database. `WITH (FORCE)` ends connections of ours left open, but not an
    autovacuum worker's (analysing a database just filled): a role that is not a superuser may not end it ("must be
    a member of the role whose process is being terminated", seen in CI). A plain DROP ends such a worker itself
    (PostgreSQL waits up to 5 s for it); a worker may start again in between, hence the attempts."""
    for attempt in range(attempts):
        with admin.connect() as conn:
            try:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                return
            except sa.exc.ProgrammingError:  # an autovacuum worker in it (InsufficientPrivilege)
                pass
            try:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
                return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # still in use: try again
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Database]:
    """A database of this test session's own on the PostgreSQL server (truncated before each test that uses it)."""
    with own_postgres_database("madoguchi_t", pool_size=60) as db:
        yield db


def _truncate(db: Database) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """A migrated, empty database: a SQLite file (WAL, synchronous=FULL) or the PostgreSQL server."""
    if request.param == "sqlite":
        path = tmp_path / "madoguchi.db"
        shutil.copy(sqlite_template, path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("pg_database")
        _truncate(database)
        yield database


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    path = tmp_path / "madoguchi.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    # Tuesday 2026-06-02 10:00 JST: a plain working morning
    return Clock(datetime(2026, 6, 2, 1, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(DEFAULT_WORKFLOWS)


@dataclass
class Org:
    """A small company: CEO > sales head > sales manager > two sales staff; finance, legal, seal keeper, IT, HR."""

    ceo: int
    sales_head: int
    manager: int
    alice: int
    bob: int
    finance1: int
    finance2: int
    legal: int
    seal_keeper: int
    it1: int
    it2: int
    hr: int
    admin: int
    sales: int  # department ids
    backoffice: int


def make_org(db: Database) -> Org:
    with db.unit_of_work() as conn:
        def person(email: str, ja: str, en: str, dept: int | None, manager: int | None,
                   roles: set[str] | frozenset[str] = frozenset(), hired: date = date(2020, 4, 1),
                   **extra: object) -> int:
            return people.insert_employee(
                conn, roles=roles, email=email, name_ja=ja, name_en=en, department_id=dept, manager_id=manager,
                hire_date=hired, locale=extra.pop("locale", "ja"), timezone="Asia/Tokyo", active=True, **extra)

        top = people.insert_department(conn, code="EXEC", name_ja="役員室", name_en="Executive")
        sales = people.insert_department(conn, code="SALES", name_ja="営業部", name_en="Sales", parent_id=top)
        back = people.insert_department(conn, code="BACK", name_ja="管理部", name_en="Back office", parent_id=top)
        ceo = person("ceo@example.jp", "山田 太郎", "Taro Yamada", top, None, {"admin"})
        head = person("head@example.jp", "佐藤 花子", "Hanako Sato", sales, ceo)
        mgr = person("mgr@example.jp", "鈴木 一郎", "Ichiro Suzuki", sales, head)
        alice = person("alice@example.jp", "高橋 愛", "Ai Takahashi", sales, mgr)
        bob = person("bob@example.jp", "田中 健", "Ken Tanaka", sales, mgr, locale="en")
        fin1 = person("fin1@example.jp", "伊藤 誠", "Makoto Ito", back, ceo, {"finance"})
        fin2 = person("fin2@example.jp", "渡辺 恵", "Megumi Watanabe", back, ceo, {"finance"})
        legal = person("legal@example.jp", "中村 大輔", "Daisuke Nakamura", back, ceo, {"legal"})
        seal = person("seal@example.jp", "小林 幸子", "Sachiko Kobayashi", back, ceo, {"seal_keeper"})
        it1 = person("it1@example.jp", "加藤 翔", "Sho Kato", back, ceo, {"it"})
        it2 = person("it2@example.jp", "吉田 優", "Yu Yoshida", back, ceo, {"it"})
        hr = person("hr@example.jp", "山本 美咲", "Misaki Yamamoto", back, ceo, {"hr"})
        admin = person("admin@example.jp", "松本 剛", "Tsuyoshi Matsumoto", back, ceo, {"admin"})
        conn.execute(people.departments.update().where(people.departments.c.id == sales).values(head_id=head))
        conn.execute(people.departments.update().where(people.departments.c.id == top).values(head_id=ceo))
        conn.execute(people.departments.update().where(people.departments.c.id == back).values(head_id=ceo))
    return Org(ceo, head, mgr, alice, bob, fin1, fin2, legal, seal, it1, it2, hr, admin, sales, back)


@pytest.fixture
def org(db: Database) -> Org:
    return make_org(db)
