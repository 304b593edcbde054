"""Alembic owns the schema: the migrations build exactly what models/ describe, on SQLite and PostgreSQL, and
they go down to nothing and up again cleanly.

The `db` fixture arrives migrated to head. On PostgreSQL its database is shared by the whole test session,
so a test here that moves the schema always puts it back at head, even when it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from models import people
from models.base import metadata
from models.db import Database
from models.schema import alembic_config, current_revision, downgrade, head_revision, upgrade
from tests.conftest import make_org

OURS = {t.name for t in metadata.sorted_tables}


def drift(db: Database) -> list[Any]:
    """What autogenerate would write into a new migration; [] when models and database agree."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, metadata)


def tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


@pytest.fixture
def back_at_head(db: Database) -> Iterator[Database]:
    """The database; afterwards at head again whatever the test did (PostgreSQL's is shared by the session)."""
    try:
        yield db
    finally:
        if current_revision(db.engine) != head_revision():
            upgrade(db.engine)


def test_the_migrated_schema_is_what_the_models_describe(db: Database) -> None:
    assert OURS <= tables(db)
    assert drift(db) == []


def test_the_database_is_at_the_only_head(db: Database) -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"migrations branch: heads {heads} (merge them with `alembic merge`)"
    assert head_revision() == heads[0]
    assert current_revision(db.engine) == head_revision()


def test_down_to_base_and_up_again(back_at_head: Database) -> None:
    db = back_at_head
    make_org(db)  # rows in tables that reference each other must not stop the downgrade

    downgrade(db.engine, "base")

    assert tables(db) - {"alembic_version"} == set()
    assert current_revision(db.engine) is None
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            assert sa.inspect(conn).get_sequence_names() == []

    upgrade(db.engine)

    assert current_revision(db.engine) == head_revision()
    assert OURS <= tables(db)
    assert drift(db) == []
    with db.unit_of_work(write=False) as conn:  # empty and usable again
        assert conn.execute(sa.select(sa.func.count()).select_from(people.employees)).scalar_one() == 0
    make_org(db)
    assert_foreign_keys_enforced(db)


def assert_foreign_keys_enforced(db: Database) -> None:
    """SQLite migrates with foreign keys off; they must be on again for every connection afterwards."""
    for _ in range(2):  # the pooled connection the migration used, and whichever comes next
        with pytest.raises(sa.exc.IntegrityError), db.unit_of_work() as conn:
            conn.execute(people.departments.insert().values(code="X", name_ja="x", name_en="x", parent_id=999_999))


def test_migrating_leaves_foreign_keys_enforced(back_at_head: Database) -> None:
    db = back_at_head
    downgrade(db.engine, "base")
    upgrade(db.engine)
    assert_foreign_keys_enforced(db)


def test_where_things_stand_is_read_as_alembic_reads_it_without_importing_it(back_at_head: Database) -> None:
    """models.schema reads the head from the migration files and the database's revision from alembic_version
    (so a running server never imports Alembic): the same answers as Alembic's own, at every revision."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert head_revision() == script.get_current_head()
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    downgrade(back_at_head.engine, "base")
    assert current_revision(back_at_head.engine) is None
    for revision in revisions:
        upgrade(back_at_head.engine, revision)
        with back_at_head.engine.connect() as conn:
            theirs = MigrationContext.configure(conn).get_current_revision()
        assert current_revision(back_at_head.engine) == theirs == revision
