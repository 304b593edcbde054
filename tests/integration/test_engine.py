"""The engine's use cases on real databases (SQLite file and PostgreSQL): routes, decisions, stale clicks,
send-back and resubmit, withdraw, queues, reassign, delegation, numbering, leave and expenses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from config.policy import Policy, parse_policy
from models import audit as audit_rows
from models import leave as leave_rows
from models import messaging, people
from models import requests as rq
from models.db import Database
from tests.conftest import Clock, Org
from workflow.audit import verify
from workflow.engine import Engine
from workflow.nudge_plan import plan_for

JST = "Asia/Tokyo"


def item(amount: int, **extra: Any) -> dict[str, Any]:
    return {"date": "2026-06-01", "payee": "JR東日本", "amount": amount, "tax_rate": "10", "category": "travel",
            **extra}


def expense(amount: int, **extra: Any) -> dict[str, Any]:
    return {"purpose": "大阪出張", "items": [item(amount, **extra)]}


@pytest.fixture
def engine(db: Database, policy: Policy, clock: Clock) -> Engine:
    return Engine(db, policy, clock=clock)


def assignments(db: Database, request_id: int) -> list[rq.Assignment]:
    with db.unit_of_work(write=False) as conn:
        return rq.assignments_of(conn, request_id)


def steps(db: Database, request_id: int) -> list[rq.Step]:
    with db.unit_of_work(write=False) as conn:
        return rq.steps_of(conn, request_id)


def pending(db: Database, request_id: int) -> list[rq.Assignment]:
    return [a for a in assignments(db, request_id) if a.status == "pending"]


def counts(db: Database) -> dict[str, int]:
    names = ["requests", "steps", "assignments", "outbox", "nudges", "audit_events", "leave_taken", "delegations"]
    with db.unit_of_work(write=False) as conn:
        return {n: conn.execute(sa.text(f"SELECT COUNT(*) FROM {n}")).scalar_one() for n in names}


def chain_ok(db: Database) -> bool:
    with db.unit_of_work(write=False) as conn:
        return verify(conn)[1] == []


# ------------------------------------------------------------------------------------------------ routes


def test_expense_over_threshold_goes_manager_head_finance(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.ok and out.request is not None
    assert out.request.number == "EXP-2026-0001"
    assert [s.key for s in steps(db, out.request.id)] == ["manager", "department_head", "finance"]
    assert [(a.approver_id, a.status) for a in assignments(db, out.request.id)] == [
        (org.manager, "pending"), (org.sales_head, "waiting"), (org.finance1, "waiting"), (org.finance2, "waiting")]
    for who in (org.manager, org.sales_head):
        a = pending(db, out.request.id)[0]
        assert a.approver_id == who
        assert engine.decide(a.id, who, "approve").ok
    result = engine.decide(pending(db, out.request.id)[0].id, org.finance1, "approve")
    assert result.ok and result.request is not None and result.request.status == "approved"
    assert chain_ok(db)


def test_expense_under_threshold_skips_department_head(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(80_000))
    assert out.request is not None
    assert [s.key for s in steps(db, out.request.id)] == ["manager", "finance"]


def test_approver_who_is_the_requester_moves_up(engine: Engine, db: Database, org: Org) -> None:
    # the sales head files: the department-head step cannot be theirs, so it goes to their manager (the CEO)
    out = engine.submit(org.sales_head, "expense", expense(150_000))
    assert out.request is not None
    by_step = {s.key: [a.approver_id for a in assignments(db, out.request.id) if a.step_id == s.id]
               for s in steps(db, out.request.id)}
    assert by_step["manager"] == [org.ceo]
    assert by_step["department_head"] == [org.ceo]
    # a finance person filing never approves at the finance step
    out2 = engine.submit(org.finance1, "expense", expense(5_000))
    assert out2.request is not None
    finance_step = [s for s in steps(db, out2.request.id) if s.key == "finance"][0]
    assert [a.approver_id for a in assignments(db, out2.request.id) if a.step_id == finance_step.id] == [
        org.finance2]


def test_inactive_manager_moves_up(engine: Engine, db: Database, org: Org) -> None:
    with db.unit_of_work() as conn:
        conn.execute(people.employees.update().where(people.employees.c.id == org.manager).values(active=False))
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    assert assignments(db, out.request.id)[0].approver_id == org.sales_head


def test_nobody_holds_the_role_refuses_and_stores_nothing(engine: Engine, db: Database, org: Org) -> None:
    with db.unit_of_work() as conn:
        conn.execute(people.employee_roles.delete().where(people.employee_roles.c.role == "finance"))
    before = counts(db)
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert not out.ok and out.code == "no_approver"
    assert "経理確認" in out.message.ja and "Finance" in out.message.en
    assert counts(db) == before


# ------------------------------------------------------------------------------------------------ bad input


def test_invalid_payload_answers_per_field_and_stores_nothing(engine: Engine, db: Database, org: Org) -> None:
    before = counts(db)
    out = engine.submit(org.alice, "expense", {"purpose": "", "items": [item(-5, date="2026-13-01")]})
    assert not out.ok and out.code == "invalid"
    assert set(out.errors) == {"purpose", "items[0].amount", "items[0].date"}
    assert out.errors["purpose"].ja == "必須項目です"
    assert counts(db) == before
    assert engine.submit(org.alice, "nope", {}).code == "unknown_type"
    assert engine.submit(org.alice, "expense", ["not", "a", "form"]).code == "invalid"
    assert engine.submit(99999, "expense", expense(1)).code == "unknown_person"
    assert counts(db) == before


def test_invoice_number_with_bad_check_digit_warns_and_bad_format_refuses(engine: Engine, db: Database,
                                                                           org: Org) -> None:
    ok = engine.submit(org.alice, "expense", expense(1_000, invoice_number="Ｔ７０１０７０５０００７２５"))
    assert ok.ok and not ok.warnings
    assert ok.request is not None and ok.request.payload["items"][0]["invoice_number"] == "T7010705000725"
    doubtful = engine.submit(org.alice, "expense", expense(1_000, invoice_number="T1010705000725"))
    assert doubtful.ok and len(doubtful.warnings) == 1
    assert doubtful.request is not None and doubtful.request.warnings
    bad = engine.submit(org.alice, "expense", expense(1_000, invoice_number="T123"))
    assert not bad.ok and "items[0].invoice_number" in bad.errors


# ------------------------------------------------------------------------------------------------ decisions


def test_repeated_click_says_who_decided_and_when(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    a = pending(db, out.request.id)[0]
    assert engine.decide(a.id, org.manager, "approve").ok
    before = counts(db)
    again = engine.decide(a.id, org.manager, "reject", "やっぱり")
    assert not again.ok and again.code == "already_decided"
    assert "鈴木 一郎" in again.message.ja and "2026-06-02 10:00" in again.message.ja
    assert "Ichiro Suzuki" in again.message.en
    assert counts(db) == before


def test_a_decision_takes_the_actor_the_caller_read(engine: Engine, db: Database, org: Org) -> None:
    """The conversation identified the clicker a moment ago: the engine takes that read instead of its own (one
    statement less a click). Proven by handing it a copy that says inactive where the table says active; a copy of
    somebody else is not taken."""
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    a = pending(db, out.request.id)[0]
    with db.unit_of_work(write=False) as conn:
        manager, bob = people.get_employee(conn, org.manager), people.get_employee(conn, org.bob)
    assert manager is not None and manager.active and bob is not None
    before = counts(db)
    gone = engine.decide(a.id, org.manager, "approve", actor=replace(manager, active=False))
    assert not gone.ok and gone.code == "unknown_person" and counts(db) == before
    done = engine.decide(a.id, org.manager, "approve", actor=replace(bob, active=False))  # not the actor: read
    assert done.ok and done.request is not None


def test_any_of_two_finance_people_and_the_late_click(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    engine.decide(pending(db, out.request.id)[0].id, org.manager, "approve")
    fin = {a.approver_id: a for a in pending(db, out.request.id)}
    assert set(fin) == {org.finance1, org.finance2}
    done = engine.decide(fin[org.finance2].id, org.finance2, "approve")
    assert done.ok and done.request is not None and done.request.status == "approved"
    late = engine.decide(fin[org.finance1].id, org.finance1, "approve")
    assert not late.ok and late.code == "already_decided" and "渡辺 恵" in late.message.ja
    with db.unit_of_work(write=False) as conn:
        kinds = [(m.kind, m.recipient_id) for m in messaging.outbox_for(conn, out.request.id)]
    assert ("card_update", org.finance1) in kinds  # finance1's copy of the card must show the outcome


def test_reject_needs_a_reason_and_ends_the_request(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.request is not None
    a = pending(db, out.request.id)[0]
    no_reason = engine.decide(a.id, org.manager, "reject", "  ")
    assert not no_reason.ok and "comment" in no_reason.errors
    rejected = engine.decide(a.id, org.manager, "reject", "領収書がありません")
    assert rejected.ok and rejected.request is not None and rejected.request.status == "rejected"
    assert {s.status for s in steps(db, out.request.id)} == {"rejected", "cancelled"}
    with db.unit_of_work(write=False) as conn:
        assert {n.state for n in messaging.nudges_for(conn, out.request.id)} == {"cancelled"}


def test_stranger_cannot_act_and_requester_never_approves(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    a = pending(db, out.request.id)[0]
    assert engine.decide(a.id, org.bob, "approve").code == "not_allowed"
    assert engine.decide(a.id, org.alice, "approve").code == "self_approval"
    # even as a delegate of the approver
    engine.delegate(org.manager, org.alice, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
    refused = engine.decide(a.id, org.alice, "approve")
    assert refused.code == "self_approval" and "代理でも不可" in refused.message.ja
    assert pending(db, out.request.id)[0].id == a.id


def test_delegate_acts_within_the_window_and_the_record_shows_both(engine: Engine, db: Database, org: Org,
                                                                    clock: Clock) -> None:
    start = clock.now
    assert engine.delegate(org.manager, org.bob, start, start + timedelta(days=2), ["expense"]).ok
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    a = pending(db, out.request.id)[0]
    assert engine.decide(a.id, org.bob, "approve").ok
    decided = [x for x in assignments(db, out.request.id) if x.id == a.id][0]
    assert (decided.approver_id, decided.acted_by_id) == (org.manager, org.bob)
    # outside the window, or for another type, the delegate cannot act
    clock.advance(days=3)
    out2 = engine.submit(org.alice, "expense", expense(1_000))
    assert out2.request is not None
    assert engine.decide(pending(db, out2.request.id)[0].id, org.bob, "approve").code == "not_allowed"
    assert engine.delegate(org.manager, org.manager, start, start + timedelta(days=1)).code == "self_delegation"
    assert engine.delegate(org.manager, org.bob, start, start).code == "bad_window"


# ------------------------------------------------------------------------------------------------ send back


def test_send_back_to_applicant_then_resubmit_keeps_number_and_history(engine: Engine, db: Database,
                                                                        org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.request is not None
    rid, number = out.request.id, out.request.number
    engine.decide(pending(db, rid)[0].id, org.manager, "approve")
    back = engine.decide(pending(db, rid)[0].id, org.sales_head, "send_back", "金額の内訳を追記してください")
    assert back.ok and back.request is not None and back.request.status == "sent_back"
    assert engine.resubmit(rid, org.bob, expense(90_000)).code == "only_requester"
    invalid = engine.resubmit(rid, org.alice, expense(0))
    assert not invalid.ok and "items[0].amount" in invalid.errors
    again = engine.resubmit(rid, org.alice, expense(90_000))
    assert again.ok and again.request is not None
    assert (again.request.number, again.request.round, again.request.status) == (number, 2, "pending")
    round2 = [s for s in steps(db, rid) if s.round == 2]
    assert [s.key for s in round2] == ["manager", "finance"]  # 90,000 no longer needs the department head
    assert len(steps(db, rid)) == 5  # round 1's three steps are kept as history
    assert engine.resubmit(rid, org.alice, expense(1)).code == "not_sent_back"
    assert chain_ok(db)


def test_send_back_to_an_earlier_step(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.request is not None
    rid = out.request.id
    engine.decide(pending(db, rid)[0].id, org.manager, "approve")
    head = pending(db, rid)[0]
    assert engine.decide(head.id, org.sales_head, "send_back", "x", to_step="finance").code == "unknown_step"
    assert pending(db, rid)[0].id == head.id  # the refused attempt changed nothing
    back = engine.decide(head.id, org.sales_head, "send_back", "部長確認の前に再確認を", to_step="manager")
    assert back.ok and back.request is not None and back.request.status == "pending"
    again = pending(db, rid)
    assert [a.approver_id for a in again] == [org.manager]
    assert engine.decide(again[0].id, org.manager, "approve").ok
    assert [a.approver_id for a in pending(db, rid)] == [org.sales_head]


# ------------------------------------------------------------------------------------------------ withdraw


def test_withdraw_by_requester_only_and_before_the_end(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    a = pending(db, out.request.id)[0]
    assert engine.withdraw(out.request.id, org.bob).code == "only_requester"
    done = engine.withdraw(out.request.id, org.alice, "二重申請でした")
    assert done.ok and done.request is not None and done.request.status == "withdrawn"
    late = engine.decide(a.id, org.manager, "approve")
    assert not late.ok and "取り下げ済み" in late.message.ja and "withdrawn" in late.message.en
    assert engine.withdraw(out.request.id, org.alice).code == "request_closed"
    assert engine.withdraw(424242, org.alice).code == "not_found"


# ------------------------------------------------------------------------------------------------ queues, 回覧


def test_it_queue_claim_and_resolve(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "it", {"category": "device", "subject": "PCが起動しない",
                                          "details": "電源ランプが点きません", "urgency": "high"})
    assert out.ok and out.request is not None and out.request.number == "IT-2026-0001"
    queue = {a.approver_id: a for a in pending(db, out.request.id)}
    assert set(queue) == {org.it1, org.it2}
    assert engine.decide(queue[org.it1].id, org.it1, "approve").code == "not_allowed"
    assert engine.resolve(queue[org.it1].id, org.it1).code == "step_closed"  # not claimed yet
    assert engine.claim(queue[org.it1].id, org.it1).ok
    taken = engine.claim(queue[org.it2].id, org.it2)
    assert not taken.ok and taken.code in ("already_claimed", "already_decided") and "加藤 翔" in taken.message.ja
    done = engine.resolve(queue[org.it1].id, org.it1, "電源ユニットを交換しました")
    assert done.ok and done.request is not None and done.request.status == "resolved"


def test_long_leave_informs_hr(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "leave", {"unit": "full", "period": {"start": "2026-06-08", "end": "2026-06-12"}})
    assert out.ok and out.request is not None
    engine.decide(pending(db, out.request.id)[0].id, org.manager, "approve")
    st = {s.key: s.status for s in steps(db, out.request.id)}
    assert st == {"manager": "approved", "hr_fyi": "informed"}
    with db.unit_of_work(write=False) as conn:
        kinds = [(m.kind, m.recipient_id) for m in messaging.outbox_for(conn, out.request.id)]
    assert ("fyi", org.hr) in kinds


def test_reassign_by_admin_only(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    a = pending(db, out.request.id)[0]
    assert engine.reassign(a.id, org.bob, org.sales_head).code in ("only_admin", "not_allowed")
    assert engine.reassign(a.id, org.admin, org.alice).code == "self_approval"
    moved = engine.reassign(a.id, org.admin, org.sales_head, "鈴木さん長期不在のため")
    assert moved.ok
    now_pending = pending(db, out.request.id)
    assert [x.approver_id for x in now_pending] == [org.sales_head]
    assert engine.decide(a.id, org.manager, "approve").ok is False
    assert engine.decide(now_pending[0].id, org.sales_head, "approve").ok


# ------------------------------------------------------------------------------------------------ numbering, due


def test_numbers_are_sequential_per_type_and_fiscal_year(engine: Engine, org: Org, clock: Clock) -> None:
    clock.now = datetime(2027, 3, 31, 14, 30, tzinfo=UTC)  # 23:30 JST on the last day of FY2026
    first = [engine.submit(org.alice, "expense", expense(1_000)).request for _ in range(2)]
    it = engine.submit(org.alice, "it", {"category": "other", "subject": "s", "details": "d", "urgency": "low"})
    clock.now = datetime(2027, 3, 31, 15, 10, tzinfo=UTC)  # 00:10 JST, April 1: FY2027
    later = engine.submit(org.alice, "expense", expense(1_000)).request
    assert [r.number for r in first if r] == ["EXP-2026-0001", "EXP-2026-0002"]
    assert it.request is not None and it.request.number == "IT-2026-0001"
    assert later is not None and later.number == "EXP-2027-0001"


@pytest.mark.parametrize(("submitted", "due"), [
    # Tuesday before Golden Week: 2 business days = 18 working hours, and Apr 29 (Showa Day) is skipped
    (datetime(2026, 4, 28, 10, 0), datetime(2026, 5, 1, 10, 0)),
    # Thursday Apr 30: May 1 counts, then May 2-6 (weekend, holidays, 振替休日) are skipped
    (datetime(2026, 4, 30, 10, 0), datetime(2026, 5, 7, 10, 0)),
    # Monday Dec 28: the company closes Dec 29 - Jan 3
    (datetime(2026, 12, 28, 10, 0), datetime(2027, 1, 5, 10, 0)),
    # Friday evening after hours: the clock starts Monday 09:00
    (datetime(2026, 6, 5, 20, 0), datetime(2026, 6, 9, 18, 0)),
])
def test_due_dates_count_business_days(engine: Engine, db: Database, org: Org, clock: Clock,
                                       submitted: datetime, due: datetime) -> None:
    from zoneinfo import ZoneInfo
    clock.now = submitted.replace(tzinfo=ZoneInfo(JST)).astimezone(UTC)
    out = engine.submit(org.alice, "leave", {"unit": "am", "period": {"start": "2027-02-01", "end": "2027-02-01"}})
    assert out.ok and out.request is not None, out.message
    step = steps(db, out.request.id)[0]
    assert step.due_at == due.replace(tzinfo=ZoneInfo(JST)).astimezone(UTC)
    # the nudge plan counts from that due time; the rows written are each chain's first moment still ahead
    plan = plan_for(engine.calendar, engine.policy, engine.policy.nudges_for("leave"), step.due_at)
    assert ("due", step.due_at) in plan.reminders
    with db.unit_of_work(write=False) as conn:
        rows = [(n.kind, n.due_at) for n in messaging.nudges_for(conn, out.request.id)]
    assert rows == plan.first_rows(clock.now) and len(rows) == 2
    assert all(at > clock.now for _, at in rows)


# ------------------------------------------------------------------------------------------------ leave


def test_leave_balance_is_checked_and_consumed_oldest_grant_first(engine: Engine, db: Database, org: Org,
                                                                  clock: Clock) -> None:
    # alice was hired 2020-04-01: in June 2026 the grants of 2024-10-01 (16 days) and 2025-10-01 (18) are valid
    too_much = engine.submit(org.alice, "leave", {"unit": "full",
                                                  "period": {"start": "2026-06-08", "end": "2026-08-14"}})
    assert not too_much.ok and too_much.code == "invalid"
    assert "34" in too_much.errors["period"].ja and "34" in too_much.errors["period"].en
    out = engine.submit(org.alice, "leave", {"unit": "full", "period": {"start": "2026-06-08", "end": "2026-06-09"}})
    assert out.ok and out.request is not None
    half = engine.submit(org.alice, "leave", {"unit": "pm", "period": {"start": "2026-06-10", "end": "2026-06-10"}})
    assert half.ok and half.request is not None
    for r in (out.request, half.request):
        engine.decide(pending(db, r.id)[0].id, org.manager, "approve")
    with db.unit_of_work(write=False) as conn:
        grants = {g.id: g.granted_on.isoformat() for g in leave_rows.grants_of(conn, org.alice)}
        taken = [(t.taken_on.isoformat(), t.unit, t.days, grants[t.grant_id])
                 for t in leave_rows.taken_of(conn, org.alice)]
    assert taken == [("2026-06-08", "full", Decimal("1"), "2024-10-01"),
                     ("2026-06-09", "full", Decimal("1"), "2024-10-01"),
                     ("2026-06-10", "pm", Decimal("0.5"), "2024-10-01")]


def test_leave_units_and_their_rules(engine: Engine, org: Org) -> None:
    two_days_half = engine.submit(org.alice, "leave", {"unit": "am",
                                                       "period": {"start": "2026-06-08", "end": "2026-06-09"}})
    assert "period" in two_days_half.errors
    no_hours = engine.submit(org.alice, "leave", {"unit": "hourly",
                                                  "period": {"start": "2026-06-08", "end": "2026-06-08"}})
    assert "hours" in no_hours.errors
    weekend = engine.submit(org.alice, "leave", {"unit": "full",
                                                 "period": {"start": "2026-06-06", "end": "2026-06-07"}})
    assert "period" in weekend.errors and "営業日" in weekend.errors["period"].ja
    hourly = engine.submit(org.alice, "leave", {"unit": "hourly", "hours": 2,
                                                "period": {"start": "2026-06-08", "end": "2026-06-08"}})
    assert hourly.ok and hourly.request is not None and hourly.request.payload["hours"] == "2"


def test_pending_leave_counts_against_the_balance(engine: Engine, org: Org) -> None:
    # a new hire (no grant yet) cannot take paid leave at all; the message shows the numbers
    with engine.db.unit_of_work() as conn:
        newbie = people.insert_employee(conn, email="new@example.jp", name_ja="新人 太郎", name_en="Taro Shinjin",
                                        department_id=org.sales, manager_id=org.manager,
                                        hire_date=datetime(2026, 4, 1).date(), active=True)
    out = engine.submit(newbie, "leave", {"unit": "full", "period": {"start": "2026-06-08", "end": "2026-06-08"}})
    assert not out.ok and "残り 0 日" in out.errors["period"].ja


def test_approved_leave_delegates_the_approvers_work(engine: Engine, db: Database, org: Org,
                                                     clock: Clock) -> None:
    # the manager takes 2026-06-08..09 off; the sales head approves it
    leave_req = engine.submit(org.manager, "leave", {"unit": "full",
                                                      "period": {"start": "2026-06-08", "end": "2026-06-09"}})
    assert leave_req.request is not None
    assert engine.decide(pending(db, leave_req.request.id)[0].id, org.sales_head, "approve").ok
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    a = pending(db, out.request.id)[0]
    assert engine.decide(a.id, org.sales_head, "approve").code == "not_allowed"  # not yet away
    clock.now = datetime(2026, 6, 8, 2, 0, tzinfo=UTC)  # 11:00 JST on the first day of leave
    assert engine.decide(a.id, org.sales_head, "approve").ok


# ------------------------------------------------------------------------------------------------ audit


def test_audit_chain_names_edited_deleted_and_reordered_events(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.request is not None
    engine.decide(pending(db, out.request.id)[0].id, org.manager, "approve")
    with db.unit_of_work() as conn:
        count, breaks = verify(conn)
        assert count >= 4 and breaks == []
        conn.execute(audit_rows.audit_events.update().where(audit_rows.audit_events.c.seq == 2)
                     .values(data='{"tampered":true}'))
        _, breaks = verify(conn)
        assert [b.seq for b in breaks] == [2] and "edited" in breaks[0].problem
        conn.rollback()
    with db.unit_of_work() as conn:
        conn.execute(audit_rows.audit_events.delete().where(audit_rows.audit_events.c.seq == 2))
        _, breaks = verify(conn)
        assert breaks and breaks[0].seq == 2 and "missing" in breaks[0].problem
        conn.rollback()
    with db.unit_of_work() as conn:  # swap two events' places in the chain
        conn.execute(audit_rows.audit_events.update().where(audit_rows.audit_events.c.seq == 2).values(seq=-2))
        conn.execute(audit_rows.audit_events.update().where(audit_rows.audit_events.c.seq == 3).values(seq=2))
        conn.execute(audit_rows.audit_events.update().where(audit_rows.audit_events.c.seq == -2).values(seq=3))
        _, breaks = verify(conn)
        assert {b.seq for b in breaks} >= {2, 3}
        conn.rollback()
    with db.unit_of_work() as conn:
        last = conn.execute(sa.select(sa.func.max(audit_rows.audit_events.c.seq))).scalar_one()
        conn.execute(audit_rows.audit_events.delete().where(audit_rows.audit_events.c.seq == last))
        _, breaks = verify(conn)
        assert breaks and "head" in breaks[-1].problem
        conn.rollback()


def test_outbox_messages_are_unique_and_neutral(engine: Engine, db: Database, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.request is not None
    with db.unit_of_work(write=False) as conn:
        msgs = messaging.outbox_for(conn, out.request.id)
    assert {(m.kind, m.recipient_id) for m in msgs} == {("submitted", org.alice),
                                                        ("approval_requested", org.manager)}
    assert all(m.payload["number"] == "EXP-2026-0001" and m.state == "pending" for m in msgs)
    assert len({m.idempotency_key for m in msgs}) == len(msgs)


def test_parallel_step_needing_two_of_three(db: Database, org: Org, clock: Clock) -> None:
    policy = parse_policy({"types": {"ringi": {
        "prefix": "RG", "title": {"ja": "稟議", "en": "Ringi"}, "area": "general_affairs",
        "fields": [{"id": "subject", "type": "text", "label": {"ja": "件名", "en": "Subject"}}],
        "route": [{"id": "consult", "approvers": ["person:legal@example.jp", "person:fin1@example.jp",
                                                  "person:it1@example.jp"], "require": 2}],
    }}})
    engine = Engine(db, policy, clock=clock)
    out = engine.submit(org.alice, "ringi", {"subject": "新規取引先との契約"})
    assert out.ok and out.request is not None
    mine = {a.approver_id: a for a in pending(db, out.request.id)}
    assert engine.decide(mine[org.legal].id, org.legal, "reject", "条項に懸念").ok
    r = engine.decide(mine[org.finance1].id, org.finance1, "approve")
    assert r.request is not None and r.request.status == "pending"  # 1 approval, 1 rejection: still possible
    r = engine.decide(mine[org.it1].id, org.it1, "approve")
    assert r.request is not None and r.request.status == "approved"


def test_hourly_leave_is_capped_at_five_days_worth_a_year(engine: Engine, db: Database, org: Org) -> None:
    days = ["2026-06-08", "2026-06-09", "2026-06-10", "2026-06-11", "2026-06-12"]
    for i, day in enumerate(days):  # 5 x 7 h = 35 h: two approved, three still pending
        out = engine.submit(org.alice, "leave", {"unit": "hourly", "hours": 7, "period": {"start": day, "end": day}})
        assert out.ok, out.message
        if i < 2:
            assert out.request is not None
            assert engine.decide(pending(db, out.request.id)[0].id, org.manager, "approve").ok
    ok = engine.submit(org.alice, "leave", {"unit": "hourly", "hours": 5,
                                            "period": {"start": "2026-06-15", "end": "2026-06-15"}})
    assert ok.ok  # 40 h: exactly the cap for an 8-hour day
    over = engine.submit(org.alice, "leave", {"unit": "hourly", "hours": 1,
                                              "period": {"start": "2026-06-16", "end": "2026-06-16"}})
    assert not over.ok and "40" in over.errors["hours"].ja and "40" in over.errors["hours"].en
