"""Property tests of the engine's invariants: random sequences of real use cases on a real database.

A hypothesis state machine drives the real Engine (submit of every request type, approve / reject / send back
by the right person, the requester, delegates and strangers, withdraw, resubmit, claim / resolve, reassign by
admins and others, delegation, time passing, and repeated clicks on old or unknown assignment ids). After
every step it reads the tables back and checks what must always hold:

- a request is approved (or resolved) only when every step of its current round is done, with enough approvals:
  an all-of step (合議) only when every one of its people approved, an N-of-M step only when N different people
  did. A step's people are those the route resolved at submit, changed only by an admin's reassignment; a
  send-back to an earlier step must not drop anyone;
- a pending request has exactly one open step, in the hands of all its people, which can still be completed;
  a closed one has no open work and no reminders due;
- a decided assignment (approved / rejected / sent back / resolved) never changes afterwards;
- nobody ever approves, rejects, sends back, claims or resolves their own request, and whoever acted was the
  approver or someone the approver had delegated to at that moment;
- every refusal (ok=False) left the database exactly as it was; every success wrote to the audit trail;
- the audit chain verifies;
- request numbers are unique and sequential per type and fiscal year (the fiscal year of the local date).

Each example starts from a fresh database (a copy of the migrated SQLite template, or the PostgreSQL server
truncated) with the small company of tests/conftest.py and a policy: the shipped workflows.yaml plus one
合議 type (2 of 3 reviewers, then all of a board, then an FYI step), so N-of-M and all-of steps are exercised.
The counterexamples the machine found are pinned at the end as plain tests on both databases.
"""

from __future__ import annotations

import functools
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import Connection

from config.policy import Policy, parse_policy
from config.settings import DEFAULT_WORKFLOWS
from models import audit as audit_rows
from models import messaging, people
from models import requests as rq
from models.base import metadata
from models.db import Database
from models.requests import Assignment, Request, Step
from tests.conftest import Clock, Org, make_org
from workflow import audit
from workflow.engine import Engine
from workflow.numbering import fiscal_year, format_number
from workflow.outcomes import Outcome

TOKYO = ZoneInfo("Asia/Tokyo")
DECIDED = ("approved", "rejected", "sent_back", "resolved")
ACTED = (*DECIDED, "claimed")
DONE = {"approval": "approved", "inform": "informed", "queue": "resolved"}
TYPES = ("expense", "stamp", "leave", "it", "council")

# The 合議 type: two of three reviewers, then (for large amounts) every board member, then an FYI to admins.
COUNCIL = {
    "prefix": "CNL",
    "title": {"ja": "稟議", "en": "Council approval"},
    "area": "general_affairs",
    "fields": [
        {"id": "subject", "type": "text", "label": {"ja": "件名", "en": "Subject"}, "max_length": 100},
        {"id": "amount", "type": "money", "label": {"ja": "金額", "en": "Amount"}, "min": 1, "max": 100000000},
    ],
    "route": [
        {"id": "review", "approvers": ["person:fin1@example.jp", "person:legal@example.jp", "person:hr@example.jp"],
         "require": 2},
        {"id": "board", "approvers": ["person:head@example.jp", "person:ceo@example.jp"], "require": "all",
         "when": [{"fact": "amount", "gt": 500000}]},
        {"id": "fyi", "kind": "inform", "approver": "role:admin"},
    ],
}


@functools.cache
def council_policy() -> Policy:
    data = yaml.safe_load(Path(DEFAULT_WORKFLOWS).read_text(encoding="utf-8"))
    data["types"]["council"] = COUNCIL
    return parse_policy(data, "shipped workflows.yaml + council")


# ---------------------------------------------------------------- payloads
def _leave(unit: str, offset: int, length: int, hours: int, today: date) -> dict[str, Any]:
    start = today + timedelta(days=offset)
    end = start + timedelta(days=length if unit == "full" else 0)
    payload: dict[str, Any] = {"unit": unit, "period": {"start": start.isoformat(), "end": end.isoformat()}}
    if unit == "hourly":
        payload["hours"] = hours
    return payload


def valid_payload(type_key: str, today: date) -> st.SearchStrategy[dict[str, Any]]:
    """A payload the form accepts (the type's own rules may still refuse it: balances, invoice numbers)."""
    if type_key == "leave":
        return st.builds(_leave, st.sampled_from(["full", "full", "am", "pm", "hourly"]), st.integers(-3, 40),
                         st.integers(0, 60), st.integers(1, 7), st.just(today))
    if type_key == "expense":
        item = st.fixed_dictionaries(
            {"date": st.just((today - timedelta(days=3)).isoformat()),
             "payee": st.sampled_from(["JR東日本", "タクシー", "Amazon"]),
             "amount": st.sampled_from([1, 980, 30_000, 99_999, 100_000, 100_001, 250_000, 10_000_000]),
             "tax_rate": st.sampled_from(["10", "8"]),
             "category": st.sampled_from(["travel", "meeting", "supplies"])},
            optional={"invoice_number": st.sampled_from(["T7000012050002", "T1234567890123", "X-12"])})
        return st.fixed_dictionaries({"purpose": st.sampled_from(["出張", "会議"]),
                                      "items": st.lists(item, min_size=1, max_size=3)})
    if type_key == "stamp":
        return st.fixed_dictionaries({
            "document": st.just("秘密保持契約書"), "counterparty": st.just("株式会社ACME"),
            "seal": st.sampled_from(["company", "representative", "bank"]), "copies": st.integers(1, 50),
            "needed_by": st.just((today + timedelta(days=7)).isoformat()), "file": st.just("https://f.example/nda.pdf"),
        })
    if type_key == "it":
        return st.fixed_dictionaries({
            "category": st.sampled_from(["account", "device", "network"]), "subject": st.just("PCが起動しない"),
            "details": st.just("電源を入れても画面が真っ暗です"), "urgency": st.sampled_from(["low", "normal", "high"]),
        })
    return st.fixed_dictionaries({"subject": st.just("新規取引先との契約"),
                                  "amount": st.sampled_from([1000, 500_000, 500_001, 3_000_000])})


def payload_for(type_key: str, today: date) -> st.SearchStrategy[Any]:
    """Mostly valid payloads, sometimes broken ones (refusals must change nothing)."""
    broken = st.sampled_from([{}, {"bogus": 1}, "not a form", {"amount": -5, "copies": 0, "unit": "weekly"}])
    valid = valid_payload(type_key, today)
    return st.one_of(valid, valid, valid, valid, broken)


# ---------------------------------------------------------------- databases per example
class SqliteFiles:
    """A fresh copy of the migrated SQLite template per example."""

    def __init__(self, template: Path, directory: Path) -> None:
        self.template, self.directory = template, directory

    def fresh(self) -> Database:
        path = self.directory / f"ex-{uuid.uuid4().hex}.db"
        shutil.copy(self.template, path)
        return Database(f"sqlite:///{path}")

    def release(self, db: Database) -> None:
        db.dispose()
        path = Path(db.url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


class PostgresTruncated:
    """The session's PostgreSQL database, emptied per example."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def fresh(self) -> Database:
        names = ", ".join(t.name for t in metadata.sorted_tables if t.name != "audit_head")
        with self.db.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            # the chain's head as the migration left it: at the start of the chain
            conn.execute(audit_rows.audit_head.update().values(seq=0, hash=audit_rows.GENESIS))
        return self.db

    def release(self, db: Database) -> None:
        pass


def dump(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order: two dumps are equal only if nothing changed."""
    out = {}
    for table in metadata.sorted_tables:
        key = list(table.primary_key.columns) or list(table.columns)
        out[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*key))]
    return out


def _diff(before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]) -> str:
    lines = []
    for name in before:
        if before[name] != after[name]:
            gone = [r for r in before[name] if r not in after[name]]
            new = [r for r in after[name] if r not in before[name]]
            lines.append(f"{name}: removed {gone[:3]} added {new[:3]}")
    return "; ".join(lines)


# ---------------------------------------------------------------- the state machine
@dataclass
class World:
    """The tables as the last invariant check read them (the machine's view between steps)."""

    requests: dict[int, Request] = field(default_factory=dict)
    steps: dict[int, Step] = field(default_factory=dict)
    assigns: dict[int, Assignment] = field(default_factory=dict)

    def live(self, status: str, kind: str | None = None) -> list[int]:
        return [a.id for a in self.assigns.values()
                if a.status == status and (kind is None or self.steps[a.step_id].kind == kind)]

    def undecided(self) -> list[int]:
        return [a.id for a in self.assigns.values() if a.undecided]

    def with_status(self, status: str) -> list[int]:
        return [r.id for r in self.requests.values() if r.status == status]


class EngineMachine(RuleBasedStateMachine):
    """Random use of the engine by everyone in a small company; invariants checked after every step."""

    backend: SqliteFiles | PostgresTruncated  # set by the test that runs the machine

    def __init__(self) -> None:
        super().__init__()
        self.db = self.backend.fresh()
        self.org: Org = make_org(self.db)
        self.clock = Clock(datetime(2026, 6, 2, 1, 0, tzinfo=UTC))
        self.engine = Engine(self.db, council_policy(), clock=self.clock)
        with self.db.unit_of_work(write=False) as conn:
            everyone = people.all_employees(conn)
        self.people = [e.id for e in everyone]
        self.admins = [e.id for e in everyone if e.has_role("admin")]
        self.world = World()
        self.decided: dict[int, tuple[Any, ...]] = {}  # assignment id -> its decision, as first seen
        self.versions: dict[int, int] = {}
        # step id -> the people who must act on it (as resolved at submit / resubmit, then reassigned)
        self.roster: dict[int, Counter[int]] = {}
        self.log: list[str] = []

    def teardown(self) -> None:
        self.backend.release(self.db)

    # ------------------------------------------------------------ helpers
    def _today(self) -> date:
        return self.clock().astimezone(TOKYO).date()

    def _delegates(self, of: int, request_type: str) -> list[int]:
        with self.db.unit_of_work(write=False) as conn:
            return sorted({d.to_id for d in people.delegations_from(conn, {of}, self.clock())
                           if d.covers(self.clock(), request_type)})

    def _may_act(self, actor: int, a: Assignment) -> bool:
        request = self.world.requests[a.request_id]
        return actor == a.approver_id or actor in self._delegates(a.approver_id, request.type)

    def _act(self, label: str, call: Callable[[], Outcome]) -> Outcome:
        """Run one use case; a refusal must leave every table as it was, a success must be audited."""
        with self.db.unit_of_work(write=False) as conn:
            before = dump(conn)
        outcome = call()
        with self.db.unit_of_work(write=False) as conn:
            after = dump(conn)
        self.log.append(f"{label} -> {outcome.ok} {outcome.code}")
        if not outcome.ok:
            assert after == before, f"{label} was refused ({outcome.code}) but changed the database: " \
                                    f"{_diff(before, after)}"
        else:
            assert len(after["audit_events"]) > len(before["audit_events"]), f"{label} succeeded unaudited"
        return outcome

    def _record_roster(self, outcome: Outcome) -> None:
        """After a submit or resubmit: the people of each step of the new round."""
        if not outcome.ok:
            return
        assert outcome.request is not None
        with self.db.unit_of_work(write=False) as conn:
            request = rq.get_request(conn, outcome.request.id)
            assert request is not None
            current = {s.id for s in rq.steps_of(conn, request.id, request.round)}
            for a in rq.assignments_of(conn, request.id):
                if a.step_id in current:
                    self.roster.setdefault(a.step_id, Counter())[a.approver_id] += 1

    def _actor(self, data: st.DataObject, a: Assignment) -> int:
        """Mostly the approver; sometimes a delegate, the requester or anybody at all."""
        kind = data.draw(st.sampled_from(["approver", "approver", "approver", "delegate", "requester", "anyone"]),
                         label="actor kind")
        request = self.world.requests[a.request_id]
        delegates = self._delegates(a.approver_id, request.type)
        if kind == "approver" or (kind == "delegate" and not delegates):
            return a.approver_id
        if kind == "delegate":
            return data.draw(st.sampled_from(delegates), label="delegate")
        if kind == "requester":
            return request.requester_id
        return data.draw(st.sampled_from(self.people), label="anyone")

    def _requester_or_anyone(self, data: st.DataObject, request: Request) -> int:
        if data.draw(st.integers(0, 3), label="by the requester") > 0:
            return request.requester_id
        return data.draw(st.sampled_from(self.people), label="anyone")

    def _reason(self, data: st.DataObject) -> str | None:
        return data.draw(st.sampled_from(["金額を確認してください", "添付がありません", "日付が違います", "再確認を",
                                          None, "   "]), label="comment")

    # ------------------------------------------------------------ rules
    @initialize(start=st.sampled_from([
        datetime(2026, 6, 2, 1, 0, tzinfo=UTC),  # Tuesday 10:00 JST
        datetime(2027, 3, 31, 14, 30, tzinfo=UTC),  # 23:30 JST on the last day of fiscal 2026
        datetime(2026, 12, 28, 8, 0, tzinfo=UTC),  # the day before the New Year closure
    ]))
    def start_clock(self, start: datetime) -> None:
        self.clock.now = start

    @initialize(data=st.data())
    def opening_requests(self, data: st.DataObject) -> None:
        """A few requests filed first, so every example has cards to click (rules may be switched off)."""
        for type_key in data.draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4), label="opening types"):
            requester = data.draw(st.sampled_from([self.org.alice, self.org.bob, self.org.manager, self.org.legal]),
                                  label="requester")
            payload = data.draw(valid_payload(type_key, self._today()), label="payload")
            self._record_roster(self._act(f"submit {type_key} by {requester}",
                                          functools.partial(self.engine.submit, requester, type_key, payload)))

    @rule(hours=st.sampled_from([1, 5, 24, 72, 240]))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(hours=hours)

    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        requester = data.draw(st.sampled_from(self.people), label="requester")
        type_key = data.draw(st.sampled_from([*TYPES, *TYPES, "no_such_type"]), label="type")
        payload = data.draw(payload_for(type_key if type_key in TYPES else "it", self._today()), label="payload")
        outcome = self._act(f"submit {type_key} by {requester}",
                            lambda: self.engine.submit(requester, type_key, payload))
        self._record_roster(outcome)
        if outcome.ok:
            assert outcome.request is not None and outcome.request.requester_id == requester
        else:
            assert outcome.code in ("invalid", "no_approver", "unknown_type"), outcome.code

    @precondition(lambda self: self.world.live("pending", "approval"))
    @rule(data=st.data())
    def decide(self, data: st.DataObject) -> None:
        """A click on a live card: approve, reject or send back (to the applicant or an earlier step)."""
        a = self.world.assigns[data.draw(st.sampled_from(self.world.live("pending", "approval")), label="card")]
        request, step = self.world.requests[a.request_id], self.world.steps[a.step_id]
        actor = self._actor(data, a)
        decision = data.draw(st.sampled_from(["approve", "approve", "approve", "reject", "send_back", "send_back"]),
                             label="decision")
        comment = self._reason(data)
        to_step, earlier = None, [s.key for s in self.world.steps.values()
                                  if s.request_id == request.id and s.round == request.round
                                  and s.position < step.position]
        if decision == "send_back":
            to_step = data.draw(st.sampled_from([None, *earlier, *earlier, step.key, "nowhere"]), label="to step")
        may_act = self._may_act(actor, a)
        outcome = self._act(f"{decision} #{a.id} of {request.number} by {actor} to {to_step} ({comment!r})",
                            lambda: self.engine.decide(a.id, actor, decision, comment, to_step=to_step))
        if outcome.ok:
            assert may_act and actor != request.requester_id, (actor, a)
        reason_ok = decision == "approve" or (comment or "").strip()
        if may_act and actor != request.requester_id and reason_ok and (to_step is None or to_step in earlier):
            # a live card clicked by someone entitled always applies (leave may find the balance gone)
            assert outcome.ok or outcome.code == "insufficient_leave", (outcome.code, outcome.message)

    @precondition(lambda self: self.world.assigns)
    @rule(data=st.data())
    def click_any_card(self, data: st.DataObject) -> None:
        """Anyone clicks any card ever sent (old rounds, decided, cancelled) or an id that never existed."""
        ids = list(self.world.assigns)
        assignment_id = data.draw(st.sampled_from([*ids, max(ids) + 1000]), label="card")
        a = self.world.assigns.get(assignment_id)
        actor = self._actor(data, a) if a else data.draw(st.sampled_from(self.people), label="anyone")
        action = data.draw(st.sampled_from(["approve", "reject", "send_back", "claim", "resolve"]), label="action")
        before = a.status if a else None
        if action in ("claim", "resolve"):
            call = self.engine.claim if action == "claim" else self.engine.resolve
            outcome = self._act(f"{action} #{assignment_id} by {actor}", lambda: call(assignment_id, actor))
        else:
            outcome = self._act(f"{action} #{assignment_id} by {actor}",
                                lambda: self.engine.decide(assignment_id, actor, action, "理由"))  # type: ignore
        if outcome.ok:
            assert a is not None and self._may_act(actor, a)
            assert before == ("claimed" if action == "resolve" else "pending")
        elif a is not None and before in DECIDED:
            assert outcome.code in ("already_decided", "request_closed", "not_queue", "not_allowed",
                                    "self_approval", "step_closed"), outcome.code

    @precondition(lambda self: self.world.live("pending", "queue"))
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        a = self.world.assigns[data.draw(st.sampled_from(self.world.live("pending", "queue")), label="card")]
        request = self.world.requests[a.request_id]
        actor = self._actor(data, a)
        outcome = self._act(f"claim #{a.id} of {request.number} by {actor}", lambda: self.engine.claim(a.id, actor))
        entitled = self._may_act(actor, a) and actor != request.requester_id
        assert outcome.ok == entitled, (outcome.code, outcome.message)

    @precondition(lambda self: self.world.live("claimed"))
    @rule(data=st.data())
    def resolve(self, data: st.DataObject) -> None:
        a = self.world.assigns[data.draw(st.sampled_from(self.world.live("claimed")), label="card")]
        request = self.world.requests[a.request_id]
        actor = self._actor(data, a)
        outcome = self._act(f"resolve #{a.id} of {request.number} by {actor}",
                            lambda: self.engine.resolve(a.id, actor, "再設定しました"))
        entitled = self._may_act(actor, a) and actor != request.requester_id
        assert outcome.ok == entitled, (outcome.code, outcome.message)

    @precondition(lambda self: self.world.requests)
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        request = self.world.requests[data.draw(st.sampled_from(sorted(self.world.requests)), label="request")]
        actor = self._requester_or_anyone(data, request)
        outcome = self._act(f"withdraw {request.number} by {actor}",
                            lambda: self.engine.withdraw(request.id, actor, "やっぱりやめます"))
        expected = actor == request.requester_id and request.status in ("pending", "sent_back")
        assert outcome.ok == expected, (outcome.code, request.status)

    @precondition(lambda self: self.world.requests)
    @rule(data=st.data())
    def resubmit(self, data: st.DataObject) -> None:
        sent_back = self.world.with_status("sent_back")
        if sent_back and data.draw(st.integers(0, 3), label="a sent-back one") > 0:
            request = self.world.requests[data.draw(st.sampled_from(sent_back), label="request")]
        else:
            request = self.world.requests[data.draw(st.sampled_from(sorted(self.world.requests)), label="request")]
        actor = self._requester_or_anyone(data, request)
        payload = data.draw(payload_for(request.type, self._today()), label="payload")
        outcome = self._act(f"resubmit {request.number} by {actor}",
                            lambda: self.engine.resubmit(request.id, actor, payload))
        self._record_roster(outcome)
        if outcome.ok:
            assert actor == request.requester_id and request.status == "sent_back"
            assert outcome.request is not None and outcome.request.round == request.round + 1
            assert outcome.request.number == request.number
        elif actor == request.requester_id and request.status == "sent_back":
            assert outcome.code in ("invalid", "no_approver"), outcome.code

    @precondition(lambda self: self.world.undecided())
    @rule(data=st.data())
    def reassign(self, data: st.DataObject) -> None:
        a = self.world.assigns[data.draw(st.sampled_from(self.world.undecided()), label="card")]
        request = self.world.requests[a.request_id]
        actor = data.draw(st.sampled_from([*self.admins, *self.admins, *self.people]), label="actor")
        # sometimes to someone already on the same step (a colleague on the panel)
        colleagues = sorted({x.approver_id for x in self.world.assigns.values()
                             if x.step_id == a.step_id and x.undecided and x.id != a.id})
        pool = colleagues if colleagues and data.draw(st.integers(0, 2), label="to a colleague") == 0 else self.people
        target = data.draw(st.sampled_from(pool), label="new approver")
        outcome = self._act(f"reassign #{a.id} of {request.number} by {actor} to {target}",
                            lambda: self.engine.reassign(a.id, actor, target, "不在のため"))
        entitled = actor in self.admins and request.status == "pending" and actor != request.requester_id
        on_step = {x.approver_id for x in self.world.assigns.values()
                   if x.step_id == a.step_id and x.status not in ("superseded", "cancelled")}
        if target in on_step:  # the engine may refuse to give one person two seats (or the same seat again)
            assert entitled or not outcome.ok, (outcome.code, outcome.message)
        else:
            assert outcome.ok == (entitled and target != request.requester_id), (outcome.code, outcome.message)
        if outcome.ok:
            self.roster[a.step_id][a.approver_id] -= 1
            self.roster[a.step_id][target] += 1

    @rule(data=st.data())
    def delegate(self, data: st.DataObject) -> None:
        giver = data.draw(st.sampled_from(self.people), label="from")
        taker = data.draw(st.sampled_from(self.people), label="to")
        starts = self.clock() + timedelta(hours=data.draw(st.sampled_from([-1, 0, 2]), label="starts in"))
        ends = starts + timedelta(hours=data.draw(st.sampled_from([-1, 3, 48, 24 * 30]), label="lasts"))
        types = data.draw(st.sampled_from([None, None, ["expense"], ["council", "it"], ["bogus"]]), label="types")
        outcome = self._act(f"delegate {giver} -> {taker} {types}",
                            lambda: self.engine.delegate(giver, taker, starts, ends, types))
        assert outcome.ok == (giver != taker and ends > starts and types != ["bogus"]), outcome.code

    # ------------------------------------------------------------ invariants
    @invariant()
    def tables_are_consistent(self) -> None:
        world = World()
        with self.db.unit_of_work(write=False) as conn:
            ids = list(conn.execute(sa.select(rq.requests.c.id).order_by(rq.requests.c.id)).scalars())
            requests = [r for r in (rq.get_request(conn, i) for i in ids) if r is not None]
            pending_nudges = [n for r in requests for n in messaging.nudges_for(conn, r.id) if n.state == "pending"]
            all_assigns = world.assigns
            for request in requests:
                steps, assigns = rq.steps_of(conn, request.id), rq.assignments_of(conn, request.id)
                world.requests[request.id] = request
                world.steps.update({s.id: s for s in steps})
                all_assigns.update({a.id: a for a in assigns})
                self._check_request(conn, request, steps, assigns)
            self._check_decisions_stay(all_assigns)
            for n in pending_nudges:
                a = all_assigns[n.assignment_id]
                owner = next(r for r in requests if r.id == a.request_id)
                assert a.status in ("pending", "claimed") and owner.status == "pending", \
                    f"a reminder is still due for assignment {a} of {owner.number} ({owner.status})"
            _count, breaks = audit.verify(conn)
            assert not breaks, breaks
            self._check_numbers(conn, requests)
        self.world = world

    def _check_request(self, conn: Connection, request: Request, steps: list[Step],
                       assigns: list[Assignment]) -> None:
        where = f"{request.number} ({request.status}, round {request.round})"
        assert self.versions.get(request.id, 0) <= request.version, f"{where}: version went backwards"
        self.versions[request.id] = request.version
        of_step = {s.id: _current(s, assigns) for s in steps}
        for a in assigns:  # separation of duties, and authority
            assert a.approver_id != request.requester_id, f"{where}: the requester is an approver: {a}"
            if a.acted_by_id is not None:
                assert a.acted_by_id != request.requester_id, f"{where}: self-approval: {a}"
            if a.status in ACTED and a.acted_by_id is not None:
                assert a.decided_at is not None
                assert a.acted_by_id == a.approver_id or any(
                    d.to_id == a.acted_by_id and d.covers(a.decided_at, request.type)
                    for d in people.delegations_from(conn, {a.approver_id}, a.decided_at)
                ), f"{where}: {a.acted_by_id} acted without authority: {a}"
        current = [s for s in steps if s.round == request.round]
        assert current, f"{where}: no steps in the current round"
        for s in current:
            roster = set(+self.roster[s.id])  # the people this step must go to
            if s.kind == "approval" and s.status == "approved":
                approvals, needed, _pending = _tally(s, of_step[s.id])
                assert approvals >= needed, f"{where}: step {s.key} has {approvals} of {needed} approvals"
                approvers = {a.approver_id for a in of_step[s.id] if a.status == "approved"}
                if s.required == 0:  # all of them
                    assert roster <= approvers, f"{where}: all-of step {s.key} approved without " \
                                                f"{roster - approvers}; steps so far: {self.log}"
                else:  # N of M means N different people
                    assert len(approvers) >= s.required, f"{where}: step {s.key} needs {s.required} people, " \
                                                         f"approved by {approvers} only; steps so far: {self.log}"
            if s.kind == "approval" and s.status == "active":
                holders = {a.approver_id for a in of_step[s.id] if a.status not in ("superseded", "cancelled")}
                assert holders == roster, f"{where}: step {s.key} is in the hands of {holders}, not {roster}; " \
                                          f"steps so far: {self.log}"
        if request.status in ("approved", "resolved"):
            for s in current:
                assert s.status == DONE[s.kind], f"{where}: step {s.key} is {s.status}"
            assert (request.status == "resolved") == any(s.kind == "queue" for s in current), where
        if request.status == "pending":
            open_steps = [s for s in current if s.status in ("active", "claimed")]
            assert len(open_steps) == 1, f"{where}: open steps {[(s.key, s.status) for s in current]}"
            step = open_steps[0]
            for s in current:
                if s.position < step.position:
                    assert s.status == DONE[s.kind], f"{where}: earlier step {s.key} is {s.status}"
                elif s.position > step.position:
                    assert s.status == "waiting", f"{where}: later step {s.key} is {s.status}"
            live = [a for a in of_step[step.id] if a.status in ("pending", "claimed")]
            assert live, f"{where}: the open step {step.key} has nobody to act"
            if step.kind == "approval":
                approvals, needed, pending = _tally(step, of_step[step.id])
                assert approvals < needed <= approvals + pending, \
                    f"{where}: step {step.key}: {approvals} approved, {pending} pending, {needed} needed"
            current_ids = {s.id for s in current}
            for a in assigns:
                if a.undecided:
                    assert a.step_id in current_ids, f"{where}: open assignment in an old round: {a}"
                    s = next(x for x in current if x.id == a.step_id)
                    assert (a.status == "waiting") == (s.status == "waiting"), f"{where}: {a} on {s.key} {s.status}"
        else:
            for a in assigns:
                assert not a.undecided, f"{where}: a closed request still has open work: {a}"
            for s in current:
                assert s.status not in ("waiting", "active", "claimed"), f"{where}: step {s.key} is {s.status}"

    def _check_decisions_stay(self, assigns: dict[int, Assignment]) -> None:
        for a in assigns.values():
            if a.status in DECIDED and a.id not in self.decided:
                self.decided[a.id] = (a.status, a.acted_by_id, a.decided_at, a.comment)
        for assignment_id, decision in self.decided.items():
            a = assigns.get(assignment_id)
            now = (a.status, a.acted_by_id, a.decided_at, a.comment) if a else None
            assert now == decision, f"decided assignment {assignment_id} changed from {decision} to {now}; " \
                                    f"steps so far: {self.log}"

    def _check_numbers(self, conn: Connection, requests: list[Request]) -> None:
        policy = council_policy()
        by_series: dict[tuple[str, int], list[Request]] = {}
        for r in requests:
            local_day = r.created_at.astimezone(TOKYO).date()
            assert r.fiscal_year == fiscal_year(local_day, policy.company.fiscal_year_start_month), r
            by_series.setdefault((r.type, r.fiscal_year), []).append(r)
        for (type_key, fy), series in by_series.items():
            expected = [format_number(policy.types[type_key].prefix, fy, n) for n in range(1, len(series) + 1)]
            assert [r.number for r in sorted(series, key=lambda r: r.id)] == expected, (type_key, fy)
        assert not [n for n, c in Counter(r.number for r in requests).items() if c > 1]
        counters = {(t, fy): last for t, fy, last in conn.execute(sa.select(rq.request_counters))}
        assert counters == {k: len(v) for k, v in by_series.items()}


def _current(step: Step, assigns: list[Assignment]) -> list[Assignment]:
    """The assignments of a step as it now runs: a send-back to an earlier step starts the later steps again,
    and the assignments of an earlier cycle (kept as history) no longer count."""
    return [a for a in assigns if a.step_id == step.id and a.cycle == step.cycle]


def _tally(step: Step, assigns: list[Assignment]) -> tuple[int, int, int]:
    """(approvals, approvals needed, still pending) of one approval step."""
    counted = [a for a in assigns if a.status not in ("superseded", "cancelled")]
    approvals = sum(1 for a in counted if a.status == "approved")
    pending = sum(1 for a in counted if a.status == "pending")
    return approvals, step.required or len(counted), pending


SETTINGS = {
    "sqlite": settings(max_examples=60, stateful_step_count=30, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]),
    "postgresql": settings(max_examples=12, stateful_step_count=30, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]),
}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_engine_invariants_hold_for_any_sequence_of_use_cases(backend: str, request: pytest.FixtureRequest,
                                                               tmp_path: Path, sqlite_template: Path) -> None:
    store = (SqliteFiles(sqlite_template, tmp_path) if backend == "sqlite"
             else PostgresTruncated(request.getfixturevalue("pg_database")))
    machine = type(f"EngineMachine_{backend}", (EngineMachine,), {"backend": store})
    run_state_machine_as_test(machine, settings=SETTINGS[backend])


# ---------------------------------------------------------------- counterexamples the machine found, pinned
def _council(db: Database, org: Org, engine: Engine) -> int:
    """A large council request: review approved by fin1 and legal (hr's card cancelled), board now active."""
    submitted = engine.submit(org.alice, "council", {"subject": "新規取引先との契約", "amount": 3_000_000})
    assert submitted.ok and submitted.request is not None
    request_id = submitted.request.id
    for person in (org.finance1, org.legal):
        assert engine.decide(_card(db, request_id, person), person, "approve").ok
    return request_id


def _card(db: Database, request_id: int, person: int) -> int:
    with db.unit_of_work(write=False) as conn:
        [card] = [a.id for a in rq.assignments_of(conn, request_id) if a.approver_id == person
                  and a.status == "pending"]
    return card


def _assignments(db: Database, request_id: int) -> list[Assignment]:
    with db.unit_of_work(write=False) as conn:
        return rq.assignments_of(conn, request_id)


def test_a_refused_request_leaves_the_database_as_it_was(db: Database, org: Org, clock: Clock) -> None:
    """Outcome's promise: ok=False means nothing changed (the leave check must not leave grants behind)."""
    engine = Engine(db, council_policy(), clock=clock)
    with db.unit_of_work(write=False) as conn:
        before = dump(conn)
    one_day = {"unit": "full", "period": {"start": "2026-06-03", "end": "2026-06-03"}}
    assert engine.submit(org.ceo, "leave", one_day).code == "no_approver"  # nobody above the CEO
    summer = {"unit": "full", "period": {"start": "2026-06-03", "end": "2026-08-31"}}
    assert engine.submit(org.alice, "leave", summer).code == "invalid"  # more days than she has
    with db.unit_of_work(write=False) as conn:
        after = dump(conn)
    assert after == before, _diff(before, after)


def test_sending_back_to_an_earlier_step_keeps_the_decisions_already_made(
        db: Database, org: Org, clock: Clock) -> None:
    engine = Engine(db, council_policy(), clock=clock)
    request_id = _council(db, org, engine)
    decided = {a.id: (a.status, a.acted_by_id) for a in _assignments(db, request_id) if a.status == "approved"}
    head_card = _card(db, request_id, org.sales_head)
    assert engine.decide(head_card, org.sales_head, "send_back", "金額の根拠を確認してください",
                         to_step="review").ok
    after = {a.id: a for a in _assignments(db, request_id)}
    assert {i: (after[i].status, after[i].acted_by_id) for i in decided} == decided
    assert (after[head_card].status, after[head_card].acted_by_id) == ("sent_back", org.sales_head)
    # and a late click on the old card says who sent it back
    stale = engine.decide(head_card, org.sales_head, "approve")
    assert stale.code == "already_decided", stale.code


def test_a_step_started_again_still_needs_everyone_it_needed(db: Database, org: Org, clock: Clock) -> None:
    """After a send-back to an earlier step, each restarted step goes to all of its people again: the 2-of-3
    review to fin1, legal and hr, and the all-of board to the head AND the CEO."""
    engine = Engine(db, council_policy(), clock=clock)
    request_id = _council(db, org, engine)
    assert engine.decide(_card(db, request_id, org.sales_head), org.sales_head, "send_back",
                         "金額の根拠を確認してください", to_step="review").ok
    pending = sorted(a.approver_id for a in _assignments(db, request_id) if a.status == "pending")
    assert pending == sorted([org.finance1, org.legal, org.hr])
    for person in (org.finance1, org.legal):
        assert engine.decide(_card(db, request_id, person), person, "approve").ok
    board = sorted(a.approver_id for a in _assignments(db, request_id) if a.status == "pending")
    assert board == sorted([org.sales_head, org.ceo])
    outcome = engine.decide(_card(db, request_id, org.sales_head), org.sales_head, "approve")
    assert outcome.ok and outcome.request is not None
    assert outcome.request.status == "pending", "approved without the CEO, whom the board step requires"


def test_two_of_three_means_two_people_even_after_a_reassignment(db: Database, org: Org, clock: Clock) -> None:
    """An admin moves legal's review card to fin1, who already has one: fin1 alone must not make up the two
    approvals the review needs (the engine may refuse the move, or count people rather than cards)."""
    engine = Engine(db, council_policy(), clock=clock)
    submitted = engine.submit(org.alice, "council", {"subject": "新規取引先との契約", "amount": 1000})
    assert submitted.ok and submitted.request is not None
    request_id = submitted.request.id
    engine.reassign(_card(db, request_id, org.legal), org.admin, org.finance1, "法務が不在のため")
    for card in [a.id for a in _assignments(db, request_id) if a.approver_id == org.finance1
                 and a.status == "pending"]:
        engine.decide(card, org.finance1, "approve")
    with db.unit_of_work(write=False) as conn:
        review = next(s for s in rq.steps_of(conn, request_id) if s.key == "review")
    assert review.status == "active", "the 2-of-3 review was approved by one person"
