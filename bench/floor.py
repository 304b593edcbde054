"""The floor: the rows our engine writes for one lifecycle, written by hand with stdlib sqlite3.

Same schema (made by our Alembic migration, untimed), same four transactions (BEGIN IMMEDIATE, WAL,
synchronous=FULL), same rows: the request and its counter, 3 steps, 3 assignments, audit events with the
hash chain and its head, outbox messages and nudge rows, and the updates a decision makes. No validation,
no route resolution, no calendar: what is left is the cost of the storage itself.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.ours import PAYLOAD, _company
from models.db import Database
from models.schema import upgrade


class _Floor:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.seq = 0

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
                for kind, d in (("before_due", -1), ("due", 0), ("overdue", 1), ("escalation", 3))]
        self.conn.executemany("INSERT INTO nudges (request_id, assignment_id, target_id, kind, due_at, state) "
                              "VALUES (?, ?, ?, ?, ?, 'pending')", rows)

    def submit(self, ids: dict[str, int]) -> tuple[int, list[int]]:
        c, now_dt = self.conn, datetime.now(UTC).replace(tzinfo=None)
        now = now_dt.isoformat(" ")
        c.execute("BEGIN IMMEDIATE")
        last = c.execute("INSERT INTO request_counters (type, fiscal_year, last) VALUES ('expense', 2026, 1) "
                         "ON CONFLICT (type, fiscal_year) DO UPDATE SET last = last + 1 RETURNING last").fetchone()[0]
        rid = c.execute("INSERT INTO requests (number, type, fiscal_year, requester_id, payload, status, version, "
                        "round, created_at, updated_at) VALUES (?, 'expense', 2026, ?, ?, 'pending', 1, 1, ?, ?)",
                        (f"EXP-2026-{last:04d}", ids["requester"], json.dumps(PAYLOAD), now, now)).lastrowid
        assignment_ids = []
        for pos, (key, who) in enumerate((("manager", "manager"), ("department_head", "head"),
                                          ("finance", "finance"))):
            sid = c.execute("INSERT INTO steps (request_id, round, position, key, kind, required, cycle, status) "
                            "VALUES (?, 1, ?, ?, 'approval', 0, 1, 'waiting')", (rid, pos, key)).lastrowid
            assignment_ids.append(c.execute(
                "INSERT INTO assignments (request_id, step_id, approver_id, cycle, status) VALUES (?, ?, ?, 1, 'waiting')",
                (rid, sid, ids[who])).lastrowid)
        self._activate(rid, 0, assignment_ids[0], ids["manager"], 1, now_dt)
        self._outbox(rid, "submitted", ids["requester"], 1, now)
        self._audit(rid, ["request.submitted", "step.activated"], now)
        c.execute("COMMIT")
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
        c.execute("BEGIN IMMEDIATE")
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
        c.execute("COMMIT")


def run_lifecycles(n: int, workdir: Path) -> float:
    """Mean seconds per lifecycle over n lifecycles (after an untimed warm-up)."""
    path = workdir / "floor.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    ids = _company(db)
    db.dispose()
    floor = _Floor(path)

    def lifecycle() -> None:
        rid, assignment_ids = floor.submit(ids)
        for position in range(3):
            floor.approve(rid, position, assignment_ids, ids)

    for _ in range(20):
        lifecycle()
    start = time.perf_counter()
    for _ in range(n):
        lifecycle()
    elapsed = time.perf_counter() - start
    floor.conn.close()
    return elapsed / n
