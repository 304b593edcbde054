"""workflow.queries.load_details on real databases (SQLite file and PostgreSQL), driven by the real engine:
routes, delegates, send-back cycles and rounds, queues; and the cards built from what it reads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.slack.blockkit import render_message
from config.i18n import LocalText
from config.policy import Policy
from handlers.cards import approval_card, decided_card, requester_card
from models import requests as rq
from models.db import Database
from tests.conftest import Clock, Org
from workflow.engine import Engine
from workflow.queries import RequestDetails, load_details


def expense(amount: int) -> dict[str, Any]:
    return {"purpose": "大阪出張 <!channel>", "items": [
        {"date": "2026-06-01", "payee": "JR東日本", "amount": amount, "tax_rate": "10", "category": "travel",
         "receipt": "https://files.example.jp/r1.pdf"}]}


@pytest.fixture
def engine(db: Database, policy: Policy, clock: Clock) -> Engine:
    return Engine(db, policy, clock=clock)


def details(db: Database, policy: Policy, request_id: int) -> RequestDetails:
    with db.unit_of_work(write=False) as conn:
        found = load_details(conn, policy, request_id)
    assert found is not None
    return found


def pending(db: Database, request_id: int) -> list[rq.Assignment]:
    with db.unit_of_work(write=False) as conn:
        return [a for a in rq.assignments_of(conn, request_id) if a.status == "pending"]


def valid(message: dict[str, Any]) -> None:
    for block in message["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()


def test_unknown_request_is_none(db: Database, policy: Policy) -> None:
    with db.unit_of_work(write=False) as conn:
        assert load_details(conn, policy, 999) is None


def test_expense_route_with_a_delegate_acting_for_the_manager(engine: Engine, db: Database, policy: Policy,
                                                               org: Org, clock: Clock) -> None:
    assert engine.delegate(org.manager, org.bob, clock.now, clock.now + timedelta(days=2)).ok
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.request is not None
    rid = out.request.id
    d = details(db, policy, rid)
    assert d.type_title == LocalText.of("経費精算", "Expense claim")
    assert d.requester_name == LocalText.of("高橋 愛", "Ai Takahashi") and d.history_rounds == 0
    assert [(s.key, s.kind, s.status) for s in d.steps] == [
        ("manager", "approval", "active"), ("department_head", "approval", "waiting"),
        ("finance", "approval", "waiting")]
    assert d.steps[0].title.ja == "上長承認" and d.steps[0].due_at is not None
    assert [p.approver_id for p in d.steps[2].people] == [org.finance1, org.finance2]

    clock.advance(minutes=32)
    first = pending(db, rid)[0]
    assert engine.decide(first.id, org.bob, "approve").ok  # bob acts for the manager
    d = details(db, policy, rid)
    manager = d.steps[0].people[0]
    assert (manager.status, manager.approver_id, manager.acted_by_id) == ("approved", org.manager, org.bob)
    assert manager.approver_name.ja == "鈴木 一郎" and manager.acted_by_name == LocalText.of("田中 健", "Ken Tanaka")
    assert manager.decided_at == clock.now
    assert [s.status for s in d.steps] == ["approved", "active", "waiting"]

    spec = policy.types["expense"]
    head = pending(db, rid)[0]
    card = render_message(approval_card(d, spec, head.id, "ja", "Asia/Tokyo"), "ja")
    valid(card)
    text = str(card["blocks"])
    assert "田中 健（鈴木 一郎 の代理）" in text and "⏳ 部門長承認 佐藤 花子" in text and "・ 経理確認" in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    # the manager's own copy has no buttons left and says who approved, on whose behalf
    old = render_message(approval_card(d, spec, first.id, "en", "Asia/Tokyo"), "en")
    valid(old)
    assert not [b for b in old["blocks"] if b["type"] == "actions"]
    assert "Ken Tanaka (on behalf of Ichiro Suzuki) 2026-06-02 10:32" in str(old["blocks"])


def test_send_back_cycles_and_rounds(engine: Engine, db: Database, policy: Policy, org: Org) -> None:
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.request is not None
    rid = out.request.id
    assert engine.decide(pending(db, rid)[0].id, org.manager, "approve").ok
    # the department head sends it back to the manager: both steps start a new cycle
    assert engine.decide(pending(db, rid)[0].id, org.sales_head, "send_back", "再確認を", to_step="manager").ok
    d = details(db, policy, rid)
    assert [(s.status, [p.status for p in s.people]) for s in d.steps] == [
        ("active", ["pending"]), ("waiting", ["waiting"]), ("waiting", ["waiting", "waiting"])]
    # now back to the applicant, who resubmits: a new round, the old one counted as history
    assert engine.decide(pending(db, rid)[0].id, org.manager, "send_back", "内訳を追記してください").ok
    d = details(db, policy, rid)
    assert d.request.status == "sent_back"
    mine = render_message(requester_card(d, policy.types["expense"], "ja", "Asia/Tokyo"), "ja")
    valid(mine)
    assert "内訳を追記してください" in str(mine["blocks"])
    assert engine.resubmit(rid, org.alice, expense(90_000)).ok
    d = details(db, policy, rid)
    assert d.history_rounds == 1 and [s.key for s in d.steps] == ["manager", "finance"]


def test_queue_claim_and_resolve_read_back(engine: Engine, db: Database, policy: Policy, org: Org) -> None:
    out = engine.submit(org.alice, "it", {"category": "device", "subject": "PCが起動しない",
                                          "details": "電源ランプが点きません", "urgency": "high"})
    assert out.request is not None
    rid = out.request.id
    spec = policy.types["it"]
    mine = {a.approver_id: a.id for a in pending(db, rid)}
    assert engine.claim(mine[org.it1], org.it1).ok
    d = details(db, policy, rid)
    assert d.steps[0].status == "claimed"
    assert {p.approver_id: p.status for p in d.steps[0].people} == {org.it1: "claimed", org.it2: "cancelled"}
    card = approval_card(d, spec, mine[org.it1], "ja", "Asia/Tokyo")
    assert [(b.action, b.value) for blk in card.blocks if hasattr(blk, "buttons") for b in blk.buttons] == [
        ("resolve", str(mine[org.it1]))]
    assert engine.resolve(mine[org.it1], org.it1, "交換しました").ok
    d = details(db, policy, rid)
    final = render_message(decided_card(d, spec, "en", "Asia/Tokyo"), "en")
    valid(final)
    assert "Resolved — Sho Kato" in str(final["blocks"])


def test_withdrawn_request_reads_as_withdrawn(engine: Engine, db: Database, policy: Policy, org: Org,
                                             clock: Clock) -> None:
    out = engine.submit(org.alice, "expense", expense(1_000))
    assert out.request is not None
    assert engine.withdraw(out.request.id, org.alice).ok
    d = details(db, policy, out.request.id)
    assert d.request.status == "withdrawn"
    assert d.request.decided_at == clock.now
    card = render_message(requester_card(d, policy.types["expense"], "ja", "Asia/Tokyo"), "ja")
    valid(card)
    assert "取り下げ済み — 高橋 愛" in str(card["blocks"])
    assert not [b for b in card["blocks"] if b["type"] == "actions"]


def test_delivery_reuses_details_read_earlier_only_while_the_request_is_unchanged(
        db: Database, policy: Policy, engine: Engine, org: Org) -> None:
    """handlers.notifications.Reads with `earlier` (delivery keeps it across a batch's rows): the same details
    while the request's version is the same; a fresh read, showing the decision, once anything changed."""
    from handlers.notifications import Reads

    out = engine.submit(org.alice, "expense", expense(5000))
    assert out.ok and out.request is not None
    request_id, assignment = out.request.id, out.open_assignments[0]
    earlier: dict[int, RequestDetails] = {}
    with db.unit_of_work(write=False) as conn:
        first = Reads(earlier=earlier).of(conn, policy, request_id)
    with db.unit_of_work(write=False) as conn:
        again = Reads(earlier=earlier).of(conn, policy, request_id)
    assert first is not None and again is first  # nothing changed: not read again

    assert engine.decide(assignment, org.manager, "approve").ok
    with db.unit_of_work(write=False) as conn:
        after = Reads(earlier=earlier).of(conn, policy, request_id)
    assert after is not None and after is not first
    assert after.request.version > first.request.version
    manager_step = next(s for s in after.steps if any(p.assignment_id == assignment for p in s.people))
    assert [p.status for p in manager_step.people if p.assignment_id == assignment] == ["approved"]
    assert earlier[request_id] is after  # the fresh read is the one remembered
    with db.unit_of_work(write=False) as conn:
        assert Reads(earlier=earlier).of(conn, policy, 10_000) is None  # no such request


def test_many_requests_read_together_read_as_each_alone(engine: Engine, db: Database, policy: Policy,
                                                        org: Org, clock: Clock) -> None:
    """`load_details_many` (a delivery batch's requests in four statements) gives what `load_details` gives for
    each: a route under way, a delegate's decision, a send-back to an earlier step, a second round after a
    resubmission, a claimed queue, a withdrawal; an unknown id is left out. And `current_details` reads only
    what the caller does not hold as it now is."""
    from workflow.queries import current_details, load_details_many

    assert engine.delegate(org.manager, org.bob, clock.now, clock.now + timedelta(days=2)).ok
    ids = [engine.submit(org.alice, "expense", expense(amount)).request.id  # type: ignore[union-attr]
           for amount in (1_000, 150_000, 150_000, 5_000)]
    it = engine.submit(org.alice, "it", {"category": "device", "subject": "PCが起動しない",
                                         "details": "電源ランプが点きません", "urgency": "high"}).request
    assert it is not None
    assert engine.decide(pending(db, ids[0])[0].id, org.bob, "approve").ok  # the delegate, for the manager
    assert engine.decide(pending(db, ids[1])[0].id, org.manager, "approve").ok
    assert engine.decide(pending(db, ids[1])[0].id, org.sales_head, "send_back", "再確認を", to_step="manager").ok
    assert engine.decide(pending(db, ids[2])[0].id, org.manager, "send_back", "内訳を").ok
    assert engine.resubmit(ids[2], org.alice, expense(90_000)).ok
    assert engine.withdraw(ids[3], org.alice).ok
    claim = {a.approver_id: a.id for a in pending(db, it.id)}[org.it1]
    assert engine.claim(claim, org.it1).ok
    every = [*ids, it.id]
    with db.unit_of_work(write=False) as conn:
        together = load_details_many(conn, policy, [*every, 999])
        alone = {i: load_details(conn, policy, i) for i in every}
        assert together == alone
        assert details(db, policy, ids[2]).history_rounds == 1  # the second round, as read alone
        assert current_details(conn, policy, every, together) == {}  # all as they are now
    assert engine.decide(pending(db, ids[0])[0].id, org.finance1, "approve").ok
    with db.unit_of_work(write=False) as conn:
        fresh = current_details(conn, policy, every, together)
        assert list(fresh) == [ids[0]] and fresh[ids[0]] == load_details(conn, policy, ids[0])


def _route_read_apart(db: Database, assignment_id: int) -> tuple[Any, list[Any], list[Any]]:
    with db.unit_of_work() as conn:
        request = rq.request_of_assignment(conn, assignment_id, lock=True)
        if request is None:
            return None, [], []
        return request, rq.assignments_of(conn, request.id), rq.steps_of(conn, request.id, request.round)


def _route_read_together(db: Database, assignment_id: int) -> tuple[Any, list[Any], list[Any]]:
    with db.unit_of_work() as conn:  # on PostgreSQL a pipelined unit: the three are sent, then read
        return rq.route_of_assignment(conn, assignment_id, lock=True)


def test_a_route_read_together_is_the_route_read_apart(engine: Engine, db: Database, org: Org) -> None:
    """What a decision reads first (`route_of_assignment`: three queries sent together) is what the request, its
    assignments and its current round's steps read one after the other give, across a send-back to an earlier step,
    a second round after a resubmission, and for an assignment of the earlier round."""
    out = engine.submit(org.alice, "expense", expense(150_000))
    assert out.request is not None
    rid = out.request.id
    first = pending(db, rid)[0].id
    seen = [first]
    assert engine.decide(first, org.manager, "approve").ok
    assert engine.decide(pending(db, rid)[0].id, org.sales_head, "send_back", "再確認を", to_step="manager").ok
    seen.append(pending(db, rid)[0].id)
    assert engine.decide(seen[-1], org.manager, "send_back", "内訳を追記してください").ok
    assert engine.resubmit(rid, org.alice, expense(90_000)).ok
    seen.append(pending(db, rid)[0].id)
    for assignment_id in seen:
        together = _route_read_together(db, assignment_id)
        assert together == _route_read_apart(db, assignment_id)
        request, assigns, steps = together
        assert request is not None and request.round == 2 and {s.round for s in steps} == {2}
        assert assignment_id in {a.id for a in assigns}
    assert _route_read_together(db, 999_999) == (None, [], [])
