"""The lookups delivery and every decision make by request or by assignment go through the index for them, not
through the index that starts with the state (migration 0008): with only single-column indexes, SQLite and
PostgreSQL without statistics (a new database) walked every message ever sent, or every pending reminder of the
company, for each of them. Checked on a company with many requests, all their messages sent: on SQLite by the
query plans of the statements the lookups run, on PostgreSQL by what the state indexes returned in the lookups'
transaction. Both on a database as new as a first deployment's (PostgreSQL: one of the test's own, never analysed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from config.policy import Policy
from models import messaging
from models.db import Database
from models.messaging import nudges, outbox
from models.schema import upgrade
from tests.conftest import Clock, make_org, own_postgres_database
from workflow import delivery
from workflow.engine import Engine

EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 1_000,
                                            "tax_rate": "10", "category": "travel"}]}
REQUESTS = 20
HISTORY = 3000
STATE_INDEXES = ("ix_outbox_state_next", "ix_nudges_state_due")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database just migrated (PostgreSQL: created for this test, so no table has statistics yet)."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'new.db'}")
        upgrade(database.engine)
        yield database
        database.dispose()
        return
    with own_postgres_database("madoguchi_new") as database:
        yield database


def busy_company(db: Database, policy: Policy, clock: Clock) -> tuple[int, list[int]]:
    """A company that has used the product for a while: REQUESTS requests, HISTORY messages sent about them and
    HISTORY reminders pending for them; one request, in a digest, whose finance step has two approvers. Returns that
    request and its two open assignments."""
    org = make_org(db)
    engine = Engine(db, policy, clock=clock)
    outcomes = [engine.submit(org.alice if i % 2 else org.bob, "expense", EXPENSE) for i in range(REQUESTS)]
    watched = outcomes[0]
    assert watched.request is not None
    after = engine.decide(watched.open_assignments[0], org.manager, "approve")
    others = [(o.request.id, o.open_assignments[0]) for o in outcomes[1:] if o.request is not None]
    sent = {"state": "sent", "message_ref": {"channel": "D1", "ts": "1.000100"}, "sent_at": clock.now}
    with db.unit_of_work() as conn:
        conn.execute(outbox.update().values(**sent))
        conn.execute(outbox.insert(), [
            {"idempotency_key": f"history-{i}", "recipient_id": org.alice, "kind": "approval_requested",
             "request_id": others[i % len(others)][0], "payload": {"kind": "approval_requested"}, "attempts": 1,
             "next_attempt_at": clock.now, "created_at": clock.now, **sent} for i in range(HISTORY)])
        conn.execute(nudges.insert(), [
            {"request_id": rid, "assignment_id": aid, "target_id": org.manager, "kind": "before_due",
             "due_at": clock.now, "state": "pending"} for rid, aid in (others[i % len(others)] for i in range(HISTORY))])
        conn.execute(outbox.insert(), {
            "idempotency_key": "digest-1", "recipient_id": org.manager, "kind": "nudge_digest", "request_id": None,
            "payload": {"kind": "nudge_digest"}, "attempts": 1, "next_attempt_at": clock.now,
            "created_at": clock.now, **sent})
        messaging.link_digests(conn, {"digest-1": [watched.request.id]})
    return watched.request.id, list(after.open_assignments)


def lookups(conn: Connection, request_id: int, assignments: list[int]) -> dict[str, object]:
    """What delivery reads for every row about a request, and what a decision does to its assignments' reminders."""
    return {"digests": [m.id for m in messaging.sent_digests(conn, request_id)],
            "cards": delivery.sent_cards(conn, request_id),
            "status": delivery.requester_ref(conn, request_id),
            "reminders": messaging.pending_kinds(conn, assignments),
            "cancelled": messaging.cancel_nudges(conn, assignments)}


def walked_on_postgres(db: Database, run: Callable[[Connection], object]) -> dict[str, int]:
    """Entries each state index returned while `run` ran (in the same transaction; rolled back)."""
    def returned(conn: Connection) -> dict[str, int]:
        # the backend's counts not yet reported, which may include earlier transactions': a difference, taken
        # within one transaction (they are reported between transactions only)
        return {name: int(conn.execute(sa.text("SELECT pg_stat_get_xact_tuples_returned(CAST(:n AS regclass))"),
                                       {"n": name}).scalar_one()) for name in STATE_INDEXES}

    with db.engine.connect() as conn:
        before = returned(conn)
        run(conn)
        after = returned(conn)
        conn.rollback()
    return {name: after[name] - before[name] for name in STATE_INDEXES}


def plans_on_sqlite(db: Database, run: Callable[[Connection], object]) -> dict[str, list[str]]:
    """Each statement `run` ran, with SQLite's plan for it (rolled back)."""
    ran: list[str] = []
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.set_trace_callback(ran.append)  # the statements with their values, as they ran
        try:
            run(conn)
        finally:
            raw.set_trace_callback(None)
        plans = {sql: [str(step[3]) for step in raw.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()]
                 for sql in ran if sql.lstrip().upper().startswith(("SELECT", "UPDATE"))}
        conn.rollback()
    return plans


def test_a_requests_messages_and_an_assignments_reminders_are_found_by_their_own_index(
        new_db: Database, policy: Policy, clock: Clock) -> None:
    request_id, assignments = busy_company(new_db, policy, clock)
    assert len(assignments) == 2  # the finance step: two approvers, an IN list of two

    def run(conn: Connection) -> dict[str, object]:
        return lookups(conn, request_id, assignments)

    # the lookups find what they should (the state is still part of each)
    with new_db.engine.connect() as conn:
        found = run(conn)
        conn.rollback()
    assert len(found["digests"]) == 1  # type: ignore[arg-type]
    assert {a for a, _, _ in found["cards"]} >= set(assignments)  # type: ignore[attr-defined]
    assert found["status"] == {"channel": "D1", "ts": "1.000100"}
    assert set(found["reminders"]) == set(assignments)  # type: ignore[arg-type]

    if new_db.engine.dialect.name == "postgresql":
        walked = walked_on_postgres(new_db, run)
        # before migration 0008: ix_outbox_state_next returned every sent message (hundreds) for each lookup
        assert walked == {name: 0 for name in STATE_INDEXES}, walked
    else:
        plans = plans_on_sqlite(new_db, run)
        assert len(plans) >= 5, plans
        through_state = {sql: steps for sql, steps in plans.items()
                         if any(name in step for step in steps for name in STATE_INDEXES)}
        # before migration 0008: sent_digests walked ix_outbox_state_next, and the reminders of two assignments
        # ix_nudges_state_due
        assert not through_state, through_state
