"""Three real `madoguchi tick --at ...` processes at once against one PostgreSQL database holding 10,000 due nudges
(issue 8): each nudge is sent exactly once, and every approver's digests together name each of their items once.

The nudges are seeded with SQLAlchemy Core in bulk (one request, step and assignment per nudge, so a digest item
names exactly one nudge: no item may appear in two digests). SQLite is left out: it serialises writers, so
concurrent tickers are a PostgreSQL matter (tests/integration/test_nudges.py covers the SQLite tick)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from config.settings import DEFAULT_WORKFLOWS
from models import messaging
from models import requests as rq
from models.db import Database
from tests.conftest import Org
from workflow.nudges import DIGEST_KIND

JST = ZoneInfo("Asia/Tokyo")
NUDGES = 10_000
PROCESSES = 3
AT = datetime(2026, 6, 3, 11, 0, tzinfo=JST)  # Wednesday 11:00 JST: a working morning for everyone
CREATED = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)


def approvers(org: Org) -> list[int]:
    return [org.manager, org.sales_head, org.ceo, org.finance1, org.finance2, org.legal, org.seal_keeper, org.it1,
            org.it2, org.hr, org.admin]


def seed(db: Database, org: Org, n: int) -> dict[int, int]:
    """n pending expense requests, each with one active step, one pending assignment and one due nudge (due
    between 08:00 and 09:00 JST that day); returns assignment id -> approver id. Ids are given explicitly (the
    tables were truncated with RESTART IDENTITY) and the sequences moved past them."""
    who = approvers(org)
    first_due = AT - timedelta(hours=3)
    owner = {i: who[i % len(who)] for i in range(1, n + 1)}
    requests = [{"id": i, "number": f"EXP-2026-T{i:05d}", "type": "expense", "fiscal_year": 2026,
                 "requester_id": org.alice, "payload": {"purpose": f"seed {i}"}, "warnings": None,
                 "status": "pending", "version": 1, "round": 1, "created_at": CREATED + timedelta(seconds=i),
                 "updated_at": CREATED, "decided_at": None} for i in owner]
    steps = [{"id": i, "request_id": i, "round": 1, "position": 0, "key": "manager", "kind": "approval",
              "required": 0, "cycle": 1, "status": "active", "activated_at": CREATED,
              "due_at": first_due, "completed_at": None} for i in owner]
    assignments = [{"id": i, "request_id": i, "step_id": i, "approver_id": a, "cycle": 1, "status": "pending",
                    "acted_by_id": None, "comment": None, "decided_at": None} for i, a in owner.items()]
    nudges = [{"id": i, "request_id": i, "assignment_id": i, "target_id": a, "kind": "due",
               "due_at": first_due + timedelta(seconds=(i * 7919) % 3600), "state": "pending"}
              for i, a in owner.items()]
    with db.unit_of_work() as conn:
        for table, rows in ((rq.requests, requests), (rq.steps, steps), (rq.assignments, assignments),
                            (messaging.nudges, nudges)):
            conn.execute(table.insert(), rows)
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), :n)"), {"n": n})
    return owner


def run_ticks(db: Database, cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
           "MADOGUCHI_WORKFLOWS": str(DEFAULT_WORKFLOWS), "COLUMNS": "200"}
    env.pop("MADOGUCHI_TIMEZONE", None)
    script = Path(sys.executable).parent / "madoguchi"  # the installed console script, as an operator runs it
    program = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    command = [*program, "tick", "--at", AT.isoformat()]
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    started = [subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(PROCESSES)]
    done = []
    for process in started:
        try:
            out, err = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            for p in started:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


def test_three_tick_processes_send_each_of_10000_nudges_exactly_once(db: Database, org: Org,
                                                                     tmp_path: Path) -> None:
    if db.dialect != "postgresql":
        pytest.skip("processes ticking at once are a PostgreSQL matter (SQLite serialises writers)")
    started = time.perf_counter()
    owner = seed(db, org, NUDGES)
    seeded = time.perf_counter() - started

    results = run_ticks(db, tmp_path)
    ticked = time.perf_counter() - started - seeded
    for r in results:
        assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    said = [re.search(r"nudges (-?\d+)", r.stdout) for r in results]
    assert all(said), [r.stdout for r in results]
    split = [int(m[1]) for m in said if m]
    assert sum(split) == NUDGES, split  # what the processes say they sent adds up, no more

    with db.unit_of_work(write=False) as conn:
        states: dict[str, int] = {r[0]: r[1] for r in conn.execute(
            sa.select(messaging.nudges.c.state, sa.func.count()).group_by(messaging.nudges.c.state))}
        sent_at = set(conn.execute(sa.select(messaging.nudges.c.sent_at)
                                   .where(messaging.nudges.c.state == "sent").distinct()).scalars())
        following = Counter((row.assignment_id, row.kind, row.due_at > AT) for row in conn.execute(
            sa.select(messaging.nudges).where(messaging.nudges.c.state == "pending")))
        digests = list(conn.execute(sa.select(messaging.outbox).where(messaging.outbox.c.kind == DIGEST_KIND)))
    # nothing left due, nothing cancelled; each assignment's chain goes on with exactly one next reminder, the
    # first overdue one, later (workflow/nudge_plan.py)
    assert states == {"sent": NUDGES, "pending": NUDGES}
    assert set(following) == {(i, "overdue", True) for i in owner} and set(following.values()) == {1}
    assert sent_at == {AT}

    # every digest item is one assignment (= one nudge); across all digests each appears once, to its approver
    delivered: Counter[tuple[int, int]] = Counter()
    for row in digests:
        assert row.state == "pending" and row.payload["kind"] == DIGEST_KIND
        for item in row.payload["items"]:
            assert item["nudge"] == "due"
            delivered[(row.recipient_id, item["assignment_id"])] += 1
    twice = [k for k, c in delivered.items() if c > 1]
    assert twice == [], f"{len(twice)} nudges in two digests, e.g. {twice[:5]}"
    assert set(delivered) == {(a, i) for i, a in owner.items()}
    per_person = Counter(row.recipient_id for row in digests)
    assert set(per_person) == set(approvers(org))
    keys = [row.idempotency_key for row in digests]
    assert len(keys) == len(set(keys))
    print(f"\nseeded {NUDGES} due nudges in {seeded:.1f} s; {PROCESSES} tick processes took {ticked:.1f} s "
          f"(nudges per process: {split}); {len(digests)} digests for {len(per_person)} approvers")
