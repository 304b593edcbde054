"""Which due outbox rows a delivery claim takes first (`workflow.delivery.claim_due`, the outbox's `priority`), on
SQLite and PostgreSQL: news about what a person just did (their card turning to 承認済み, the requester's status,
a broadcast DM after 確認しました) before new messages for others, however many of those were due before it."""

from __future__ import annotations

from datetime import timedelta

from config.policy import Policy
from models import messaging
from models.db import Database
from tests.conftest import Clock, Org
from workflow import broadcasts, delivery
from workflow.audiences import Audience
from workflow.engine import Engine

EXPENSE = {"purpose": "出張", "items": [
    {"date": "2026-06-01", "payee": "JR東海", "amount": "14170", "tax_rate": "10", "category": "travel"}]}


def _enqueue(db: Database, org: Org, clock: Clock, kind: str, n: int, first: int = 0) -> None:
    with db.unit_of_work() as conn:
        messaging.enqueue(conn, [
            {"idempotency_key": f"{kind}:{first + i}", "recipient_id": org.alice, "kind": kind, "request_id": None,
             "payload": {"i": first + i}, "state": "pending", "attempts": 0, "next_attempt_at": clock.now,
             "created_at": clock.now, "priority": delivery.priority_of(kind)} for i in range(n)])


def _claim(db: Database, clock: Clock, limit: int) -> list[messaging.OutboxMessage]:
    with db.unit_of_work() as conn:
        return delivery.claim_due(conn, clock.now, limit)


def test_news_a_person_looks_at_is_claimed_before_rows_due_earlier(db: Database, org: Org, clock: Clock) -> None:
    _enqueue(db, org, clock, "fyi", 5)  # a backlog, due first
    clock.advance(seconds=30)
    _enqueue(db, org, clock, "card_update", 2, first=100)
    claimed = _claim(db, clock, 3)
    assert [(m.kind, m.priority) for m in claimed] == [("card_update", 0), ("card_update", 0), ("fyi", 1)]
    assert claimed[2].payload["i"] == 0  # then the backlog, oldest first
    rest = _claim(db, clock, 10)
    assert [m.payload["i"] for m in rest] == [1, 2, 3, 4]


def test_a_row_not_yet_due_waits_whatever_its_priority(db: Database, org: Org, clock: Clock) -> None:
    _enqueue(db, org, clock, "fyi", 1)
    with db.unit_of_work() as conn:  # a failed send of news, due again in a minute
        messaging.enqueue(conn, [{"idempotency_key": "later", "recipient_id": org.alice, "kind": "step_decided",
                                  "request_id": None, "payload": {}, "state": "pending", "attempts": 1,
                                  "next_attempt_at": clock.now + timedelta(minutes=1), "created_at": clock.now,
                                  "priority": delivery.AT_ONCE}])
    assert [m.kind for m in _claim(db, clock, 10)] == ["fyi"]
    clock.advance(minutes=1)
    assert [m.kind for m in _claim(db, clock, 10)] == ["step_decided"]


def test_a_row_that_does_not_say_goes_in_turn(db: Database, org: Org, clock: Clock) -> None:
    with db.unit_of_work() as conn:  # as the tick and the 年5日 campaign enqueue theirs
        messaging.enqueue(conn, [{"idempotency_key": "digest", "recipient_id": org.alice, "kind": "nudge_digest",
                                  "request_id": None, "payload": {}, "state": "pending", "attempts": 0,
                                  "next_attempt_at": clock.now, "created_at": clock.now}])
    [row] = _claim(db, clock, 1)
    assert row.priority == delivery.IN_TURN


def test_a_decision_s_news_goes_before_the_next_approvers_new_cards(db: Database, org: Org, policy: Policy,
                                                                      clock: Clock) -> None:
    engine = Engine(db, policy, clock=clock)
    out = engine.submit(org.alice, "expense", EXPENSE)
    assert out.ok and out.request is not None
    _claim(db, clock, 100)  # the submission's messages are out of the way
    decided = engine.decide(out.open_assignments[0], org.manager, "approve")
    assert decided.ok
    claimed = _claim(db, clock, 100)
    kinds = [m.kind for m in claimed]
    assert kinds[0] == "step_decided" and set(kinds[1:]) == {"approval_requested"}, kinds
    assert [m.priority for m in claimed] == [delivery.AT_ONCE] + [delivery.IN_TURN] * (len(kinds) - 1)


def test_a_broadcast_s_dms_go_in_turn_and_a_copy_updated_after_its_ack_at_once(
        db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    audience = Audience("people", ("alice@example.jp", "bob@example.jp"))
    created = broadcasts.create(db, policy, broadcasts.Draft(org.hr, audience, message_ja="健康診断の予約をしてください",
                                                            message_en="Please book your health check",
                                                            ack_required=True), clock.now)
    assert created.ok and created.broadcast_id is not None
    with db.unit_of_work() as conn:  # posted, as delivery records it
        for i, row in enumerate(delivery.claim_due(conn, clock.now, 100)):
            assert (row.kind, row.priority) == (broadcasts.KIND, delivery.IN_TURN)
            delivery.mark_sent(conn, row.id, {"channel": f"D{row.recipient_id}", "ts": f"{i}.0"}, "slack", clock.now)
    _enqueue(db, org, clock, "fyi", 3)  # others' news, due before the click below
    with db.unit_of_work(write=False) as conn:
        report = broadcasts.report(conn, created.broadcast_id)
    assert report is not None
    alice = next(r for r, _ in report.recipients if r.employee_id == org.alice)
    clock.advance(seconds=1)
    assert broadcasts.acknowledge(db, alice.id, org.alice, clock.now).ok
    [first] = _claim(db, clock, 1)
    assert (first.kind, first.priority) == (broadcasts.UPDATE_KIND, delivery.AT_ONCE)
