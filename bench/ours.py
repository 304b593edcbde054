"""madoguchi's own engine on the benchmark lifecycle: submit + 3 approvals through the public use cases.

The route is the shipped expense type (manager; department head over JPY 100,000; finance), filed for
JPY 150,000 so all three steps apply. Each use case is one unit of work on the product's default
durability (SQLite WAL, synchronous=FULL), writing what the product writes: request, steps, assignments,
audit events (hash chained), outbox messages and nudge rows.

Two ways to run it:
- `run_lifecycles`: one lifecycle at a time, the use cases called directly (one transaction each);
- `run_concurrent`: C people at once, as the product serves them: C asyncio tasks, each calling its 4 use
  cases one after the other through `bot.writer.on_writer`, exactly as the Slack and Teams edges do. On SQLite
  that is `Database.writer`, one thread that group-commits the use cases waiting together (each in a SAVEPOINT,
  its result handed back only after the COMMIT).

`check_rows` counts what a lifecycle must leave behind; the floor uses it too, so no row can do less unseen.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

from config.policy import load_policy
from config.settings import DEFAULT_WORKFLOWS
from models import people
from models.db import Database, normalize_url
from models.schema import upgrade
from tests.conftest import scratch_database
from workflow.engine import Engine
from workflow.outcomes import Outcome

PAYLOAD = {"purpose": "出張（大阪）", "items": [{
    "date": "2026-06-01", "payee": "JR東海", "amount": 150000, "tax_rate": "10", "category": "travel",
    "invoice_number": "T7010705000725",
}]}


def _company(db: Database) -> dict[str, int]:
    with db.unit_of_work() as conn:
        dept = people.insert_department(conn, code="SALES", name_ja="営業部", name_en="Sales")
        back = people.insert_department(conn, code="BACK", name_ja="経理部", name_en="Finance")

        def person(email: str, manager: int | None, dept_id: int, roles: frozenset[str] = frozenset()) -> int:
            return people.insert_employee(conn, roles=roles, email=email, name_ja=email, name_en=email,
                                          department_id=dept_id, manager_id=manager, hire_date=date(2020, 4, 1),
                                          locale="ja", timezone="Asia/Tokyo", active=True)

        head = person("head@example.jp", None, dept)
        manager = person("manager@example.jp", head, dept)
        requester = person("requester@example.jp", manager, dept)
        finance = person("finance@example.jp", None, back, frozenset({"finance"}))
        conn.execute(people.departments.update().where(people.departments.c.id == dept).values(head_id=head))
    return {"requester": requester, "manager": manager, "head": head, "finance": finance}


WARMUP_LIFECYCLES = 20
APPROVERS = ("manager", "head", "finance")  # in route order
# What one lifecycle leaves behind (the floor writes the same): table -> (condition, rows).
ROWS_PER_LIFECYCLE: dict[str, tuple[str, int]] = {
    "requests": ("status = 'approved'", 1),
    "steps": ("status = 'approved'", 3),
    "assignments": ("status = 'approved'", 3),
    "audit_events": ("1", 8),
    "outbox": ("1", 8),
    "nudges": ("state = 'cancelled'", 6),  # a next reminder and a next action per approver
}


def check_rows(path: Path, lifecycles: int) -> None:
    """Fail unless the SQLite file at *path* holds exactly the rows of *lifecycles* completed lifecycles, and an
    audit chain with no gap (a lost update under concurrency would show as a missing or repeated seq)."""
    conn = sqlite3.connect(path)
    try:
        for table, (condition, per) in ROWS_PER_LIFECYCLE.items():
            total, matching = conn.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {condition}) FROM {table}").fetchone()
            if total != matching or total != per * lifecycles:
                raise RuntimeError(f"{path.name}: {table} has {total} rows ({matching} with {condition}); "
                                   f"expected {per * lifecycles} for {lifecycles} lifecycles")
        events, distinct, top = conn.execute(
            "SELECT count(*), count(DISTINCT seq), max(seq) FROM audit_events").fetchone()
        (head,) = conn.execute("SELECT seq FROM audit_head").fetchone()
        if not events == distinct == top == head:
            raise RuntimeError(f"{path.name}: audit chain broken ({events} events, {distinct} seqs, "
                               f"max {top}, head {head})")
    finally:
        conn.close()


def _submitted(outcome: Outcome) -> Outcome:
    if not outcome.ok or outcome.request is None:
        raise RuntimeError(f"submit failed: {outcome.code} {outcome.message.en}")
    return outcome


def _approved(outcome: Outcome, final: bool) -> Outcome:
    if not outcome.ok:
        raise RuntimeError(f"approve failed: {outcome.code} {outcome.message.en}")
    if final and (outcome.request is None or outcome.request.status != "approved"):
        raise RuntimeError("the lifecycle did not end approved")
    return outcome


def _lifecycle(engine: Engine, ids: dict[str, int]) -> None:
    outcome = _submitted(engine.submit(ids["requester"], "expense", PAYLOAD))
    for who in APPROVERS:
        # each approver's card carries the assignment id the engine opened for them
        (assignment_id,) = outcome.open_assignments
        outcome = _approved(engine.decide(assignment_id, ids[who], "approve"), final=who == APPROVERS[-1])


async def _lifecycle_on_writer(db: Database, engine: Engine, ids: dict[str, int]) -> None:
    """The same lifecycle as one person sees it: each use case a hop to the writer, as the edges make it."""
    from bot.writer import on_writer  # the edges' own hop; imported here so the sequential run needs no bot/

    outcome = _submitted(await on_writer(db, engine.submit, ids["requester"], "expense", PAYLOAD))
    for who in APPROVERS:
        (assignment_id,) = outcome.open_assignments
        outcome = _approved(await on_writer(db, engine.decide, assignment_id, ids[who], "approve"),
                            final=who == APPROVERS[-1])


async def run_people(n: int, concurrency: int, lifecycle: Callable[[], Awaitable[None]]) -> float:
    """Seconds for *concurrency* asyncio tasks ("people") to run *n* lifecycles between them, each person one
    lifecycle after another, so at most *concurrency* are in flight."""
    left = n

    async def person() -> None:
        nonlocal left
        while left > 0:
            left -= 1  # no await between the test and this: the event loop runs one task at a time
            await lifecycle()

    start = time.perf_counter()
    await asyncio.gather(*(person() for _ in range(concurrency)))
    return time.perf_counter() - start


def run_lifecycles(n: int, workdir: Path, database_url: str | None = None) -> float:
    """Mean seconds per lifecycle over n lifecycles (after an untimed warm-up)."""
    if database_url:
        with scratch_database(normalize_url(database_url), "madoguchi_bench_") as url:
            return _measure(n, Database(url))
    seconds = _measure(n, Database(f"sqlite:///{workdir / 'ours.db'}"))
    check_rows(workdir / "ours.db", WARMUP_LIFECYCLES + n)
    return seconds


def run_concurrent(n: int, workdir: Path, concurrency: int) -> float:
    """Wall-clock seconds per lifecycle (1 / throughput) with *concurrency* people at once through the writer,
    after an untimed warm-up at the same concurrency; the rows are checked afterwards."""
    path = workdir / "ours.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    engine = Engine(db, load_policy(DEFAULT_WORKFLOWS))
    ids = _company(db)
    warmup = max(WARMUP_LIFECYCLES, concurrency)

    def lifecycle() -> Awaitable[None]:
        return _lifecycle_on_writer(db, engine, ids)

    async def both() -> float:
        await run_people(warmup, concurrency, lifecycle)
        return await run_people(n, concurrency, lifecycle)

    try:
        elapsed = asyncio.run(both())
    finally:
        db.dispose()
    check_rows(path, warmup + n)
    return elapsed / n


def _measure(n: int, db: Database) -> float:
    upgrade(db.engine)
    engine = Engine(db, load_policy(DEFAULT_WORKFLOWS))
    ids = _company(db)
    for _ in range(WARMUP_LIFECYCLES):
        _lifecycle(engine, ids)
    start = time.perf_counter()
    for _ in range(n):
        _lifecycle(engine, ids)
    elapsed = time.perf_counter() - start
    db.dispose()
    return elapsed / n
