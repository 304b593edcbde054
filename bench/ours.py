"""madoguchi's own engine on the benchmark lifecycle: submit + 3 approvals through the public use cases.

The route is the shipped expense type (manager; department head over JPY 100,000; finance), filed for
JPY 150,000 so all three steps apply. Each use case is one unit of work on the product's default
durability (SQLite WAL, synchronous=FULL), writing what the product writes: request, steps, assignments,
audit events (hash chained), outbox messages and nudge rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from config.policy import load_policy
from config.settings import DEFAULT_WORKFLOWS
from models import people
from models.db import Database, normalize_url
from models.schema import upgrade
from workflow.engine import Engine

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


@contextmanager
def _own_postgres_database(url: str) -> Iterator[str]:
    """A database of the bench's own on the server (created, then dropped), so nothing else is touched."""
    name = f"madoguchi_bench_{os.getpid()}"
    admin = sa.create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(normalize_url(url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _lifecycle(engine: Engine, ids: dict[str, int]) -> None:
    submitted = engine.submit(ids["requester"], "expense", PAYLOAD)
    if not submitted.ok or submitted.request is None:
        raise RuntimeError(f"submit failed: {submitted.code} {submitted.message.en}")
    # each approver's card carries the assignment id the engine opened for them
    outcome = submitted
    for who in ("manager", "head", "finance"):
        (assignment_id,) = outcome.open_assignments
        outcome = engine.decide(assignment_id, ids[who], "approve")
        if not outcome.ok:
            raise RuntimeError(f"approve failed: {outcome.code} {outcome.message.en}")
    if outcome.request is None or outcome.request.status != "approved":
        raise RuntimeError("the lifecycle did not end approved")


def run_lifecycles(n: int, workdir: Path, database_url: str | None = None) -> float:
    """Mean seconds per lifecycle over n lifecycles (after an untimed warm-up)."""
    if database_url:
        with _own_postgres_database(database_url) as url:
            return _measure(n, Database(url))
    return _measure(n, Database(f"sqlite:///{workdir / 'ours.db'}"))


def _measure(n: int, db: Database) -> float:
    upgrade(db.engine)
    engine = Engine(db, load_policy(DEFAULT_WORKFLOWS))
    ids = _company(db)
    for _ in range(20):
        _lifecycle(engine, ids)
    start = time.perf_counter()
    for _ in range(n):
        _lifecycle(engine, ids)
    elapsed = time.perf_counter() - start
    db.dispose()
    return elapsed / n
