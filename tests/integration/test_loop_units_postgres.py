"""PostgreSQL's writer (models/loop_units.py): units of work run on the event loop's thread, their waits for the
server go to the loop. Two transactions side by side on one thread, one waiting at the server for the other's row
lock, still end (the loop was never blocked); a unit's new connection is opened; outside a unit, connections wait
as psycopg does; the engine's clicks through `bot.writer.on_writer` decide once."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest
import sqlalchemy as sa

from bot.writer import on_writer
from config.policy import Policy
from models.audit import audit_head
from models.base import prepared
from models.db import Database
from models.loop_units import LoopConnection, LoopWriter, on_loop, wait_for
from models.statements import run
from tests.conftest import PG_URL, Org
from workflow.engine import Engine

pytestmark = pytest.mark.postgres

EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 5000,
                                        "tax_rate": "10", "category": "travel"}]}
LIMIT = 30.0  # seconds before a test that would hang fails instead


@pytest.fixture
def postgres(db: Database) -> Database:
    if db.dialect != "postgresql":
        pytest.skip("the loop's writer is PostgreSQL's (SQLite has one writer thread)")
    return db


def _waiting_for_a_lock(url: str) -> bool:
    """Whether a backend of this database waits for a lock (asked on a connection of its own)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'").fetchone()
    return bool(row and row[0])


def test_one_unit_waits_at_the_server_for_anothers_lock_and_both_end_on_one_thread(postgres: Database) -> None:
    """A holds the audit head's row lock and waits (on the loop) to be told to commit; B's UPDATE of that row waits
    at the server. The test's coroutine sees B waiting and lets A go on: with B's wait blocking the thread, the test
    could not run, and A would never commit."""
    url = postgres.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    said: list[str] = []

    async def main() -> None:
        locked, release = asyncio.Event(), asyncio.Event()

        def a() -> None:
            with postgres.unit_of_work() as conn:
                conn.execute(sa.text("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")).all()
                locked.set()
                wait_for(release.wait())
                conn.execute(sa.text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1"))
                said.append("a commits")

        def b() -> None:
            wait_for(locked.wait())
            with postgres.unit_of_work() as conn:
                # were the loop blocked by this wait, the test would hang: it fails after LIMIT seconds instead
                conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(LIMIT)}s'"))
                said.append("b updates")
                conn.execute(sa.text("UPDATE audit_head SET seq = seq * 10 WHERE id = 1"))
            said.append("b committed")

        writer = postgres.writer
        assert isinstance(writer, LoopWriter)
        units = asyncio.gather(writer.run(a), writer.run(b))
        await asyncio.wait_for(locked.wait(), LIMIT)
        deadline = time.monotonic() + LIMIT
        while not await asyncio.to_thread(_waiting_for_a_lock, url):
            assert time.monotonic() < deadline, "B never waited for A's lock"
            await asyncio.sleep(0.01)
        said.append("b waits at the server")
        release.set()
        await asyncio.wait_for(units, LIMIT)

    asyncio.run(main())
    assert said == ["b updates", "b waits at the server", "a commits", "b committed"]
    with postgres.unit_of_work(write=False) as conn:
        assert conn.execute(sa.text("SELECT seq FROM audit_head WHERE id = 1")).scalar_one() == 10  # (0 + 1) * 10


def test_a_unit_sending_many_statements_lets_the_loop_run_on_the_way(postgres: Database) -> None:
    """Statements sent in pipeline mode are settled in the unit, without the loop; a unit busy for a while between
    them still lets the loop run now and then (`BUSY`), not only at its COMMIT: a click arriving meanwhile is
    answered."""
    turns = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    def unit() -> int:
        with postgres.unit_of_work() as conn:
            assert "pipeline" in conn.info
            move = prepared(("test: move the head",), lambda: audit_head.update().where(audit_head.c.id == 1)
                            .values(seq=sa.bindparam("s")))
            conn.execute(sa.text("SELECT 1")).all()  # a wait for the server (the loop runs), then none till COMMIT
            before = turns
            for i in range(40):  # a unit busy on the CPU between its statements (a broadcast's rows being made)
                spin = time.monotonic() + 0.001
                while time.monotonic() < spin:
                    pass
                run(conn, move, {"s": i})  # sent; nobody reads its answer
            return turns - before  # before the COMMIT, the unit's next wait for the server

    async def main() -> int:
        stop = asyncio.Event()
        ticking = asyncio.ensure_future(ticker(stop))
        writer = postgres.writer
        assert isinstance(writer, LoopWriter)
        seen = await asyncio.wait_for(writer.run(unit), LIMIT)
        stop.set()
        await ticking
        return seen

    assert asyncio.run(main()) > 0


def test_a_fresh_pools_connections_are_opened_for_the_loop_and_wait_as_usual_elsewhere() -> None:
    if not PG_URL:
        pytest.skip("PostgreSQL not available: set MADOGUCHI_TEST_POSTGRES_URL")
    db = Database(PG_URL, pool_size=2)
    try:
        def unit() -> tuple[bool, str, int]:
            with db.unit_of_work(write=False) as conn:
                raw = conn.connection.dbapi_connection
                assert isinstance(raw, LoopConnection)
                return on_loop(), threading.current_thread().name, conn.execute(sa.text("SELECT 41 + 1")).scalar_one()

        writer = db.writer
        assert isinstance(writer, LoopWriter)
        assert asyncio.run(writer.run(unit)) == (True, threading.current_thread().name, 42)
        # on a thread of its own (the tick, the CLI): a plain blocking wait on the same kind of connection
        assert unit()[2] == 42
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(unit()[2]))
        thread.start()
        thread.join(LIMIT)
        assert result == [42]
    finally:
        db.dispose()


def test_simultaneous_clicks_through_the_writer_decide_once(postgres: Database, org: Org, policy: Policy) -> None:
    engine = Engine(postgres, policy)
    out = engine.submit(org.alice, "expense", EXPENSE)
    assert out.ok
    assignment = out.open_assignments[0]

    async def clicks() -> list[str]:
        outcomes = await asyncio.wait_for(asyncio.gather(*(
            on_writer(postgres, engine.decide, assignment, org.manager, "approve") for _ in range(8))), LIMIT)
        return sorted(o.code for o in outcomes)

    assert asyncio.run(clicks()) == ["already_decided"] * 7 + ["approved"]
