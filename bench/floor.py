"""The floor: the rows our engine writes for one lifecycle, written by hand with stdlib sqlite3.

Same schema (made by our Alembic migration, untimed), same four transactions (BEGIN IMMEDIATE, WAL,
synchronous=FULL), same rows: the request and its counter, 3 steps, 3 assignments, audit events with the
hash chain and its head, outbox messages and nudge rows, and the updates a decision makes. No validation,
no route resolution, no calendar: what is left is the cost of the storage itself.

Under concurrency (`run_concurrent`) the floor runs as a straightforward program would: C threads, each with
its own connection (busy timeout), one transaction per step; SQLite lets one writer in at a time and the others
wait in its busy handler. `run_in_threads` is that driver; the SpiffWorkflow baseline uses it too.
`run_concurrent_group_commit` is the floor of the product's own shape (see models/db.py): one hand-written
writer thread that runs the steps waiting together in one transaction (a SAVEPOINT each) and answers them after
its COMMIT, driven by C asyncio tasks like ours. It shows what group commit alone buys, with no engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.ours import PAYLOAD, WARMUP_LIFECYCLES, _company, check_rows, run_people
from models.db import Database
from models.schema import upgrade

BUSY_TIMEOUT_S = 30.0  # as the product's own connections (models/db.py): waiting for the lock is not an error


def _row_id(cursor: sqlite3.Cursor) -> int:
    if cursor.lastrowid is None:
        raise RuntimeError("INSERT returned no row id")
    return cursor.lastrowid


class _Floor:
    """The hand-written lifecycle on one connection. *grouped*: each step is a SAVEPOINT inside a transaction
    the group-commit writer opens and commits, instead of a transaction of its own."""

    def __init__(self, path: Path, grouped: bool = False) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.grouped = grouped

    def _begin(self) -> None:
        self.conn.execute("SAVEPOINT step" if self.grouped else "BEGIN IMMEDIATE")

    def _end(self) -> None:
        self.conn.execute("RELEASE step" if self.grouped else "COMMIT")

    def _audit(self, request_id: int, kinds: list[str], now: str) -> None:
        c = self.conn
        seq, prev = c.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone() or (0, "0" * 64)
        if seq == 0 and prev == "0" * 64 and not c.execute("SELECT 1 FROM audit_head").fetchone():
            c.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?)", (prev,))
        for kind in kinds:
            seq += 1
            data = json.dumps({"kind": kind}, sort_keys=True)
            digest = hashlib.sha256(f"{seq}{now}{kind}{data}{prev}".encode()).hexdigest()
            c.execute("INSERT INTO audit_events (seq, at, actor_id, request_id, kind, data, prev_hash, hash) "
                      "VALUES (?, ?, NULL, ?, ?, ?, ?, ?)", (seq, now, request_id, kind, data, prev, digest))
            prev = digest
        c.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, prev))

    def _outbox(self, request_id: int, kind: str, recipient: int, version: int, now: str) -> None:
        self.conn.execute(
            "INSERT INTO outbox (idempotency_key, recipient_id, kind, request_id, payload, state, attempts, "
            "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
            (f"{kind}:{request_id}:v{version}:{recipient}", recipient, kind, request_id,
             json.dumps({"kind": kind, "request_id": request_id}), now, now))

    def _nudges(self, request_id: int, assignment_id: int, target: int, due: datetime) -> None:
        rows = [(request_id, assignment_id, target, kind, (due + timedelta(days=d)).isoformat(" "))
                for kind, d in (("before_due", -1), ("escalation", 3))]  # each chain's first (workflow/nudge_plan.py)
        self.conn.executemany("INSERT INTO nudges (request_id, assignment_id, target_id, kind, due_at, state) "
                              "VALUES (?, ?, ?, ?, ?, 'pending')", rows)

    def submit(self, ids: dict[str, int]) -> tuple[int, list[int]]:
        c, now_dt = self.conn, datetime.now(UTC).replace(tzinfo=None)
        now = now_dt.isoformat(" ")
        self._begin()
        last = c.execute("INSERT INTO request_counters (type, fiscal_year, last) VALUES ('expense', 2026, 1) "
                         "ON CONFLICT (type, fiscal_year) DO UPDATE SET last = last + 1 RETURNING last").fetchone()[0]
        rid = _row_id(c.execute("INSERT INTO requests (number, type, fiscal_year, requester_id, payload, status, "
                                "version, round, created_at, updated_at) "
                                "VALUES (?, 'expense', 2026, ?, ?, 'pending', 1, 1, ?, ?)",
                                (f"EXP-2026-{last:04d}", ids["requester"], json.dumps(PAYLOAD), now, now)))
        assignment_ids: list[int] = []
        for pos, (key, who) in enumerate((("manager", "manager"), ("department_head", "head"),
                                          ("finance", "finance"))):
            sid = _row_id(c.execute("INSERT INTO steps (request_id, round, position, key, kind, required, cycle, "
                                    "status) VALUES (?, 1, ?, ?, 'approval', 0, 1, 'waiting')", (rid, pos, key)))
            assignment_ids.append(_row_id(c.execute(
                "INSERT INTO assignments (request_id, step_id, approver_id, cycle, status) VALUES (?, ?, ?, 1, 'waiting')",
                (rid, sid, ids[who]))))
        self._activate(rid, 0, assignment_ids[0], ids["manager"], 1, now_dt)
        self._outbox(rid, "submitted", ids["requester"], 1, now)
        self._audit(rid, ["request.submitted", "step.activated"], now)
        self._end()
        return rid, assignment_ids

    def _activate(self, rid: int, position: int, assignment_id: int, approver: int, version: int,
                  now_dt: datetime) -> None:
        due = now_dt + timedelta(days=3)
        self.conn.execute("UPDATE steps SET status = 'active', activated_at = ?, due_at = ? "
                          "WHERE request_id = ? AND position = ?", (now_dt.isoformat(" "), due.isoformat(" "),
                                                                    rid, position))
        self.conn.execute("UPDATE assignments SET status = 'pending' WHERE id = ?", (assignment_id,))
        self._outbox(rid, "approval_requested", approver, version, now_dt.isoformat(" "))
        self._nudges(rid, assignment_id, approver, due)

    def approve(self, rid: int, position: int, assignment_ids: list[int], ids: dict[str, int]) -> None:
        c, now_dt = self.conn, datetime.now(UTC).replace(tzinfo=None)
        now = now_dt.isoformat(" ")
        self._begin()
        version = c.execute("SELECT version FROM requests WHERE id = ?", (rid,)).fetchone()[0]
        aid = assignment_ids[position]
        approver = c.execute("SELECT approver_id FROM assignments WHERE id = ?", (aid,)).fetchone()[0]
        if c.execute("UPDATE assignments SET status = 'approved', acted_by_id = ?, decided_at = ? "
                     "WHERE id = ? AND status = 'pending'", (approver, now, aid)).rowcount != 1:
            raise RuntimeError("stale")
        c.execute("UPDATE nudges SET state = 'cancelled' WHERE assignment_id = ? AND state = 'pending'", (aid,))
        c.execute("UPDATE steps SET status = 'approved', completed_at = ? WHERE request_id = ? AND position = ?",
                  (now, rid, position))
        final = position == 2
        c.execute("UPDATE requests SET version = ?, status = ?, updated_at = ?, decided_at = ? "
                  "WHERE id = ? AND version = ?", (version + 1, "approved" if final else "pending", now,
                                                   now if final else None, rid, version))
        self._outbox(rid, "step_decided", ids["requester"], version + 1, now)
        if final:
            self._outbox(rid, "request_completed", ids["requester"], version + 1, now)
            self._audit(rid, ["assignment.approved", "request.completed"], now)
        else:
            nxt = ("head", "finance")[position]
            self._activate(rid, position + 1, assignment_ids[position + 1], ids[nxt], version + 1, now_dt)
            self._audit(rid, ["assignment.approved", "step.activated"], now)
        self._end()


def _schema(path: Path) -> dict[str, int]:
    """The schema and the company, made untimed by our own migration; the people's ids."""
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    ids = _company(db)
    db.dispose()
    return ids


def _lifecycle(floor: _Floor, ids: dict[str, int]) -> None:
    rid, assignment_ids = floor.submit(ids)
    for position in range(3):
        floor.approve(rid, position, assignment_ids, ids)


def run_lifecycles(n: int, workdir: Path) -> float:
    """Mean seconds per lifecycle over n lifecycles (after an untimed warm-up); the rows are checked afterwards."""
    path = workdir / "floor.db"
    ids = _schema(path)
    floor = _Floor(path)
    for _ in range(WARMUP_LIFECYCLES):
        _lifecycle(floor, ids)
    start = time.perf_counter()
    for _ in range(n):
        _lifecycle(floor, ids)
    elapsed = time.perf_counter() - start
    floor.conn.close()
    check_rows(path, WARMUP_LIFECYCLES + n)
    return elapsed / n


def run_in_threads(n: int, concurrency: int,
                   person: Callable[[], AbstractContextManager[Callable[[], None]]]) -> float:
    """Seconds for *concurrency* threads to run *n* lifecycles between them. Each thread enters *person()* (its
    own connection, made before the clock starts) and runs the lifecycle it yields, one after another, until
    *n* were taken. The first error of any thread stops them all and is raised here."""
    lock, errors = threading.Lock(), list[BaseException]()
    left = n
    start = threading.Barrier(concurrency + 1)

    def take() -> bool:
        nonlocal left
        with lock:
            if left <= 0 or errors:
                return False
            left -= 1
            return True

    def work() -> None:
        try:
            with person() as lifecycle:
                start.wait()
                while take():
                    lifecycle()
        except BaseException as exc:  # handed to the main thread, raised there
            with lock:
                errors.append(exc)
            start.abort()  # a thread that died before the start must not leave the others waiting

    threads = [threading.Thread(target=work, name=f"person-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass  # the error is in `errors`, raised below
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return elapsed


def run_concurrent(n: int, workdir: Path, concurrency: int) -> float:
    """Wall-clock seconds per lifecycle (1 / throughput) with *concurrency* threads, each with its own
    connection and one transaction per step (after an untimed warm-up); the rows are checked afterwards."""
    path = workdir / "floor.db"
    ids = _schema(path)

    @contextmanager
    def person() -> Iterator[Callable[[], None]]:
        floor = _Floor(path)
        try:
            yield lambda: _lifecycle(floor, ids)
        finally:
            floor.conn.close()

    warmup = max(WARMUP_LIFECYCLES, concurrency)
    run_in_threads(warmup, concurrency, person)
    elapsed = run_in_threads(n, concurrency, person)
    check_rows(path, warmup + n)
    return elapsed / n


Step = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class _GroupCommit:
    """A minimal hand-written group commit: one thread, one connection; the steps waiting when a round starts
    run in ONE transaction, each in its SAVEPOINT, and are answered only after the COMMIT returned."""

    def __init__(self, floor: _Floor) -> None:
        self.floor = floor
        self._steps: queue.SimpleQueue[Step | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="floor-writer")
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._steps.put((future, fn, args))
        return future

    def close(self) -> None:
        self._steps.put(None)
        self._thread.join()
        self.floor.conn.close()

    def _work(self) -> None:
        while (first := self._steps.get()) is not None:
            group, done = [first], False
            while not done:
                try:
                    step = self._steps.get_nowait()
                except queue.Empty:
                    break
                if step is None:
                    done = True
                else:
                    group.append(step)
            self._round(group)
            if done:
                return

    def _round(self, group: list[Step]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            self.floor.conn.execute("BEGIN IMMEDIATE")
            for _, fn, args in group:
                try:
                    results.append((True, fn(*args)))
                except Exception as exc:  # its caller gets it; the others stand
                    self.floor.conn.execute("ROLLBACK TO step")
                    self.floor.conn.execute("RELEASE step")
                    results.append((False, exc))
            self.floor.conn.execute("COMMIT")
        except Exception as exc:  # nothing of the round is durable
            for future, *_ in group:
                future.set_exception(exc)
            return
        for (future, *_), (ok, value) in zip(group, results, strict=True):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def run_concurrent_group_commit(n: int, workdir: Path, concurrency: int) -> float:
    """Wall-clock seconds per lifecycle (1 / throughput) with *concurrency* asyncio tasks whose steps go to
    one hand-written group-commit writer (after an untimed warm-up); the rows are checked afterwards."""
    path = workdir / "floor.db"
    ids = _schema(path)
    writer = _GroupCommit(_Floor(path, grouped=True))

    async def lifecycle() -> None:
        floor = writer.floor
        rid, assignment_ids = await asyncio.wrap_future(writer.submit(floor.submit, ids))
        for position in range(3):
            await asyncio.wrap_future(writer.submit(floor.approve, rid, position, assignment_ids, ids))

    async def both(warmup: int) -> float:
        await run_people(warmup, concurrency, lifecycle)
        return await run_people(n, concurrency, lifecycle)

    warmup = max(WARMUP_LIFECYCLES, concurrency)
    try:
        elapsed = asyncio.run(both(warmup))
    finally:
        writer.close()
    check_rows(path, warmup + n)
    return elapsed / n
