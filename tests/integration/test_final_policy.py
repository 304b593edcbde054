"""The final policy per request type (workflows.yaml `nudges.final`), with a controllable clock across business
days, on SQLite and PostgreSQL: `stay` keeps waiting, `return_to_requester` sends the request back as a system
action (audit, note in the requester's language, cards, nudges cancelled), `auto_approve_inform` never approves
anything, and a decision racing the final action applies once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.slack.blockkit import render_message
from config.policy import NudgePolicy, Policy, Sla
from handlers.notifications import message_for
from models import audit as audit_rows
from models import messaging
from models import requests as rq
from models.db import Database
from models.people import get_employee
from tests.conftest import Clock, Org
from tests.integration.test_engine import expense
from tests.integration.test_engine_concurrency import race
from tests.unit.test_blockkit import valid_message
from workflow.audit import verify
from workflow.engine import Engine
from workflow.nudge_plan import FINAL
from workflow.nudges import Nudger, TickReport, snooze

JST = ZoneInfo("Asia/Tokyo")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST).astimezone(UTC)


# Filed Tue 2026-06-02 10:00 with a 2-business-day SLA: due Thu 06-04 10:00; escalation 3 business days later
# (Tue 06-09, over the weekend); the final deadline 5 business days after the due time: Thu 06-11 10:00.
FINAL_AT = jst(2026, 6, 11, 10, 0)


def with_final(policy: Policy, final: str) -> Policy:
    """The shipped policy, expenses due in 2 business days, with the given final policy (not re-validated, so
    even a refused value can be run)."""
    nudges = NudgePolicy.model_construct(**{**policy.defaults.nudges.model_dump(), "final": final})
    spec = policy.types["expense"].model_copy(update={"sla": Sla(business_days=Decimal(2)), "nudges": nudges})
    return policy.model_copy(update={"types": {**policy.types, "expense": spec}})


def file(engine: Engine, who: int) -> tuple[int, int]:
    outcome = engine.submit(who, "expense", expense(5000))
    assert outcome.ok and outcome.request is not None, outcome.message("en")
    return outcome.request.id, outcome.open_assignments[0]


def tick(db: Database, policy: Policy, at: datetime) -> TickReport:
    return Nudger(db, policy).tick(at)


def request_of(db: Database, request_id: int) -> rq.Request:
    with db.unit_of_work(write=False) as conn:
        found = rq.get_request(conn, request_id)
    assert found is not None
    return found


def nudges_of(db: Database, request_id: int) -> list[messaging.Nudge]:
    with db.unit_of_work(write=False) as conn:
        return messaging.nudges_for(conn, request_id)


def outbox_of(db: Database, request_id: int) -> list[messaging.OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        return messaging.outbox_for(conn, request_id)


def events_of(db: Database, request_id: int) -> list[audit_rows.AuditEvent]:
    with db.unit_of_work(write=False) as conn:
        return audit_rows.events_for(conn, request_id)


def trail_intact(db: Database) -> None:
    with db.unit_of_work(write=False) as conn:
        count, breaks = verify(conn)
    assert count > 0 and breaks == []


def test_stay_keeps_the_request_pending_with_its_reminders(db: Database, policy: Policy, clock: Clock,
                                                            org: Org) -> None:
    staying = with_final(policy, "stay")
    request_id, _ = file(Engine(db, staying, clock=clock), org.alice)
    assert FINAL not in {n.kind for n in nudges_of(db, request_id)}  # stay needs no final row
    for day in (4, 5, 8, 9, 10, 11, 12, 15):
        assert tick(db, staying, jst(2026, 6, day, 10, 0)).returned == 0
    assert request_of(db, request_id).status == "pending"
    assert [n.kind for n in nudges_of(db, request_id) if n.state == "pending"] == ["overdue"]


def test_return_to_requester_at_the_final_deadline(db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    returning = with_final(policy, "return_to_requester")
    engine = Engine(db, returning, clock=clock)
    request_id, a = file(engine, org.alice)
    # one row per chain: the escalation is the next action; the final deadline follows it once it is taken
    actions = [(n.kind, n.state) for n in nudges_of(db, request_id) if n.kind in ("escalation", FINAL)]
    assert actions == [("escalation", "pending")]
    before = len(outbox_of(db, request_id))
    # the weekend, the escalation (Tue) and the day before pass: still pending
    for moment in (jst(2026, 6, 6, 10, 0), jst(2026, 6, 9, 10, 0), jst(2026, 6, 10, 10, 0), jst(2026, 6, 11, 9, 59)):
        assert tick(db, returning, moment).returned == 0
    final = [n for n in nudges_of(db, request_id) if n.kind == FINAL]
    assert [(n.due_at, n.state) for n in final] == [(FINAL_AT, "pending")]
    assert request_of(db, request_id).status == "pending"
    report = tick(db, returning, FINAL_AT)
    assert report.returned == 1
    request = request_of(db, request_id)
    assert request.status == "sent_back" and request.decided_at is None
    with db.unit_of_work(write=False) as conn:
        assignment = next(x for x in rq.assignments_of(conn, request_id) if x.id == a)
        steps = rq.steps_of(conn, request_id, request.round)
    assert (assignment.status, assignment.acted_by_id) == ("cancelled", None)  # nobody decided it
    assert [s.status for s in steps] == ["sent_back", "cancelled"]
    assert all(n.state != "pending" for n in nudges_of(db, request_id))  # reminders stop with the step
    assert [n.state for n in nudges_of(db, request_id) if n.kind == FINAL] == ["sent"]
    # the system sent it back: no person as actor, the reason overdue / 期限超過, the note in both languages
    event = events_of(db, request_id)[-1]
    data = json.loads(event.data)
    assert (event.kind, event.actor_id) == ("request.sent_back", None)
    assert (data["by"], data["reason"], data["reason_ja"]) == ("system", "overdue", "期限超過")
    assert data["assignment"] == a and data["approver"] == org.manager and data["step"] == "manager"
    assert data["comment"].startswith("期限超過") and data["note"]["en"].startswith("Overdue")
    # the requester's status card (her language: ja) and the manager's card (every copy) are refreshed
    new = outbox_of(db, request_id)[before:]
    assert {(m.kind, m.recipient_id) for m in new} == {("request_sent_back", org.alice), ("card_update", org.manager)}
    note = next(m for m in new if m.kind == "request_sent_back").payload
    assert note["by"] == "system" and note["comment"].startswith("期限超過: 「上長承認」で5営業日")
    trail_intact(db)
    # later ticks do nothing more; the requester can fix and resubmit (same number, a new round)
    assert tick(db, returning, jst(2026, 6, 12, 10, 0)).returned == 0
    again = engine.resubmit(request_id, org.alice, expense(4000))
    assert again.ok and again.request is not None and again.request.number == request.number
    assert again.request.round == 2 and again.request.status == "pending"


def test_a_snooze_does_not_postpone_the_final_deadline(db: Database, policy: Policy, clock: Clock,
                                                       org: Org) -> None:
    """"Remind me tomorrow" moves the approver's reminders; the final deadline is an action, not theirs to move."""
    returning = with_final(policy, "return_to_requester")
    engine = Engine(db, returning, clock=clock)
    request_id, _ = file(engine, org.alice)
    tick(db, returning, jst(2026, 6, 10, 10, 0))  # the escalation is taken: the final row follows it
    with db.unit_of_work(write=False) as conn:
        manager = get_employee(conn, org.manager)
    assert manager is not None
    until = snooze(db, engine.calendar, manager, None, jst(2026, 6, 11, 9, 30))
    assert until == jst(2026, 6, 12, 9, 0)
    assert [n.due_at for n in nudges_of(db, request_id) if n.kind == FINAL] == [FINAL_AT]
    assert tick(db, returning, FINAL_AT).returned == 1


def test_the_note_is_in_the_requesters_language(db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    returning = with_final(policy, "return_to_requester")
    request_id, _ = file(Engine(db, returning, clock=clock), org.bob)  # Bob reads English
    assert tick(db, returning, FINAL_AT).returned == 1
    note = next(m for m in outbox_of(db, request_id) if m.kind == "request_sent_back").payload
    assert note["comment"].startswith("Overdue: nobody decided at 'Manager' for 5 business days")


def test_every_copy_of_a_shared_step_is_updated(db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    """Finance (any one of two) never acts: both finance cards are closed and refreshed, the request goes back
    once although each of them has a final row (written when their escalations are taken, in the same tick)."""
    returning = with_final(policy, "return_to_requester")
    engine = Engine(db, returning, clock=clock)
    request_id, a = file(engine, org.alice)
    assert engine.decide(a, org.manager, "approve").ok  # Tue 06-02 10:00: finance due Thu 06-04 10:00
    finance = [n for n in nudges_of(db, request_id) if n.kind == "escalation" and n.state == "pending"]
    assert {n.target_id for n in finance} == {org.finance1, org.finance2}  # each one's next action
    before = len(outbox_of(db, request_id))
    assert tick(db, returning, FINAL_AT).returned == 1
    assert request_of(db, request_id).status == "sent_back"
    new = outbox_of(db, request_id)[before:]
    assert sorted((m.kind, m.recipient_id) for m in new) == sorted([
        ("card_update", org.finance1), ("card_update", org.finance2), ("request_sent_back", org.alice)])
    assert [e.kind for e in events_of(db, request_id)].count("request.sent_back") == 1
    assert all(n.state != "pending" for n in nudges_of(db, request_id))
    trail_intact(db)


def test_auto_approve_inform_never_approves_an_approval_step(db: Database, policy: Policy, clock: Clock,
                                                             org: Org) -> None:
    """Refused by validation (tests/unit/test_nudge_policy.py); run anyway, it behaves as `stay`."""
    lenient = with_final(policy, "auto_approve_inform")
    request_id, a = file(Engine(db, lenient, clock=clock), org.alice)
    assert tick(db, lenient, FINAL_AT).returned == 0
    assert request_of(db, request_id).status == "pending"
    with db.unit_of_work(write=False) as conn:
        assert next(x for x in rq.assignments_of(conn, request_id) if x.id == a).status == "pending"
    assert [n.state for n in nudges_of(db, request_id) if n.kind == FINAL] == ["cancelled"]
    assert not any(e.kind in ("assignment.approved", "request.completed") for e in events_of(db, request_id))


def test_a_decision_before_the_final_deadline_wins(db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    returning = with_final(policy, "return_to_requester")
    engine = Engine(db, returning, clock=clock)
    request_id, a = file(engine, org.alice)
    clock.now = FINAL_AT
    assert engine.decide(a, org.manager, "approve").ok  # the manager acts at the very moment
    assert tick(db, returning, FINAL_AT).returned == 0
    # the assignment's next action (its escalation; the final row would have followed it) is cancelled with it
    assert [(n.kind, n.state) for n in nudges_of(db, request_id) if n.kind in ("escalation", FINAL)
            and n.assignment_id == a] == [("escalation", "cancelled")]
    assert request_of(db, request_id).status == "pending"  # on to finance (its own final row later), not sent back


def test_a_decision_after_the_final_action_is_refused(db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    returning = with_final(policy, "return_to_requester")
    engine = Engine(db, returning, clock=clock)
    request_id, a = file(engine, org.alice)
    assert tick(db, returning, FINAL_AT).returned == 1
    clock.now = FINAL_AT
    late = engine.decide(a, org.manager, "approve")
    assert not late.ok and late.code in ("already_decided", "request_closed")
    assert request_of(db, request_id).status == "sent_back"
    # the use case itself, repeated (a second ticker): nothing more happens
    assert engine.expire(a, FINAL_AT).code == "request_closed"
    trail_intact(db)


def test_a_claimed_queue_item_is_not_returned(db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    returning = policy.model_copy(update={"types": {**policy.types, "it": policy.types["it"].model_copy(
        update={"nudges": NudgePolicy(final="return_to_requester")})}})
    engine = Engine(db, returning, clock=clock)
    outcome = engine.submit(org.alice, "it", {"category": "device", "subject": "PC", "details": "壊れた",
                                              "urgency": "normal"})
    assert outcome.ok and outcome.request is not None, outcome.message("en")
    assert engine.claim(outcome.open_assignments[0], org.it1).ok
    assert tick(db, returning, jst(2026, 6, 30, 10, 0)).returned == 0
    assert request_of(db, outcome.request.id).status == "pending"


def test_a_decision_racing_the_final_action_applies_once(db: Database, policy: Policy, clock: Clock,
                                                         org: Org) -> None:
    returning = with_final(policy, "return_to_requester")
    engine = Engine(db, returning, clock=clock)
    for i in range(4):
        clock.now = jst(2026, 6, 2, 10, 0)
        request_id, a = file(engine, org.alice)
        clock.now = FINAL_AT
        decision = "approve" if i % 2 == 0 else "send_back"
        tick(db, returning, FINAL_AT - timedelta(minutes=1))  # the escalation is taken: the final row follows
        row = next(n.id for n in nudges_of(db, request_id) if n.kind == FINAL and n.state == "pending")

        # the use case the tick runs for the final row, against the manager's click at the same moment
        def act(k: int, a: int = a, decision: str = decision, row: int = row) -> bool:
            if k == 0:
                return engine.decide(a, org.manager, decision, "理由").ok  # type: ignore[arg-type]
            return engine.expire(a, FINAL_AT, nudge_id=row).ok

        decided, returned = race(2, act)
        assert decided != returned, (decided, returned)  # exactly one of them applied
        request = request_of(db, request_id)
        kinds = [e.kind for e in events_of(db, request_id)]
        if returned:
            assert request.status == "sent_back" and kinds.count("request.sent_back") == 1
            assert not {"assignment.approved", "assignment.sent_back"} & set(kinds)  # (escalated: the tick's)
        else:
            assert kinds.count(f"assignment.{'approved' if decision == 'approve' else 'sent_back'}") == 1
            assert not any(json.loads(e.data).get("by") == "system" for e in events_of(db, request_id))
        assert all(n.state != "pending" for n in nudges_of(db, request_id) if n.kind == FINAL and n.assignment_id == a)
    trail_intact(db)


def test_the_requesters_card_says_it_came_back_for_being_overdue(db: Database, policy: Policy, clock: Clock,
                                                                  org: Org) -> None:

    returning = with_final(policy, "return_to_requester")
    request_id, _ = file(Engine(db, returning, clock=clock), org.alice)
    assert tick(db, returning, FINAL_AT).returned == 1
    row = next(m for m in outbox_of(db, request_id) if m.kind == "request_sent_back")
    with db.unit_of_work(write=False) as conn:
        found = message_for(conn, returning, "Asia/Tokyo", row)
    assert found is not None
    message, locale = found
    text = json.dumps(valid_message(render_message(message, locale)), ensure_ascii=False)
    assert "上長承認: 差し戻し — 期限超過のため自動" in text and "承認期限を過ぎたため申請者に戻しました" in text
