"""The database's writer (`Database.writer`): on SQLite one thread that group-commits the calls waiting together,
each unit of work in a SAVEPOINT; on PostgreSQL a thread pool. Refusals and errors undo only their own call; a
result is handed back only once it is committed; concurrent clicks still change state exactly once."""

from __future__ import annotations

import asyncio
import shutil
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from config.policy import Policy
from models.db import Database, GroupCommitWriter
from models.loop_units import LoopWriter
from models.messaging import outbox
from tests.conftest import Org
from workflow.engine import Engine

EXPENSE = {"purpose": "出張", "items": [{"date": "2026-06-01", "payee": "JR", "amount": 1_000, "tax_rate": "10",
                                        "category": "travel"}]}


@contextmanager
def _writer_held(db: Database) -> Iterator[None]:
    """The writer busy with a call that returns when the block ends: what is submitted meanwhile waits together."""
    started, gate = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return gate.wait(10)

    blocker = db.writer.submit(hold)
    assert started.wait(10)
    yield
    gate.set()
    assert blocker.result(10)


def _one_round(db: Database, calls: list[Any]) -> list[Future[Any]]:
    """Submit `calls` so that they all wait together, hence share one round (one transaction)."""
    with _writer_held(db):
        return [db.writer.submit(call) for call in calls]


def _notes(db: Database) -> list[str]:
    with db.unit_of_work(write=False) as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT v FROM notes ORDER BY v")]


@pytest.fixture
def notes(sqlite_db: Database) -> Database:
    with sqlite_db.unit_of_work() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (v TEXT)")
    return sqlite_db


def _writes(db: Database, value: str, end: str = "ok") -> Any:
    def call() -> str:
        with db.unit_of_work() as conn:
            conn.exec_driver_sql("INSERT INTO notes VALUES (?)", (value,))
            if end == "refuse":
                db.rollback(conn)
            elif end == "raise":
                raise ValueError(value)
        return value
    return call


def test_sqlite_writer_is_one_group_committing_thread(sqlite_db: Database) -> None:
    assert isinstance(sqlite_db.writer, GroupCommitWriter)
    assert sqlite_db.writer is sqlite_db.writer


def test_a_refusal_or_an_error_undoes_only_its_own_call(notes: Database) -> None:
    futures = _one_round(notes, [_writes(notes, "a"), _writes(notes, "b", "refuse"), _writes(notes, "c", "raise"),
                                 _writes(notes, "d")])
    assert futures[0].result() == "a" and futures[1].result() == "b" and futures[3].result() == "d"
    with pytest.raises(ValueError):
        futures[2].result()
    assert _notes(notes) == ["a", "d"]


def test_a_lost_transaction_fails_every_call_of_the_round(notes: Database) -> None:
    def lose() -> None:
        with notes.unit_of_work() as conn:
            conn.connection.driver_connection.execute("ROLLBACK")  # type: ignore[union-attr]

    futures = _one_round(notes, [_writes(notes, "a"), lose, _writes(notes, "c")])
    for future in futures:
        with pytest.raises(sa.exc.OperationalError):
            future.result()
    assert _notes(notes) == []
    assert notes.writer.submit(_writes(notes, "after")).result() == "after"  # the writer carries on
    assert _notes(notes) == ["after"]


def test_urgent_calls_go_before_the_plain_ones_waiting(notes: Database) -> None:
    writer = notes.writer
    assert isinstance(writer, GroupCommitWriter)
    order: list[str] = []
    with _writer_held(notes):
        plain = writer.submit(order.append, "plain")
        urgent = writer.submit_first(order.append, "urgent")
    plain.result(10), urgent.result(10)
    assert order == ["urgent", "plain"]


def test_shutdown_runs_what_was_submitted_then_refuses(notes: Database) -> None:
    future = notes.writer.submit(_writes(notes, "last"))
    notes.writer.shutdown()
    assert future.result() == "last"
    with pytest.raises(RuntimeError):
        notes.writer.submit(_writes(notes, "late"))


def test_engine_refusals_in_a_round_leave_no_trace_and_concurrent_clicks_decide_once(
        db: Database, org: Org, policy: Policy) -> None:
    engine = Engine(db, policy)
    out = engine.submit(org.alice, "expense", EXPENSE)
    assert out.ok and out.request is not None
    assignment = out.open_assignments[0]
    with db.unit_of_work(write=False) as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
    clicks = [lambda: engine.decide(assignment, org.manager, "approve") for _ in range(5)]
    clicks.append(lambda: engine.decide(assignment, org.alice, "approve"))  # her own request: refused
    if isinstance(db.writer, GroupCommitWriter):
        outcomes = [f.result(30) for f in _one_round(db, clicks)]
    else:  # PostgreSQL: the clicks' transactions side by side, each waiting for the server on the loop
        outcomes = asyncio.run(_side_by_side(db, clicks))
    assert sum(o.ok for o in outcomes[:5]) == 1
    assert {o.code for o in outcomes[:5] if not o.ok} <= {"already_decided"}
    assert outcomes[5].code == "self_approval"
    with db.unit_of_work(write=False) as conn:
        after = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
    assert after > before  # the one approval's news, and nothing from the refusals:
    assert engine.decide(assignment, org.manager, "approve").code == "already_decided"


async def _side_by_side(db: Database, calls: list[Any]) -> list[Any]:
    writer = db.writer
    assert isinstance(writer, LoopWriter)
    return list(await asyncio.gather(*(writer.run(call) for call in calls)))


def test_async_callers_get_a_round_s_results_in_one_loop_wake(notes: Database) -> None:
    """`submit_async`: the round's results for one event loop arrive together after the COMMIT: each caller
    its own value or error, a refused call undone alone, a caller that gave up skipped while its call commits."""
    import asyncio

    writer = notes.writer
    assert isinstance(writer, GroupCommitWriter)

    async def scenario() -> list[Any]:
        started, gate = threading.Event(), threading.Event()

        def hold() -> bool:
            started.set()
            return gate.wait(10)

        blocker = writer.submit(hold)
        assert await asyncio.to_thread(started.wait, 10)
        loop = asyncio.get_running_loop()
        wakes = 0
        wake = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal wakes
            wakes += 1
            return wake(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        waiting = [writer.submit_async(_writes(notes, "a"), first=True),
                   writer.submit_async(_writes(notes, "b", "raise")),
                   writer.submit_async(_writes(notes, "c", "refuse")),
                   writer.submit_async(_writes(notes, "d"))]
        waiting[3].cancel()  # the caller gave up (e.g. its HTTP request was cancelled): the call still runs
        gate.set()
        assert await asyncio.wrap_future(blocker)
        results = await asyncio.gather(*waiting[:3], return_exceptions=True)
        loop.call_soon_threadsafe = wake  # type: ignore[method-assign]
        return [*results, wakes]

    a, b, c, wakes = asyncio.run(scenario())
    assert a == "a" and isinstance(b, ValueError) and c == "c"
    assert wakes == 2  # the blocker's concurrent future, then the whole round of four in one
    assert _notes(notes) == ["a", "d"]


def test_durable_before_told_one_sync_covers_every_round_since_the_last(notes: Database) -> None:
    """A file database at FULL (the default): a call made with `durable=False` (a Slack click) is committed
    without an fsync; `made_durable` (before the person is told) syncs once for every round since the last; a
    call made durable (the default) comes back only once its round is."""
    import asyncio

    writer = notes.writer
    assert isinstance(writer, GroupCommitWriter) and writer.defers_sync

    async def scenario() -> list[tuple[int, int]]:
        seen = [(writer.committed, writer.durable_through)]
        for value in ("a", "b"):
            assert await writer.submit_async(_writes(notes, value), first=True, durable=False) == value
            seen.append((writer.committed, writer.durable_through))
        await asyncio.gather(*(writer.made_durable() for _ in range(20)))  # twenty replies at once: one round
        seen.append((writer.committed, writer.durable_through))
        await writer.made_durable()  # nothing left to sync: no round at all
        seen.append((writer.committed, writer.durable_through))
        assert await writer.submit_async(_writes(notes, "c")) == "c"
        seen.append((writer.committed, writer.durable_through))
        return seen

    start, one, two, synced, again, durable = asyncio.run(scenario())
    assert one[0] == start[0] + 1 and two[0] == start[0] + 2  # committed...
    assert one[1] == two[1] == start[1]  # ...and not yet synced
    assert synced[1] == synced[0] == two[0] + 1  # one more (empty) round, and everything up to it durable
    assert again == synced
    assert durable[1] == durable[0] == synced[0] + 1
    assert _notes(notes) == ["a", "b", "c"]


def test_the_writers_own_connection_syncs_and_checkpoints_itself_and_keeps_savepoint_journals_in_memory(notes: Database) -> None:
    def pragmas() -> tuple[int, ...]:
        with notes.unit_of_work() as conn:
            raw = conn.connection.driver_connection
            return tuple(raw.execute(f"PRAGMA {name}").fetchone()[0]  # type: ignore[union-attr]
                         for name in ("synchronous", "temp_store", "wal_autocheckpoint"))

    # NORMAL (it fdatasyncs itself), MEMORY, and no autocheckpoint (the checkpointer's thread does: see below)
    assert notes.writer.submit(pragmas).result(10) == (1, 2, 0)
    assert pragmas() == (2, 0, 1000)  # any other connection: as configured, and SQLite's defaults


@pytest.mark.parametrize("level", ["NORMAL", "OFF"])
def test_below_full_the_writer_promises_no_more_than_asked(tmp_path: Path, sqlite_template: Path,
                                                          level: str) -> None:
    """MADOGUCHI_SQLITE_SYNCHRONOUS below FULL: no fsync of our own; every commit counts as all there is."""
    import asyncio

    path = tmp_path / "madoguchi.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}", synchronous=level)
    try:
        writer = db.writer
        assert isinstance(writer, GroupCommitWriter) and not writer.defers_sync

        async def click() -> None:
            await writer.submit_async(lambda: None, durable=False)
            await writer.made_durable()

        asyncio.run(click())
        assert writer.durable_through == writer.committed == 1
    finally:
        db.dispose()


def test_a_lone_call_that_waits_for_no_disk_runs_on_the_callers_thread_when_the_writer_is_idle(
        notes: Database) -> None:
    """`alone=True, durable=False` (a lone Slack click): run on the event loop's own thread, committed when the
    future is handed back; anything else, or while the writer is busy, goes to the writer thread."""
    import asyncio

    writer = notes.writer
    assert isinstance(writer, GroupCommitWriter)

    def where(value: str) -> Any:
        def call() -> str:
            _writes(notes, value)()
            return threading.current_thread().name
        return call

    async def scenario() -> dict[str, str]:
        me = threading.current_thread().name
        seen = {"lone": await writer.submit_async(where("lone"), first=True, durable=False, alone=True),
                "durable": await writer.submit_async(where("durable"), first=True, alone=True),
                "not alone": await writer.submit_async(where("not alone"), first=True, durable=False)}
        with _writer_held(notes):
            busy = writer.submit_async(where("busy"), first=True, durable=False, alone=True)
            assert not busy.done()  # it waits for the writer's turn
        seen["busy"] = await busy
        return {k: "caller" if v == me else v for k, v in seen.items()}

    assert asyncio.run(scenario()) == {"lone": "caller", "durable": "madoguchi-db-writer",
                                       "not alone": "madoguchi-db-writer", "busy": "madoguchi-db-writer"}
    assert _notes(notes) == ["busy", "durable", "lone", "not alone"]


def test_the_checkpointer_thread_checkpoints_the_wal_the_event_loop_never_does(notes: Database) -> None:
    """The writer's connection has SQLite's autocheckpoint off (a round run on the event loop must not copy pages
    and fsync there); the checkpointer, a thread with a connection of its own, checkpoints after every
    CHECKPOINT_EVERY calls instead, without the writer's turn while it copies most pages (the writer goes on
    meanwhile; only the pages committed during that copy are copied with the turn held)."""
    import asyncio
    import time

    from models.db import CHECKPOINT_EVERY

    writer = notes.writer
    assert isinstance(writer, GroupCommitWriter)
    before = writer.checkpoints

    async def lone_clicks() -> None:
        for i in range(CHECKPOINT_EVERY):
            await writer.submit_async(_writes(notes, f"n{i:03}"), first=True, durable=False, alone=True)

    asyncio.run(lone_clicks())
    deadline = time.monotonic() + 10
    while writer.checkpoints == before:
        assert time.monotonic() < deadline, "the checkpointer did not checkpoint"
        time.sleep(0.01)
    assert len(_notes(notes)) == CHECKPOINT_EVERY
    assert "madoguchi-db-checkpoint" in {t.name for t in threading.enumerate()}


def _wal_started_over(db: Database) -> int:
    """How many times the WAL has started over from its top: the checkpoint sequence number in its header, which
    SQLite counts up at each restart (https://www.sqlite.org/fileformat.html#wal_file_format)."""
    header = Path(db.engine.url.database + "-wal").read_bytes()[:16]  # type: ignore[operator]
    return struct.unpack(">I", header[12:16])[0]


def test_under_a_steady_load_the_wal_starts_over_after_each_checkpoint(notes: Database) -> None:
    """Writes one after the other, never a pause: each checkpoint ends with what was committed during it copied under
    the writer's turn, so the next write begins with the WAL wholly in the database file and starts it over. Without
    that, every write began beside a checkpoint and the WAL grew by every page for as long as the load lasted."""
    writer = notes.writer
    assert isinstance(writer, GroupCommitWriter)
    writer.submit(_writes(notes, "first")).result(10)
    started, checkpoints = _wal_started_over(notes), writer.checkpoints
    for i in range(100_000):
        writer.submit(_writes(notes, f"n{i:06}")).result(10)
        if writer.checkpoints >= checkpoints + 3:
            break
    else:
        pytest.fail("the checkpointer did not checkpoint three times")
    writer.submit(_writes(notes, "last")).result(10)
    assert _wal_started_over(notes) - started >= 2
