"""The lookups delivery makes for every row about a request (its posted cards, status message and digests) and those
every decision makes for its assignments' reminders go by the request or the assignment, never through the index
that starts with the state (`ix_outbox_state_next`: every message ever sent; `ix_nudges_state_due`: every pending
reminder of the company). With the state in their WHERE, SQLite took that index for an IN list of two assignments,
and PostgreSQL for all of them in a prepared statement first planned while the tables were small (a new database: its
plans are kept until the tables are analysed), walking the whole history for each lookup. Checked
on a company whose history grows after the lookups were first planned: on SQLite by the plans of the statements the
lookups run, on PostgreSQL by what the state indexes returned in the lookups' transaction, on the same connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from config.policy import Policy
from models import messaging
from models.db import Database
from models.messaging import nudges, outbox
from models.schema import upgrade
from tests.conftest import Clock, Org, make_org, own_postgres_database
from workflow import delivery
from workflow.engine import Engine

EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 1_000,
                                            "tax_rate": "10", "category": "travel"}]}
REQUESTS = 20
HISTORY = 3000  # messages sent, and reminders pending, about the other requests once the lookups were planned
PLANNED = 12  # runs before the history grows: psycopg prepares a statement at its 5th, PostgreSQL plans it generic after 5 more
STATE_INDEXES = ("ix_outbox_state_next", "ix_nudges_state_due")
SENT = {"state": "sent", "message_ref": {"channel": "D1", "ts": "1.000100"}}


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


@dataclass
class Company:
    org: Org
    request_id: int  # the request looked at, in a digest
    assignments: list[int]  # its finance step's two open assignments, each with pending reminders
    others: list[tuple[int, int]]  # (request, open assignment) of the other requests


def new_company(db: Database, policy: Policy, clock: Clock) -> Company:
    """REQUESTS expense requests, their messages sent; the first approved once (its finance step has two approvers)
    and shown in a posted digest."""
    org = make_org(db)
    engine = Engine(db, policy, clock=clock)
    outcomes = [engine.submit(org.alice if i % 2 else org.bob, "expense", EXPENSE) for i in range(REQUESTS)]
    watched = outcomes[0].request
    assert watched is not None
    after = engine.decide(outcomes[0].open_assignments[0], org.manager, "approve")
    with db.unit_of_work() as conn:
        conn.execute(outbox.update().values(**SENT, sent_at=clock.now))
        conn.execute(outbox.insert(), {
            "idempotency_key": "digest-1", "recipient_id": org.manager, "kind": "nudge_digest", "request_id": None,
            "payload": {"kind": "nudge_digest"}, "attempts": 1, "next_attempt_at": clock.now,
            "created_at": clock.now, "sent_at": clock.now, **SENT})
        messaging.link_digests(conn, {"digest-1": [watched.id]})
    others = [(o.request.id, o.open_assignments[0]) for o in outcomes[1:] if o.request is not None]
    return Company(org, watched.id, list(after.open_assignments), others)


def add_history(db: Database, company: Company, clock: Clock) -> None:
    """HISTORY messages sent and HISTORY reminders pending about the other requests."""
    others = company.others
    with db.unit_of_work() as conn:
        conn.execute(outbox.insert(), [
            {"idempotency_key": f"history-{i}", "recipient_id": company.org.alice, "kind": "approval_requested",
             "request_id": others[i % len(others)][0], "payload": {"kind": "approval_requested"}, "attempts": 1,
             "next_attempt_at": clock.now, "created_at": clock.now, "sent_at": clock.now, **SENT}
            for i in range(HISTORY)])
        conn.execute(nudges.insert(), [
            {"request_id": rid, "assignment_id": aid, "target_id": company.org.manager, "kind": "before_due",
             "due_at": clock.now, "state": "pending"} for rid, aid in (others[i % len(others)] for i in range(HISTORY))])


def lookups(conn: Connection, company: Company) -> dict[str, Any]:
    """What delivery reads for every row about a request, and what a decision does to its assignments' reminders."""
    return {"digests": [m.id for m in messaging.sent_digests(conn, company.request_id)],
            "cards": delivery.sent_cards(conn, company.request_id),
            "status": delivery.requester_ref(conn, company.request_id),
            "reminders": messaging.pending_kinds(conn, company.assignments),
            "cancelled": messaging.cancel_nudges(conn, company.assignments)}


def walked_on_postgres(conn: Connection, company: Company) -> dict[str, int]:
    """Entries each state index returned while the lookups ran (one transaction, rolled back)."""
    def returned() -> dict[str, int]:
        # the backend's counts not yet reported, which may include earlier transactions': a difference, taken
        # within one transaction (they are reported between transactions only)
        return {name: int(conn.execute(sa.text("SELECT pg_stat_get_xact_tuples_returned(CAST(:n AS regclass))"),
                                       {"n": name}).scalar_one()) for name in STATE_INDEXES}

    before = returned()
    lookups(conn, company)
    after = returned()
    conn.rollback()
    return {name: after[name] - before[name] for name in STATE_INDEXES}


def plans_on_sqlite(conn: Connection, company: Company) -> dict[str, list[str]]:
    """Each statement the lookups ran, with SQLite's plan for it (rolled back)."""
    ran: list[str] = []
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    raw.set_trace_callback(ran.append)  # the statements with their values, as they ran
    try:
        lookups(conn, company)
    finally:
        raw.set_trace_callback(None)
    plans = {sql: [str(step[3]) for step in raw.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()]
             for sql in ran if sql.lstrip().upper().startswith(("SELECT", "UPDATE"))}
    conn.rollback()
    return plans


def test_a_requests_messages_and_an_assignments_reminders_are_looked_up_by_request_and_assignment(
        new_db: Database, policy: Policy, clock: Clock) -> None:
    company = new_company(new_db, policy, clock)
    assert len(company.assignments) == 2  # the finance step: two approvers, an IN list of two
    with new_db.engine.connect() as conn:
        for _ in range(PLANNED):  # planned (and on PostgreSQL prepared) while the tables are small
            lookups(conn, company)
            conn.rollback()
        add_history(new_db, company, clock)

        found = lookups(conn, company)  # what they find: the state is still checked
        conn.rollback()
        assert len(found["digests"]) == 1
        assert {a for a, _, _ in found["cards"]} >= set(company.assignments)
        assert found["status"] == SENT["message_ref"]
        assert set(found["reminders"]) == set(company.assignments)

        if new_db.engine.dialect.name == "postgresql":
            walked = walked_on_postgres(conn, company)
            # with the state in the lookups' WHERE: about 3,000 entries of each state index, for each lookup
            assert walked == {name: 0 for name in STATE_INDEXES}, walked
        else:
            plans = plans_on_sqlite(conn, company)
            assert len(plans) >= 5, plans
            through_state = {sql: steps for sql, steps in plans.items()
                             if any(name in step for step in steps for name in STATE_INDEXES)}
            # with the state in their WHERE: the two assignments' reminders
            assert not through_state, through_state


def test_the_reminders_of_assignments_still_decided_are_cancelled_and_the_others_kept(
        new_db: Database, policy: Policy, clock: Clock) -> None:
    """`cancel_nudges` checks the state beside the assignment (not through the index): pending rows of those
    assignments only are cancelled."""
    company = new_company(new_db, policy, clock)
    add_history(new_db, company, clock)
    with new_db.unit_of_work() as conn:
        conn.execute(nudges.update().where(nudges.c.assignment_id == company.assignments[0],
                                           nudges.c.kind == "escalation").values(state="sent"))
        before = {(r.id, r.assignment_id, r.state) for r in conn.execute(sa.select(nudges))}
        messaging.cancel_nudges(conn, company.assignments)
        after = {r.id: r.state for r in conn.execute(sa.select(nudges))}
    for nudge_id, assignment_id, state in before:
        expected = "cancelled" if assignment_id in company.assignments and state == "pending" else state
        assert after[nudge_id] == expected, (nudge_id, assignment_id, state)
    assert any(s == "sent" for i, a, s in before if a == company.assignments[0])  # the one sent stays sent
