"""PostgreSQL: a pooled connection that died while it sat in the pool (a server restart, a dropped link) is found
before use and replaced, so the unit of work that takes it works (models/db.py, `PING_AFTER`)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from models.db import PING_AFTER, Database


def _backend(db: Database) -> int:
    with db.unit_of_work(write=False) as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_that_died_in_the_pool_is_replaced_before_use(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has no server to lose")
    db.engine.dispose()  # the pool starts empty: the next unit of work makes the one connection it holds
    first = _backend(db)
    killer = sa.create_engine(db.engine.url)
    try:
        with killer.connect() as conn:  # as a server restart would, while the connection is in the pool
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar_one()
        time.sleep(PING_AFTER + 0.2)
        second = _backend(db)  # the dead connection was pinged, dropped and replaced: no error reaches the caller
        assert second != first
        assert _backend(db) == second  # given back a moment ago: handed out again as it is
    finally:
        killer.dispose()
        db.engine.dispose()
