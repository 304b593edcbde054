"""How units of work use PostgreSQL connections (models/db.py): a short read that asks for no transaction runs
without one (no BEGIN / COMMIT round trips) and still reads what the writes committed; other reads keep theirs
(a server-side cursor needs it); a write unit after it, on the same pooled connection, is one transaction again."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from config.policy import Policy
from models import requests as rq
from models.db import Database
from tests.conftest import Clock, Org
from workflow.engine import Engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres(db: Database) -> Database:
    if db.dialect != "postgresql":
        pytest.skip("connections to a server are PostgreSQL's (SQLite is a file)")
    return db


def status(conn: sa.Connection) -> psycopg.pq.TransactionStatus:
    raw = conn.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    return raw.info.transaction_status


def one_transaction(conn: sa.Connection) -> bool:
    """Whether two statements run in one transaction, as the server sees it. (A write unit runs in pipeline mode,
    where psycopg learns that a transaction is open only at the next sync: its status may still say IDLE.)"""
    first, second = (conn.execute(sa.text("SELECT txid_current()")).scalar_one() for _ in range(2))
    return bool(first == second)


def test_a_short_read_has_no_transaction_other_units_have_one(postgres: Database, org: Org, policy: Policy,
                                                             clock: Clock) -> None:
    with postgres.unit_of_work(write=False, transaction=False) as conn:
        conn.execute(sa.text("SELECT 1"))
        assert status(conn) == psycopg.pq.TransactionStatus.IDLE  # autocommit: nothing to commit
    with postgres.unit_of_work(write=False) as conn:
        conn.execute(sa.text("SELECT 1"))
        assert status(conn) == psycopg.pq.TransactionStatus.INTRANS
    with postgres.unit_of_work() as conn:
        assert one_transaction(conn)
    with postgres.unit_of_work(write=False, transaction=False) as conn:
        assert not one_transaction(conn)
    # and the reads see what the writes committed, through the fast path too
    out = Engine(postgres, policy, clock=clock).submit(
        org.alice, "expense", {"purpose": "出張", "items": [
            {"date": "2026-06-01", "payee": "JR東海", "amount": "14170", "tax_rate": "10", "category": "travel"}]})
    assert out.ok and out.request is not None
    with postgres.unit_of_work(write=False, transaction=False) as conn:
        found = rq.get_request(conn, out.request.id)
        assert found is not None and found.status == "pending"
    with postgres.unit_of_work() as conn:  # a write unit after a read unit on the same pooled connection
        assert rq.get_request(conn, out.request.id, lock=True) is not None
        assert one_transaction(conn)
