"""PostgreSQL: a write unit of work runs in psycopg's pipeline mode (models/db.py, models/postgres_path.py). BEGIN goes
out with the first statement, and the writes whose answer nobody reads go out with COMMIT, so a unit costs fewer
round trips. What a caller reads (rows, a conditional update's rowcount) is still exact, an error in a write nobody
read back still undoes the whole unit, and statements SQLAlchemy runs itself still see their answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from config.policy import Policy
from models import people
from models.audit import audit_head
from models.base import prepared
from models.db import Database
from models.people import departments
from models.statements import run, run_later
from tests.conftest import Org
from tests.stubs.tcp_proxy import TcpProxy
from workflow.engine import Engine


@pytest.fixture
def pg(db: Database) -> Database:
    if db.dialect != "postgresql":
        pytest.skip("pipeline mode is psycopg's (SQLite has no round trips)")
    return db


def _move_head(conn: sa.Connection, seen: int, to: int) -> int:
    """A conditional update through the fast path: moves the audit head only from `seen`; its rowcount says
    whether it did."""
    stmt = prepared(("test_move_head_if",), lambda: audit_head.update()
                    .where(audit_head.c.id == 1, audit_head.c.seq == sa.bindparam("seen"))
                    .values(seq=sa.bindparam("to")))
    return int(run(conn, stmt, {"seen": seen, "to": to}).rowcount)


def _insert_department(conn: sa.Connection, code: str) -> None:
    """An INSERT through the fast path whose answer nobody reads (no RETURNING)."""
    stmt = prepared(("test_insert_department",), lambda: departments.insert())
    run(conn, stmt, {"code": code, "name_ja": code, "name_en": code})


def _codes(db: Database) -> set[str]:
    with db.unit_of_work(write=False) as conn:
        return {str(code) for code in conn.execute(sa.select(departments.c.code)).scalars()}


def test_a_conditional_update_in_a_pipeline_says_whether_it_won(pg: Database) -> None:
    with pg.unit_of_work() as conn:
        assert "pipeline" in conn.info  # the unit is pipelined
        assert _move_head(conn, 0, 1) == 1
        assert _move_head(conn, 0, 2) == 0  # the head is at 1 now: this one lost
        assert _move_head(conn, 1, 3) == 1
    with pg.unit_of_work(write=False) as conn:
        assert conn.execute(sa.select(audit_head.c.seq)).scalar_one() == 3
        assert "pipeline" not in conn.info  # a read unit is not pipelined; the write unit's mark is gone


def test_a_unit_reads_its_own_writes_sent_before(pg: Database) -> None:
    with pg.unit_of_work() as conn:
        _insert_department(conn, "D1")
        _insert_department(conn, "D2")
        # read through the fast path (rows: waits for the answers of everything sent before)
        assert {d.code for d in people.all_departments(conn)} >= {"D1", "D2"}
        # and through SQLAlchemy's own execution (synced at once: it reads the description right away)
        found = conn.execute(sa.text("SELECT code FROM departments WHERE code IN ('D1', 'D2') ORDER BY code"))
        assert found.scalars().all() == ["D1", "D2"]
        updated = conn.execute(departments.update().where(departments.c.code == "D1").values(name_en="One"))
        assert updated.rowcount == 1


def test_an_error_in_a_write_nobody_read_back_undoes_the_whole_unit(pg: Database) -> None:
    with pg.unit_of_work() as conn:
        _insert_department(conn, "TAKEN")
    with pytest.raises(sa.exc.IntegrityError, match="uq_departments_code"):
        with pg.unit_of_work() as conn:
            _insert_department(conn, "NEW")
            _insert_department(conn, "TAKEN")  # fails on the server; nobody waits for its answer here
            _insert_department(conn, "NEWER")  # sent behind it: the server skips it
    assert _codes(pg) == {"TAKEN"}  # nothing of the failed unit stayed
    with pg.unit_of_work() as conn:  # the connection went back to the pool usable
        _insert_department(conn, "AFTER")
    assert _codes(pg) == {"TAKEN", "AFTER"}


def test_an_error_is_raised_where_a_result_is_asked_for(pg: Database) -> None:
    with pg.unit_of_work() as conn:
        _insert_department(conn, "TAKEN")
    with pytest.raises(sa.exc.IntegrityError):
        with pg.unit_of_work() as conn:
            _insert_department(conn, "TAKEN")
            _move_head(conn, 0, 1)  # asks for its rowcount: the error before it surfaces here, not at COMMIT
            pytest.fail("the duplicate went unnoticed")
    with pg.unit_of_work(write=False) as conn:
        assert conn.execute(sa.select(audit_head.c.seq)).scalar_one() == 0


@pytest.fixture
def counted(pg: Database) -> Iterator[tuple[Database, TcpProxy]]:
    """The same database through a relay on loopback that counts the server's ReadyForQuery messages."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = pg.engine.url
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result()
    db = Database(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    try:
        yield db, proxy
    finally:
        db.dispose()
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _waits_of_three_inserts(db: Database, proxy: TcpProxy, first: str) -> int:
    """How many times the unit waited for the server to be done with what it sent (ReadyForQuery messages)."""
    before = proxy.ready
    with db.unit_of_work() as conn:
        for i in range(3):
            _insert_department(conn, f"{first}{i}")
    return proxy.ready - before


def test_a_pipelined_unit_sends_its_writes_with_commit(counted: tuple[Database, TcpProxy]) -> None:
    db, proxy = counted
    _waits_of_three_inserts(db, proxy, "WARM")  # connecting and SQLAlchemy's first look at the server
    pipelined = _waits_of_three_inserts(db, proxy, "P")
    db.pipelined = False
    plain = _waits_of_three_inserts(db, proxy, "Q")
    assert plain == 5  # BEGIN, three INSERTs, COMMIT: each waits for its answer
    assert pipelined == 1  # all of it, and one wait
    assert {f"{x}{i}" for x in "PQ" for i in range(3)} <= _codes(db)


def _codes_like(prefix: str) -> Any:
    return prepared(("test_codes_like",), lambda: sa.select(departments.c.code)
                    .where(departments.c.code.like(sa.bindparam("p"))).order_by(departments.c.code))


def test_reads_sent_together_are_answered_in_order_and_see_what_was_sent_before_them(pg: Database) -> None:
    """`run_later`: in a pipelined unit a query is sent at once and its rows read when asked for; each reads as of
    its own place among the statements sent (the second sees the INSERT sent between the two)."""
    with pg.unit_of_work() as conn:
        _insert_department(conn, "L1")
        first = run_later(conn, _codes_like("L%"), {"p": "L%"})
        _insert_department(conn, "L2")
        second = run_later(conn, _codes_like("L%"), {"p": "L%"})
        assert [r.code for r in second.result()] == ["L1", "L2"]  # read in either order
        assert [r.code for r in first.result()] == ["L1"]
        assert first.result().all() == first.result().all()  # read once, kept
    assert {"L1", "L2"} <= _codes(pg)


def test_a_read_sent_ahead_raises_its_error_where_it_is_read_and_undoes_the_unit(pg: Database) -> None:
    ratio = prepared(("test_ratio",), lambda: sa.select(departments.c.code, (sa.literal(1) / sa.bindparam("z"))
                                                        .label("r")).where(departments.c.code == "R1"))
    with pytest.raises(sa.exc.DataError):  # division by zero, as through Connection.execute
        with pg.unit_of_work() as conn:
            _insert_department(conn, "R1")
            later = run_later(conn, ratio, {"z": 0})
            _insert_department(conn, "R2")
            later.result()
            pytest.fail("the error went unnoticed")
    assert not {"R1", "R2"} & _codes(pg)


EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 5000,
                                        "tax_rate": "10", "category": "travel"}]}


def test_an_approval_waits_for_the_server_only_where_it_reads(counted: tuple[Database, TcpProxy], org: Org,
                                                              policy: Policy) -> None:
    """A decision's unit syncs with the server (the pipeline's end of a batch, a ReadyForQuery) twice: for the
    conditional update that says whether this click won, and for its COMMIT, which carries the rest (the step, the
    next approvers, outbox rows, reminders, audit events, the cancelled reminders: nobody reads their counts). Its
    reads (the request, the route, the new version, the audit head) wait for their rows without a sync."""
    db, proxy = counted
    engine = Engine(db, policy)
    first, second = (engine.submit(org.alice, "expense", EXPENSE) for _ in range(2))
    assert engine.decide(first.open_assignments[0], org.manager, "approve").ok  # warm: prepared statements
    before = proxy.ready
    assert engine.decide(second.open_assignments[0], org.manager, "approve").ok
    assert proxy.ready - before == 2
