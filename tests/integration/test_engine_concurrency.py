"""Concurrency: many people (or one impatient person) clicking at the same instant, on SQLite and PostgreSQL.

Threads are released together by a barrier and each calls the engine, whose every use case is its own unit of
work on its own connection. On PostgreSQL they really run in parallel (the request row is locked FOR UPDATE);
on SQLite they serialise on BEGIN IMMEDIATE. Either way a decision applies exactly once, a 合議 step completes
and the route advances exactly once, and numbers stay distinct and sequential.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from config.policy import Policy, parse_policy
from models import audit as audit_rows
from models import messaging, people
from models import requests as rq
from models.db import Database
from models.requests import Assignment
from tests.conftest import Clock, Org
from workflow.audit import verify
from workflow.engine import Engine
from workflow.outcomes import Outcome

T = TypeVar("T")

STAMP = {"document": "業務委託契約書", "counterparty": "株式会社ACME", "seal": "company", "copies": 2,
         "needed_by": "2026-06-10", "file": "https://files.example/contract.pdf"}


def race(n: int, action: Callable[[int], T]) -> list[T]:
    """Run action(0..n-1) in n threads released at the same moment; re-raise the first error."""
    barrier = threading.Barrier(n, timeout=60)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = action(i)
        except BaseException as exc:  # noqa: BLE001  (reported below, with the thread's traceback)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"click-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def engine(db: Database, policy: Policy, clock: Clock) -> Engine:
    return Engine(db, policy, clock=clock)


@pytest.fixture(autouse=True)
def close_idle_connections(db: Database) -> Iterator[None]:
    """A race opens up to 50 connections; give them back to the shared PostgreSQL server afterwards (its pool
    would otherwise keep them for the whole session, and other test runs share the server's 100 slots)."""
    yield
    if db.dialect == "postgresql":
        db.engine.dispose()


def assignments(db: Database, request_id: int) -> list[Assignment]:
    with db.unit_of_work(write=False) as conn:
        return rq.assignments_of(conn, request_id)


def events(db: Database, request_id: int) -> list[audit_rows.AuditEvent]:
    with db.unit_of_work(write=False) as conn:
        return audit_rows.events_for(conn, request_id)


def outbox(db: Database, request_id: int) -> list[messaging.OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        return messaging.outbox_for(conn, request_id)


def assert_chain_intact(db: Database) -> None:
    with db.unit_of_work(write=False) as conn:
        count, breaks = verify(conn)
    assert count > 0 and not breaks, breaks


def assert_no_duplicate_messages(db: Database, request_id: int) -> None:
    """No message twice: not the same text to the same person, nor two cards for one assignment and version."""
    messages = outbox(db, request_id)
    same = Counter((m.kind, m.recipient_id, json.dumps(m.payload, sort_keys=True)) for m in messages)
    assert [k for k, c in same.items() if c > 1] == []
    keys = Counter(m.idempotency_key for m in messages)
    assert [k for k, c in keys.items() if c > 1] == []


def add_people(db: Database, org: Org, count: int, prefix: str) -> list[int]:
    with db.unit_of_work() as conn:
        return [people.insert_employee(
            conn, email=f"{prefix}{i}@example.jp", name_ja=f"代理 {i}", name_en=f"Deputy {i}",
            department_id=org.sales, manager_id=org.manager, hire_date=date(2020, 4, 1), locale="en",
            timezone="Asia/Tokyo", active=True) for i in range(count)]


# ---------------------------------------------------------------- 50 clicks on one step
@pytest.mark.parametrize("who", ["approver_and_49_delegates", "the_approver_50_times"])
def test_fifty_simultaneous_decisions_on_one_step_apply_exactly_one(
        db: Database, org: Org, engine: Engine, clock: Clock, who: str) -> None:
    submitted = engine.submit(org.alice, "stamp", STAMP)
    assert submitted.ok and submitted.request is not None
    request_id = submitted.request.id
    [card] = [a for a in assignments(db, request_id) if a.status == "pending"]
    assert card.approver_id == org.manager
    if who == "approver_and_49_delegates":
        deputies = add_people(db, org, 49, "deputy")
        for d in deputies:
            assert engine.delegate(org.manager, d, clock() - timedelta(hours=1), clock() + timedelta(days=1)).ok
        actors = [org.manager, *deputies]
    else:
        actors = [org.manager] * 50
    events_before = {e.id for e in events(db, request_id)}

    def click(i: int) -> Outcome:
        if i % 2:
            return engine.decide(card.id, actors[i], "reject", "相手先の確認が必要です")
        return engine.decide(card.id, actors[i], "approve")

    outcomes = race(50, click)

    winners = [(i, o) for i, o in enumerate(outcomes) if o.ok]
    assert len(winners) == 1, [(o.code, o.message.en) for o in outcomes if o.ok]
    (i, winner), = winners
    losers = [o for o in outcomes if not o.ok]
    assert {o.code for o in losers} <= {"already_decided", "request_closed"}, Counter(o.code for o in losers)
    decided = "approved" if i % 2 == 0 else "rejected"
    assert winner.code == decided
    # exactly one decision is stored, by the winner
    after = {a.id: a for a in assignments(db, request_id)}
    assert after[card.id].status == decided and after[card.id].acted_by_id == actors[i]
    on_step = [a for a in after.values() if a.step_id == card.step_id]
    assert [a.id for a in on_step if a.acted_by_id is not None] == [card.id]
    new_events = [e for e in events(db, request_id) if e.id not in events_before]
    assert [e.kind for e in new_events if e.kind.startswith("assignment.")] == [f"assignment.{decided}"]
    # one notification to the requester about the decision, and the route moved on (or ended) once
    kinds = Counter((m.kind, m.recipient_id) for m in outbox(db, request_id))
    assert kinds[("step_decided", org.alice)] == 1
    if decided == "approved":
        assert kinds[("approval_requested", org.legal)] == 1
        assert kinds[("request_completed", org.alice)] == 0
    else:
        assert kinds[("request_completed", org.alice)] == 1
        assert kinds[("approval_requested", org.legal)] == 0
    with db.unit_of_work(write=False) as conn:
        request = rq.get_request(conn, request_id)
        steps = rq.steps_of(conn, request_id)
    assert request is not None and request.status == ("pending" if decided == "approved" else "rejected")
    assert [s.status for s in steps] == (["approved", "active", "waiting"] if decided == "approved"
                                         else ["rejected", "cancelled", "cancelled"])
    assert_no_duplicate_messages(db, request_id)
    assert_chain_intact(db)
    # a stale click says who decided
    with db.unit_of_work(write=False) as conn:
        name = people.get_employee(conn, actors[i]).name_en  # type: ignore[union-attr]
    assert all(name in o.message.en for o in losers if o.code == "already_decided")


# ---------------------------------------------------------------- a withdrawal racing the approvals
def test_a_withdrawal_racing_approvals_leaves_one_consistent_story(
        db: Database, org: Org, engine: Engine, clock: Clock) -> None:
    """25 approve clicks (the approver and delegates) and 25 withdraw clicks by the requester at once: one
    withdrawal applies; an approval applies only if it came first; nothing is left open or reminding."""
    submitted = engine.submit(org.alice, "stamp", STAMP)
    assert submitted.ok and submitted.request is not None
    request_id = submitted.request.id
    [card] = [a for a in assignments(db, request_id) if a.status == "pending"]
    deputies = add_people(db, org, 24, "deputy")
    for d in deputies:
        assert engine.delegate(org.manager, d, clock() - timedelta(hours=1), clock() + timedelta(days=1)).ok
    approvers = [org.manager, *deputies]

    def click(i: int) -> Outcome:
        if i % 2:
            return engine.withdraw(request_id, org.alice, "別の方法で対応します")
        return engine.decide(card.id, approvers[i // 2], "approve")

    outcomes = race(50, click)

    withdrawals = [o for i, o in enumerate(outcomes) if i % 2]
    approvals = [o for i, o in enumerate(outcomes) if i % 2 == 0]
    assert sum(o.ok for o in withdrawals) == 1
    assert {o.code for o in withdrawals if not o.ok} <= {"request_closed"}
    assert sum(o.ok for o in approvals) <= 1
    assert {o.code for o in approvals if not o.ok} <= {"already_decided", "request_closed"}
    with db.unit_of_work(write=False) as conn:
        request = rq.get_request(conn, request_id)
        steps = rq.steps_of(conn, request_id)
        reminders = [n for n in messaging.nudges_for(conn, request_id) if n.state == "pending"]
    assert request is not None and request.status == "withdrawn"
    after = {a.id: a for a in assignments(db, request_id)}
    approved_first = any(o.ok for o in approvals)
    assert after[card.id].status == ("approved" if approved_first else "cancelled")
    assert [a for a in after.values() if a.undecided] == []
    assert [s.status for s in steps] == (["approved", "cancelled", "cancelled"] if approved_first
                                         else ["cancelled", "cancelled", "cancelled"])
    assert reminders == []
    kinds = [e.kind for e in events(db, request_id)]
    assert kinds.count("request.withdrawn") == 1
    assert kinds.count("assignment.approved") == int(approved_first)
    assert_no_duplicate_messages(db, request_id)
    assert_chain_intact(db)


# ---------------------------------------------------------------- 合議: three approvers at once
def council_policy(require: str | int) -> Policy:
    return parse_policy({
        "company": {"timezone": "Asia/Tokyo", "fiscal_year_start_month": 4},
        "types": {"council": {
            "prefix": "CNL", "title": {"ja": "稟議", "en": "Council approval"}, "area": "general_affairs",
            "fields": [{"id": "subject", "type": "text", "label": {"ja": "件名", "en": "Subject"}}],
            "route": [
                {"id": "board", "approvers": ["person:fin1@example.jp", "person:legal@example.jp",
                                              "person:hr@example.jp"], "require": require},
                {"id": "seal", "approver": "person:seal@example.jp"},
            ],
        }},
    }, "council test policy")


@pytest.mark.parametrize(("require", "approvals"), [("all", 3), (2, 2), ("any", 1)])
def test_a_council_step_completes_and_the_route_advances_exactly_once(
        db: Database, org: Org, clock: Clock, require: str | int, approvals: int) -> None:
    engine = Engine(db, council_policy(require), clock=clock)
    board = [org.finance1, org.legal, org.hr]
    for round_ in range(3):  # a few races, each on a fresh request
        submitted = engine.submit(org.alice, "council", {"subject": f"新規取引 {round_}"})
        assert submitted.ok and submitted.request is not None
        request_id = submitted.request.id
        cards = {a.approver_id: a for a in assignments(db, request_id) if a.status == "pending"}
        assert sorted(cards) == sorted(board)

        clicks = [(cards[person].id, person) for person in board]
        outcomes = race(3, lambda i, clicks=clicks: engine.decide(*clicks[i], "approve"))

        assert sum(o.ok for o in outcomes) == approvals, [(o.code, o.message.en) for o in outcomes]
        assert {o.code for o in outcomes if not o.ok} <= {"already_decided"}
        with db.unit_of_work(write=False) as conn:
            steps = {s.key: s for s in rq.steps_of(conn, request_id)}
            request = rq.get_request(conn, request_id)
        assert request is not None and request.status == "pending"
        assert steps["board"].status == "approved" and steps["board"].completed_at is not None
        assert steps["seal"].status == "active"
        after = assignments(db, request_id)
        on_board = [a for a in after if a.step_id == steps["board"].id]
        assert sum(a.status == "approved" for a in on_board) == approvals
        assert sum(a.status == "cancelled" for a in on_board) == 3 - approvals
        on_seal = [a for a in after if a.step_id == steps["seal"].id]
        assert [(a.approver_id, a.status) for a in on_seal] == [(org.seal_keeper, "pending")]
        # the next step was activated once: one audit event, one card, one set of reminders
        activated = [json.loads(e.data)["step"] for e in events(db, request_id) if e.kind == "step.activated"]
        assert activated == ["board", "seal"]
        cards_sent = [m for m in outbox(db, request_id) if m.kind == "approval_requested"
                      and m.recipient_id == org.seal_keeper]
        assert len(cards_sent) == 1 and cards_sent[0].payload["assignment_id"] == on_seal[0].id
        with db.unit_of_work(write=False) as conn:
            reminders = [n for n in messaging.nudges_for(conn, request_id) if n.assignment_id == on_seal[0].id]
        assert reminders and not [k for k, c in Counter(n.kind for n in reminders).items() if c > 1]
        completed = [e for e in events(db, request_id) if e.kind == "request.completed"]
        assert completed == []
        assert_no_duplicate_messages(db, request_id)
    assert_chain_intact(db)


# ---------------------------------------------------------------- numbering
def _numbers(db: Database, type_key: str) -> list[str]:
    with db.unit_of_work(write=False) as conn:
        return list(conn.execute(sa.select(rq.requests.c.number).where(rq.requests.c.type == type_key)
                                 .order_by(rq.requests.c.id)).scalars())


@pytest.mark.parametrize("history", ["busy_database", "brand_new_database"])
def test_twenty_concurrent_submits_get_distinct_sequential_numbers(
        db: Database, org: Org, engine: Engine, history: str) -> None:
    if history == "busy_database":  # the audit chain and another type's counter already exist
        assert engine.submit(org.bob, "it", {"category": "device", "subject": "PC", "details": "起動しない",
                                             "urgency": "low"}).ok
    requesters = [org.alice, org.bob, org.manager, org.hr]

    outcomes = race(20, lambda i: engine.submit(requesters[i % 4], "stamp", {**STAMP, "copies": i + 1}))

    assert all(o.ok for o in outcomes), [(o.code, o.message.en) for o in outcomes if not o.ok]
    numbers = [o.request.number for o in outcomes if o.request is not None]
    assert sorted(numbers) == [f"STP-2026-{n:04d}" for n in range(1, 21)]
    assert _numbers(db, "stamp") == sorted(numbers)  # assigned in commit order
    with db.unit_of_work(write=False) as conn:
        last = conn.execute(sa.select(rq.request_counters.c.last)
                            .where(rq.request_counters.c.type == "stamp")).scalar_one()
    assert last == 20
    assert_chain_intact(db)


# ---------------------------------------------------------------- a new install: the very first audit events
IT = {"category": "device", "subject": "PCが起動しない", "details": "電源が入りません", "urgency": "high"}
EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 14_520,
                                          "tax_rate": "10", "category": "travel"}]}
LEAVE = {"unit": "full", "period": {"start": "2026-06-10", "end": "2026-06-10"}}


@pytest.mark.parametrize("head", ["as_migrated", "missing"])
@pytest.mark.parametrize("first", ["twenty_delegations", "four_submits_of_different_types"])
def test_the_first_audited_writes_of_a_new_install_do_not_collide(
        db: Database, org: Org, engine: Engine, clock: Clock, first: str, head: str) -> None:
    """Nothing audited yet (a fresh install) and several people act at once. Each use case appends to the one
    audit chain; none may fail for being among the first, whether the chain's head row was made by the
    migration or is missing (a database made by metadata.create_all, or before the head was seeded)."""
    with db.unit_of_work() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_rows.audit_events)).scalar_one() == 0
        if head == "missing":
            conn.execute(audit_rows.audit_head.delete())
    if first == "twenty_delegations":
        deputies = add_people(db, org, 20, "deputy")
        outcomes = race(20, lambda i: engine.delegate(org.manager, deputies[i], clock(), clock() + timedelta(days=1)))
    else:
        filings = [(org.alice, "stamp", STAMP), (org.bob, "it", IT), (org.manager, "expense", EXPENSE),
                   (org.hr, "leave", LEAVE)]
        outcomes = race(4, lambda i: engine.submit(*filings[i]))
    assert all(o.ok for o in outcomes), [(o.code, o.message.en) for o in outcomes if not o.ok]
    assert_chain_intact(db)
