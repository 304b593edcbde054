"""Schema management through Alembic: upgrade to head, ask where a database stands.

Alembic itself (about 11 MB and a quarter second of imports) is loaded only to migrate. Where a running server
only asks where things stand (`/readyz`, `check`), the head is read from the migration files' own `revision` /
`down_revision` lines and the database's revision from Alembic's `alembic_version` table, so `madoguchi serve`
never imports Alembic (tests/integration/test_migrations.py checks both answers against Alembic's)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(?:['\"]([^'\"]*)['\"]|None)\s*$", re.M)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Any, str], None], revision: str) -> None:
    """Run `step` in one transaction. On SQLite, foreign keys are off meanwhile: a batch migration recreates a
    table (copy, DROP, rename), and with them on, DROP of a table other rows refer to fails (or cascades).
    SQLite ignores the pragma inside a transaction, so it is set on the raw connection before BEGIN, and the
    references are checked before commit instead."""
    cfg = alembic_config(str(engine.url))
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
        if raw is not None:
            raw.cursor().execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                step(cfg, revision)
                if raw is not None:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration to {revision} leaves broken references: {broken[:5]}")
        finally:
            if raw is not None:
                raw.cursor().execute("PRAGMA foreign_keys=ON")


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest revision of the migration files: the one no other revises (one line of history, as ours is)."""
    revises: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = {kind: value or None for kind, value in _REVISION.findall(path.read_text(encoding="utf-8"))}
        if found.get("revision"):
            revises[str(found["revision"])] = found.get("down_revision")
    heads = set(revises) - {r for r in revises.values() if r}
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads: {sorted(heads)}")
    return heads.pop() if heads else None


def current_revision(engine: Engine) -> str | None:
    """Where the database stands: Alembic's alembic_version row (None: never migrated)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(found) > 1:
        raise RuntimeError(f"the database has several schema revisions: {sorted(found)}")
    return str(found[0]) if found else None
