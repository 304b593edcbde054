"""Nudges with a controllable clock, on SQLite and PostgreSQL: reminders before / at / after the due time in
business days and working hours (a weekend, Golden Week, the new-year closure), one digest per person (oldest
first), snooze, back-off, escalation (the manager may act), cancellation on every way an assignment closes,
catch-up after downtime, and concurrent tickers (each nudge sent exactly once)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from config.policy import Policy, Sla
from models import messaging
from models.db import Database
from models.people import get_employee
from tests.conftest import Clock, Org
from tests.integration.test_engine import expense
from workflow.engine import Engine
from workflow.nudges import DIGEST_KIND, Nudger, TickReport, snooze

JST = ZoneInfo("Asia/Tokyo")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST).astimezone(UTC)


@pytest.fixture
def policy(policy: Policy) -> Policy:
    """The shipped policy with expenses due in 2 business days (the shipped default SLA; expense has 3)."""
    spec = policy.types["expense"].model_copy(update={"sla": Sla(business_days=Decimal(2))})
    return policy.model_copy(update={"types": {**policy.types, "expense": spec}})


@pytest.fixture
def engine(db: Database, policy: Policy, clock: Clock) -> Engine:
    return Engine(db, policy, clock=clock)


def file(engine: Engine, who: int, amount: int = 5000) -> tuple[int, int]:
    """An expense filed by `who`: (request id, the manager's assignment id)."""
    outcome = engine.submit(who, "expense", expense(amount))
    assert outcome.ok and outcome.request is not None, outcome.message("en")
    return outcome.request.id, outcome.open_assignments[0]


def tick(db: Database, policy: Policy, at: datetime) -> TickReport:
    return Nudger(db, policy).tick(at)


def digests(db: Database) -> list[messaging.OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        rows = conn.execute(sa.select(messaging.outbox).where(messaging.outbox.c.kind == DIGEST_KIND)
                            .order_by(messaging.outbox.c.id))
        return [messaging.OutboxMessage(**r._mapping) for r in rows]


def items(row: messaging.OutboxMessage) -> list[tuple[int, str]]:
    return [(i["assignment_id"], i["nudge"]) for i in row.payload["items"]]


def nudge_rows(db: Database, request_id: int) -> list[messaging.Nudge]:
    with db.unit_of_work(write=False) as conn:
        return messaging.nudges_for(conn, request_id)


def test_before_at_and_after_due_in_business_days(db: Database, policy: Policy, clock: Clock, org: Org,
                                                  engine: Engine) -> None:
    # filed Tue 2026-06-02 10:00: due Thu 10:00; reminders Wed 10:00 (1 day before), Thu 10:00, Fri 10:00
    request_id, a = file(engine, org.alice)
    assert tick(db, policy, jst(2026, 6, 3, 9, 59)).digests == 0
    assert tick(db, policy, jst(2026, 6, 3, 10, 0)).digests == 1
    assert tick(db, policy, jst(2026, 6, 4, 10, 0)).digests == 1
    assert tick(db, policy, jst(2026, 6, 5, 10, 0)).digests == 1
    sent = digests(db)
    assert [items(d) for d in sent] == [[(a, "before_due")], [(a, "due")], [(a, "overdue")]]
    assert {d.recipient_id for d in sent} == {org.manager}
    # back-off: after the first overdue reminder (every day), the next one is 2 business days later: not on the
    # weekend, not on Monday, but Tuesday 10:00 (with the escalation to the manager's manager)
    assert tick(db, policy, jst(2026, 6, 8, 10, 0)).digests == 0
    report = tick(db, policy, jst(2026, 6, 9, 10, 0))
    assert (report.digests, report.escalated) == (2, 1)
    last = digests(db)[-2:]
    assert {d.recipient_id: items(d) for d in last} == {org.manager: [(a, "overdue")],
                                                        org.sales_head: [(a, "escalation")]}
    pending = [n for n in nudge_rows(db, request_id) if n.state == "pending"]
    assert [(n.kind, n.due_at) for n in pending] == [("overdue", jst(2026, 6, 11, 10, 0))]


def test_rows_written_before_the_plans_were_chains_are_followed_without_doubles(db: Database, policy: Policy,
                                                                               clock: Clock, org: Org,
                                                                               engine: Engine) -> None:
    """A database from before (every reminder and the escalation written when the step started): the same
    digests as above, and no chain is given a second pending row."""
    request_id, a = file(engine, org.alice)
    with db.unit_of_work() as conn:
        conn.execute(sa.delete(messaging.nudges).where(messaging.nudges.c.request_id == request_id))
        conn.execute(messaging.nudges.insert(), [
            {"request_id": request_id, "assignment_id": a, "target_id": org.manager, "kind": kind, "due_at": at,
             "state": "pending"} for kind, at in (("before_due", jst(2026, 6, 3, 10, 0)), ("due", jst(2026, 6, 4, 10, 0)),
                                                  ("overdue", jst(2026, 6, 5, 10, 0)),
                                                  ("escalation", jst(2026, 6, 9, 10, 0)))])
    left = {3: ["due", "overdue", "escalation"], 4: ["overdue", "escalation"], 5: ["escalation", "overdue"]}
    for day in (3, 4, 5):  # the old rows are sent as they were; the back-off follows the last of them
        assert tick(db, policy, jst(2026, 6, day, 10, 0)).digests == 1
        assert [n.kind for n in nudge_rows(db, request_id) if n.state == "pending"] == left[day]
    assert [items(d) for d in digests(db)] == [[(a, "before_due")], [(a, "due")], [(a, "overdue")]]
    report = tick(db, policy, jst(2026, 6, 9, 10, 0))
    assert (report.digests, report.escalated) == (2, 1)
    pending = [n for n in nudge_rows(db, request_id) if n.state == "pending"]
    assert [(n.kind, n.due_at) for n in pending] == [("overdue", jst(2026, 6, 11, 10, 0))]


def test_a_weekend_and_working_hours_make_nudges_wait(db: Database, policy: Policy, clock: Clock, org: Org,
                                                      engine: Engine) -> None:
    clock.now = jst(2026, 6, 5, 15, 0)  # Friday 15:00: due Tuesday 15:00, reminded Monday 15:00
    file(engine, org.alice)
    for day in (6, 7):
        assert tick(db, policy, jst(2026, 6, day, 15, 0)).done == 0
    # the process was down on Monday afternoon; at 23:00 it catches up: nobody is pinged at night, the row waits
    late = tick(db, policy, jst(2026, 6, 8, 23, 0))
    assert (late.digests, late.deferred) == (0, 1)
    assert tick(db, policy, jst(2026, 6, 9, 8, 59)).digests == 0
    assert tick(db, policy, jst(2026, 6, 9, 9, 0)).digests == 1  # Tuesday's working-hours start


def test_golden_week_holds_the_catch_up_until_the_first_working_morning(db: Database, policy: Policy, clock: Clock,
                                                                      org: Org, engine: Engine) -> None:
    clock.now = jst(2026, 4, 28, 10, 0)  # Tue; Apr 29 (Wed) is 昭和の日: due Fri May 1 10:00
    _, a = file(engine, org.alice)
    # down from Friday morning; May 2-6 are the weekend and holidays (May 6: 振替休日)
    for day in (2, 3, 4, 5, 6):
        report = tick(db, policy, jst(2026, 5, day, 11, 0))
        assert report.digests == 0
    assert tick(db, policy, jst(2026, 5, 7, 9, 0)).digests == 1
    assert items(digests(db)[-1]) == [(a, "due")]  # the missed reminder, on the first working morning after


def test_the_new_year_closure_sends_nothing(db: Database, policy: Policy, clock: Clock, org: Org,
                                            engine: Engine) -> None:
    clock.now = jst(2026, 12, 25, 10, 0)  # Fri: 2 business days later is Mon Jan 4 2027 (Dec 29 - Jan 3 closed)
    _, a = file(engine, org.alice)
    assert tick(db, policy, jst(2026, 12, 28, 10, 0)).digests == 1  # the day before the due day
    for day in (29, 30, 31):
        assert tick(db, policy, jst(2026, 12, day, 10, 0)).done == 0
    for day in (1, 2, 3):
        assert tick(db, policy, jst(2027, 1, day, 10, 0)).done == 0
    assert tick(db, policy, jst(2027, 1, 4, 10, 0)).digests == 1
    assert [items(d) for d in digests(db)] == [[(a, "before_due")], [(a, "due")]]


def test_one_digest_per_person_oldest_first(db: Database, policy: Policy, clock: Clock, org: Org,
                                            engine: Engine) -> None:
    _, first = file(engine, org.alice)
    clock.advance(minutes=30)
    _, second = file(engine, org.bob)
    report = tick(db, policy, jst(2026, 6, 3, 11, 0))
    assert (report.digests, report.nudges) == (1, 2)
    assert items(digests(db)[0]) == [(first, "before_due"), (second, "before_due")]


def test_catch_up_after_downtime_is_one_digest_not_a_burst(db: Database, policy: Policy, clock: Clock, org: Org,
                                                          engine: Engine) -> None:
    request_id, a = file(engine, org.alice)
    _, b = file(engine, org.bob)
    # nothing ticked for a week: before_due, due, overdue and the escalation all fell due
    now = jst(2026, 6, 10, 9, 30)
    report = tick(db, policy, now)
    sent = digests(db)
    assert {d.recipient_id: items(d) for d in sent} == {
        org.manager: [(a, "overdue"), (b, "overdue")], org.sales_head: [(a, "escalation"), (b, "escalation")]}
    # one reminder row per assignment covered before_due, due and overdue, and is recorded as what it said
    assert report.nudges == 4 and report.digests == 2
    sent_rows = [n for n in nudge_rows(db, request_id) if n.state == "sent"]
    assert sorted(n.kind for n in sent_rows) == ["escalation", "overdue"]
    # the next reminder is counted from now, not from the missed schedule: no burst on the next tick
    assert tick(db, policy, jst(2026, 6, 10, 9, 31)).done == 0
    pending = [n for n in nudge_rows(db, request_id) if n.state == "pending"]
    assert [n.due_at > now for n in pending] == [True]


def test_snooze_moves_reminders_to_the_next_working_morning(db: Database, policy: Policy, clock: Clock, org: Org,
                                                           engine: Engine) -> None:
    request_id, a = file(engine, org.alice)
    tick(db, policy, jst(2026, 6, 3, 10, 0))
    digest = digests(db)[0]
    with db.unit_of_work(write=False) as conn:
        manager = get_employee(conn, org.manager)
    assert manager is not None
    calendar = engine.calendar
    until = snooze(db, calendar, manager, digest.id, jst(2026, 6, 3, 10, 5))
    assert until == jst(2026, 6, 4, 9, 0)
    assert snooze(db, calendar, manager, digest.id, jst(2026, 6, 3, 10, 6)) == until  # a second click: the same
    assert tick(db, policy, jst(2026, 6, 4, 8, 59)).digests == 0
    report = tick(db, policy, jst(2026, 6, 4, 9, 0))
    assert report.digests == 1 and items(digests(db)[-1]) == [(a, "snoozed")]
    assert tick(db, policy, jst(2026, 6, 4, 10, 0)).digests == 1  # the at-due reminder itself still comes
    # on a Friday, tomorrow means Monday
    tick(db, policy, jst(2026, 6, 5, 10, 0))
    assert snooze(db, calendar, manager, digests(db)[-1].id, jst(2026, 6, 5, 10, 1)) == jst(2026, 6, 8, 9, 0)
    assert [n for n in nudge_rows(db, request_id) if n.state == "pending" and n.kind == "escalation"]


def test_escalation_lets_the_manager_act_for_the_approver(db: Database, policy: Policy, clock: Clock, org: Org,
                                                          engine: Engine) -> None:
    request_id, a = file(engine, org.alice)
    clock.now = jst(2026, 6, 5, 11, 0)
    refused = engine.decide(a, org.sales_head, "approve")
    assert not refused.ok and refused.code == "not_allowed"  # not escalated yet
    report = tick(db, policy, jst(2026, 6, 9, 10, 0))
    assert report.escalated == 1
    clock.now = jst(2026, 6, 9, 10, 5)
    outcome = engine.decide(a, org.sales_head, "approve")
    assert outcome.ok, outcome.message("en")
    with db.unit_of_work(write=False) as conn:
        events = conn.execute(sa.text("SELECT kind, data FROM audit_events WHERE request_id = :r ORDER BY seq"),
                              {"r": request_id}).all()
    kinds = [k for k, _ in events]
    assert "assignment.escalated" in kinds
    approved = next(d for k, d in events if k == "assignment.approved")
    assert f'"acting_for":{org.manager}' in approved
    assert not [n for n in nudge_rows(db, request_id) if n.assignment_id == a and n.state == "pending"]


def _pending_of(db: Database, assignment_id: int) -> list[messaging.Nudge]:
    with db.unit_of_work(write=False) as conn:
        rows = conn.execute(sa.select(messaging.nudges).where(messaging.nudges.c.assignment_id == assignment_id,
                                                              messaging.nudges.c.state == "pending"))
        return [messaging.Nudge(**r._mapping) for r in rows]


@pytest.mark.parametrize("how", ["approve", "reject", "send_back", "withdraw", "reassign"])
def test_closing_an_assignment_cancels_its_nudges(db: Database, policy: Policy, clock: Clock, org: Org,
                                                  engine: Engine, how: str) -> None:
    request_id, a = file(engine, org.alice)
    assert _pending_of(db, a)
    actions: dict[str, Any] = {
        "approve": lambda: engine.decide(a, org.manager, "approve"),
        "reject": lambda: engine.decide(a, org.manager, "reject", "no"),
        "send_back": lambda: engine.decide(a, org.manager, "send_back", "fix it"),
        "withdraw": lambda: engine.withdraw(request_id, org.alice),
        "reassign": lambda: engine.reassign(a, org.admin, org.sales_head),
    }
    assert actions[how]().ok
    assert _pending_of(db, a) == []


def test_claim_and_quorum_cancel_the_others_nudges(db: Database, policy: Policy, clock: Clock, org: Org,
                                                   engine: Engine) -> None:
    outcome = engine.submit(org.alice, "it", {"category": "network", "subject": "VPN", "details": "繋がらない",
                                              "urgency": "high"})
    assert outcome.ok and outcome.request is not None
    first, second = outcome.open_assignments
    claimer = next(a for a in outcome.open_assignments if _pending_of(db, a)[0].target_id == org.it1)
    other = second if claimer == first else first
    assert engine.claim(claimer, org.it1).ok
    assert _pending_of(db, other) == []  # the other holder's reminders end with their card
    assert engine.resolve(claimer, org.it1, "fixed").ok
    assert _pending_of(db, claimer) == []
    # quorum: a parallel step needing any one approval ends the others' reminders
    rules = policy.model_copy(update={"types": {**policy.types, "expense": policy.types["expense"].model_copy(
        update={"route": [policy.types["expense"].route[0].model_copy(
            update={"approver": None, "approvers": ["manager", "department_head"], "require": "any",
                    "when": []})]})}})
    quorum = Engine(db, rules, clock=clock).submit(org.alice, "expense", expense(5000))
    assert quorum.ok
    x, y = quorum.open_assignments
    assert Engine(db, rules, clock=clock).decide(x, org.manager if _pending_of(db, x)[0].target_id == org.manager
                                                 else org.sales_head, "approve").ok
    assert _pending_of(db, y) == []


def test_concurrent_tickers_send_each_nudge_exactly_once(db: Database, policy: Policy, clock: Clock, org: Org,
                                                         engine: Engine) -> None:
    if db.dialect != "postgresql":
        pytest.skip("concurrent tickers are a PostgreSQL matter (SQLite serialises writers)")
    assignments = [file(engine, who)[1] for who in (org.alice, org.bob) * 10]
    with db.unit_of_work() as conn:
        rows = conn.execute(sa.select(messaging.nudges.c.request_id, messaging.nudges.c.assignment_id,
                                      messaging.nudges.c.target_id)).all()
        extra = [{"request_id": r.request_id, "assignment_id": r.assignment_id, "target_id": r.target_id,
                  "kind": "due", "due_at": jst(2026, 6, 3, 9, 0), "state": "pending"} for r in rows] * 110
        conn.execute(messaging.nudges.insert(), extra)
        total = conn.execute(sa.text("SELECT COUNT(*) FROM nudges WHERE due_at <= :t AND state = 'pending'"),
                             {"t": jst(2026, 6, 3, 11, 0)}).scalar_one()
    assert len(assignments) == 20 and total > 4000
    reports: list[TickReport] = []
    barrier = threading.Barrier(3)

    def ticker() -> None:
        barrier.wait()
        reports.append(Nudger(db, policy, batch=200).tick(jst(2026, 6, 3, 11, 0)))

    threads = [threading.Thread(target=ticker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.nudges for r in reports) == total
    with db.unit_of_work(write=False) as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM nudges WHERE state = 'pending' AND due_at <= :t"),
                            {"t": jst(2026, 6, 3, 11, 0)}).scalar_one() == 0


def _plan(db: Database, stmt: Any) -> str:
    with db.unit_of_work() as conn:
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        if db.dialect == "sqlite":
            return "\n".join(str(r[-1]) for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # an empty table: ask whether the index CAN serve
        plan = "\n".join(str(r[0]) for r in conn.execute(sa.text(f"EXPLAIN {sql}")))
        db.rollback(conn)
        return plan


def test_query_plans_use_the_due_index_and_primary_keys(db: Database) -> None:
    due = _plan(db, messaging.due_query(jst(2026, 6, 3, 10, 0), 500))
    assert "ix_nudges_state_due" in due, due
    assert "SCAN nudges" not in due and "Seq Scan" not in due, due
    with db.unit_of_work() as conn:
        close = messaging.close_query(conn, [1, 2, 3], "sent", jst(2026, 6, 3, 10, 0))
    plan = _plan(db, close)
    # the ids are looked up by primary key; `+state` keeps SQLite from walking the state index instead
    assert ("INTEGER PRIMARY KEY" in plan or "pk_nudges" in plan), plan
    assert "ix_nudges_state_due" not in plan, plan
