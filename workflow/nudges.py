"""Nudges: what is due at a moment, sent as ONE digest per person, in that person's working hours.

An open assignment carries at most two pending nudge rows, its next reminder and its next action (escalation,
then final), from its plan (workflow/nudge_plan.py). The engine writes the first ones in the transaction that
starts a step, and cancels an assignment's rows in the transaction that closes it. The scheduler's tick calls
`fire_due`, which in one transaction per batch:
1. takes the pending rows due by `now` through the index on (state, due_at), locked with SKIP LOCKED on
   PostgreSQL (the write transaction serialises tickers on SQLite), so every row is sent exactly once;
2. cancels rows whose assignment is no longer open (a safety net: decisions cancel them already);
3. lets rows whose recipient is outside working hours (their own zone, the company's business days: weekends,
   holidays, closures) wait until their next working morning: nothing is lost, nobody is pinged at 23:00;
4. writes ONE outbox row per recipient (a digest, oldest request first), however many rows were due, so hours
   of downtime end in one catch-up digest per person, not a burst; a reminder taken late says the most pressing
   reminder of the plan fallen due meanwhile (before due, due, overdue), and is recorded as that;
5. writes each taken row's successor in its chain: the plan's next reminder still ahead, or once overdue the
   next back-off reminder (every business day, then every 2, from the policy) counted from now; after an
   escalation, the final deadline (due already after downtime: the next round of the same tick takes it). It
   resolves escalations: the approver's manager (or the policy's role or person) gets the item in
   their digest and may act for the approver (`escalated_to`; the audit trail records on whose behalf).
6. carries out the type's final policy (workflows.yaml `nudges.final`) on the `final` rows: one per assignment,
   `final_after_business_days` after the step's due time (past the escalation, so written when the escalation is
   taken, or by the engine if there is none), unless the policy is `stay`:
   - `stay`: nothing more; the request stays pending, overdue reminders go on (the default);
   - `return_to_requester`: after the batch commits, `Engine.expire` sends the request back to the requester,
     one transaction per row: a system action (audit `by: system`, reason overdue / 期限超過), a note in the
     requester's language, the step's nudges cancelled, every card refreshed. Only an assignment still waiting
     for a decision (`pending`; a claimed queue item is being worked on and is left alone); a decision that
     lands first wins and the row then changes nothing;
   - `auto_approve_inform`: NEVER approves an approval or queue step. It could only complete a step that needs
     no judgement (a 回覧, kind `inform`), and such steps pass the moment they start (the engine marks them
     informed at once), so they never wait for a final deadline: the value is refused by policy validation
     (`config.policy.FINAL_AUTO_APPROVE_REFUSED`), and a policy built without validation behaves as `stay`.
   Final rows are actions, not reminders: they are not in digests and do not wait for working hours (their due
   time is the due time's clock time, business days later).

`snooze` ("明日リマインド") pushes a person's reminders to the next business day's working-hours start.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from config.policy import Policy
from models import messaging, people
from models import requests as rq
from models.db import Database
from models.messaging import Nudge
from models.people import Employee
from workflow import audit, nudge_plan
from workflow.calendar import BusinessCalendar
from workflow.engine import Engine, calendar_for
from workflow.nudge_plan import ACTIONS, ESCALATION, FINAL, OVERDUE, REMINDERS, Moment, NudgePlan, plan_for

DIGEST_KIND = "nudge_digest"
SNOOZED = "snoozed"
BATCH = 500  # rows per transaction; a person's rows of one moment are almost always in one batch
SEVERITY = {"before_due": 0, "due": 1, SNOOZED: 1, "overdue": 2, "escalation": 3}


@dataclass
class TickReport:
    """What one tick did (the CLI prints it)."""

    digests: int = 0  # outbox rows written, one per person
    nudges: int = 0  # nudge rows sent in them
    deferred: int = 0  # due, but their recipient is off work: they wait for working hours
    cancelled: int = 0  # their assignment had closed
    escalated: int = 0
    returned: int = 0  # requests sent back to their requester by the final policy (return_to_requester)

    def add(self, other: TickReport) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def done(self) -> int:
        return self.nudges


@dataclass(frozen=True)
class OpenItem:
    """The assignment a nudge is about, with what the tick needs of its request and step."""

    assignment_id: int
    approver_id: int
    status: str
    request_id: int
    request_status: str
    type: str
    requester_id: int
    created_at: datetime
    due_at: datetime | None

    @property
    def open(self) -> bool:
        return self.status in ("pending", "claimed") and self.request_status == "pending"


def open_items(conn: Connection, assignment_ids: list[int]) -> dict[int, OpenItem]:
    """The assignments with their request and step, in one statement (primary-key lookups)."""
    if not assignment_ids:
        return {}
    a, r, s = rq.assignments, rq.requests, rq.steps
    rows = conn.execute(
        sa.select(a.c.id, a.c.approver_id, a.c.status, r.c.id.label("request_id"),
                  r.c.status.label("request_status"), r.c.type, r.c.requester_id, r.c.created_at, s.c.due_at)
        .join(r, r.c.id == a.c.request_id).join(s, s.c.id == a.c.step_id)
        .where(a.c.id.in_(sorted(set(assignment_ids)))))
    return {row.id: OpenItem(row.id, row.approver_id, row.status, row.request_id, row.request_status, row.type,
                             row.requester_id, row.created_at, row.due_at) for row in rows}


def next_morning(calendar: BusinessCalendar, now: datetime, tz: str) -> datetime:
    """The start of working hours on the next business day, in the person's zone (a snooze's target)."""
    zone = _zone(tz, calendar.tz)
    day = calendar.next_business_day(now.astimezone(zone).date())
    return datetime.combine(day, calendar.work_start, zone).astimezone(UTC)


def _zone(name: str | None, fallback: ZoneInfo) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else fallback
    except Exception:  # an unknown zone in the org data must not stop the tick
        return fallback


def _tz_name(person: Employee, calendar: BusinessCalendar) -> str:
    return _zone(person.timezone, calendar.tz).key


# ------------------------------------------------------------------------------------------------ escalation


def escalation_targets(conn: Connection, ref: str, approver: Employee, requester_id: int) -> list[Employee]:
    """Whom an overdue assignment escalates to: `manager[:N]` of the approver, their `department_head`, a
    `role:<name>`'s holders or a `person:<email>`; never the approver or the requester; inactive people are
    skipped up the chain. Nobody found: the admins."""
    barred = {approver.id, requester_id}

    def usable(p: Employee | None) -> bool:
        return p is not None and p.active and p.id not in barred

    found: list[Employee] = []
    if ref.startswith("manager"):
        levels = int(ref.partition(":")[2] or 1)
        person: Employee | None = approver
        for _ in range(20):  # a longer chain is a cycle in the data
            person = people.get_employee(conn, person.manager_id) if person and person.manager_id else None
            if person is None:
                break
            levels -= 1
            if levels <= 0 and usable(person):
                found = [person]
                break
    elif ref == "department_head":
        dept = people.get_department(conn, approver.department_id) if approver.department_id else None
        while dept is not None and not found:
            head = people.get_employee(conn, dept.head_id) if dept.head_id else None
            found = [head] if head is not None and usable(head) else []
            dept = people.get_department(conn, dept.parent_id) if dept.parent_id and not found else None
    elif ref.startswith("role:"):
        found = [p for p in people.employees_with_role(conn, ref[5:]) if usable(p)]
    elif ref.startswith("person:"):
        person = people.find_employee_by_email(conn, ref[7:].lower())
        found = [person] if person is not None and usable(person) else []
    return found or [p for p in people.employees_with_role(conn, "admin") if usable(p)]


# ------------------------------------------------------------------------------------------------ the tick


@dataclass
class _Round:
    """One batch's decisions, applied at the end of its transaction."""

    report: TickReport = field(default_factory=TickReport)
    sent: list[Nudge] = field(default_factory=list)
    items: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    escalations: list[tuple[Nudge, list[Employee]]] = field(default_factory=list)
    finals: list[Nudge] = field(default_factory=list)  # return_to_requester rows, carried out after the commit
    said: dict[int, str] = field(default_factory=dict)  # a reminder row taken late says the most pressing one due
    plans: dict[int, NudgePlan | None] = field(default_factory=dict)  # per assignment: made once a round
    again: bool = False  # a row written this round is due already (a final deadline passed with its escalation)


class Nudger:
    """The nudge work of the tick over one database and policy."""

    def __init__(self, db: Database, policy: Policy, *, calendar: BusinessCalendar | None = None,
                 batch: int = BATCH) -> None:
        self.db, self.policy, self.batch = db, policy, batch
        self.calendar = calendar or calendar_for(policy)

    def tick(self, now: datetime, stop: Callable[[], bool] = lambda: False) -> TickReport:
        """Everything due by `now`: digests in working hours, back-off, escalations. `stop`: asked after each
        round (one transaction of `batch` rows); once it says so (the process is shutting down) the rest stays
        due for the next tick, here or on another replica."""
        report = TickReport()
        while True:
            with self.db.unit_of_work() as conn:
                seen, state = self._round(conn, now)
            report.add(state.report)
            report.returned += self._finals(state.finals, now)
            if (seen < self.batch and not state.again) or stop():
                break
        return report

    def _round(self, conn: Connection, now: datetime) -> tuple[int, _Round]:
        due = messaging.due_nudges(conn, now, self.batch)
        if not due:
            return 0, _Round()
        found = open_items(conn, [n.assignment_id for n in due])
        state = _Round()
        stale = [n.id for n in due if not (n.assignment_id in found and found[n.assignment_id].open)]
        state.report.cancelled = len(messaging.close_nudges(conn, stale, "cancelled", now))
        live = [n for n in due if n.id not in set(stale)]
        self._sort_finals(conn, state, [n for n in live if n.kind == FINAL], found, now)
        live = [n for n in live if n.kind != FINAL]
        recipients = self._recipients(conn, live, found)
        deferrals: list[tuple[int, datetime]] = []
        for n in live:
            whom = recipients.get(n.id, [])
            if whom and not self._working(whom[0], now):
                deferrals.append((n.id, self.calendar.next_working_moment(now, _tz_name(whom[0], self.calendar))))
            elif whom:
                self._take(state, n, whom, found[n.assignment_id], now)
        messaging.defer_nudges(conn, deferrals)
        state.report.deferred = len(deferrals)
        no_one = [n for n in live if not recipients.get(n.id)]
        unheard = set(messaging.close_nudges(conn, [n.id for n in no_one], "cancelled", now))
        state.report.cancelled += len(unheard)
        self._send(conn, state, found, now)
        # the chains go on: a row nobody could be told (an inactive approver) is followed as a sent one is
        self._follow(conn, state, state.sent + [n for n in no_one if n.id in unheard], found, now)
        return len(due), state

    def _sort_finals(self, conn: Connection, state: _Round, finals: list[Nudge], found: dict[int, OpenItem],
                     now: datetime) -> None:
        """The final rows of this batch: `return_to_requester` on an assignment still waiting for a decision is
        kept for `Engine.expire` (the row stays pending, locked by this transaction until it commits); any other
        (`stay`, `auto_approve_inform`, a claimed queue item) is closed here and nothing else happens."""
        for n in finals:
            item = found[n.assignment_id]
            final = self.policy.nudges_for(item.type).final if item.type in self.policy.types else "stay"
            if final == "return_to_requester" and item.status == "pending":
                state.finals.append(n)
        kept = {n.id for n in state.finals}
        state.report.cancelled += len(messaging.close_nudges(conn, [n.id for n in finals if n.id not in kept],
                                                             "cancelled", now))

    def _finals(self, finals: list[Nudge], now: datetime) -> int:
        """Carry out `return_to_requester`, one use case (one transaction) per row; how many requests went back.
        A row the engine refuses (decided meanwhile, or another ticker took it) is closed if still pending."""
        if not finals:
            return 0
        engine = Engine(self.db, self.policy, calendar=self.calendar, clock=lambda: now)
        returned, refused = 0, []
        for n in finals:
            outcome = engine.expire(n.assignment_id, now, nudge_id=n.id)
            if outcome.ok:
                returned += 1
            else:
                refused.append(n.id)
        if refused:
            with self.db.unit_of_work() as conn:
                messaging.close_nudges(conn, refused, "cancelled", now)
        return returned

    def _recipients(self, conn: Connection, due: list[Nudge], found: dict[int, OpenItem]) -> dict[int, list[Employee]]:
        """Who each row goes to: its target, or for an escalation the people it escalates to (active only)."""
        staff = people.get_employees(conn, {n.target_id for n in due})
        out: dict[int, list[Employee]] = {}
        for n in due:
            target = staff.get(n.target_id)
            if n.kind == "escalation" and target is not None:
                ref = self.policy.nudges_for(found[n.assignment_id].type).escalate_to \
                    if found[n.assignment_id].type in self.policy.types else "manager"
                out[n.id] = escalation_targets(conn, ref, target, found[n.assignment_id].requester_id)
            else:
                out[n.id] = [target] if target is not None and target.active else []
        return out

    def _working(self, person: Employee, now: datetime) -> bool:
        return self.calendar.is_working_time(now, _tz_name(person, self.calendar))

    def _plan(self, state: _Round, item: OpenItem) -> NudgePlan | None:
        """The assignment's plan (None: its type is gone from the policy, or its step has no due time)."""
        if item.assignment_id not in state.plans:
            due = item.due_at
            state.plans[item.assignment_id] = (
                plan_for(self.calendar, self.policy, self.policy.nudges_for(item.type), due)
                if item.type in self.policy.types and due is not None else None)
        return state.plans[item.assignment_id]

    def _says(self, state: _Round, n: Nudge, item: OpenItem, now: datetime) -> str:
        """What a row tells its recipient: a reminder taken late, the most pressing reminder fallen due by now."""
        plan = self._plan(state, item) if n.kind in REMINDERS else None
        return plan.reminder_due(n.kind, now) if plan is not None else n.kind

    def _take(self, state: _Round, n: Nudge, whom: list[Employee], item: OpenItem, now: datetime) -> None:
        state.sent.append(n)
        said = state.said[n.id] = self._says(state, n, item, now)
        for person in whom:
            state.items[person.id].append({"assignment_id": n.assignment_id, "request_id": item.request_id,
                                           "nudge": said, "approver_id": item.approver_id,
                                           "_order": (item.created_at, item.request_id), "_nudge_id": n.id})
        if n.kind == ESCALATION:
            state.escalations.append((n, whom))
            state.report.escalated += 1

    def _send(self, conn: Connection, state: _Round, found: dict[int, OpenItem], now: datetime) -> None:
        sent_ids = set(messaging.close_nudges(conn, [n.id for n in state.sent], "sent", now))
        state.sent = [n for n in state.sent if n.id in sent_ids]
        state.report.nudges = len(state.sent)
        outbox: list[dict[str, Any]] = []
        shows: dict[str, list[int]] = {}  # each digest's idempotency key -> the requests it shows
        for recipient_id, items in state.items.items():
            items = _one_per_assignment([i for i in items if i["_nudge_id"] in sent_ids])
            if not items:
                continue
            first = min(i["_nudge_id"] for i in items)
            key = f"{DIGEST_KIND}:{recipient_id}:{first}"
            shows[key] = [int(i["request_id"]) for i in items]
            outbox.append({
                "idempotency_key": key, "recipient_id": recipient_id,
                "kind": DIGEST_KIND, "request_id": None,
                "payload": {"kind": DIGEST_KIND, "at": now.isoformat(),
                            "items": [{k: v for k, v in i.items() if not k.startswith("_")} for i in items]},
                "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now})
        messaging.enqueue(conn, outbox)
        # which requests each digest shows: a decision on one of them updates the posted digest (every copy)
        messaging.link_digests(conn, shows)
        state.report.digests = len(outbox)
        # a row that said more than its kind is recorded as what it said (the overdue back-off counts them)
        messaging.relabel_nudges(conn, {n.id: state.said[n.id] for n in state.sent if state.said[n.id] != n.kind})
        self._escalated(conn, [(n, whom) for n, whom in state.escalations if n.id in sent_ids], found, now)

    def _follow(self, conn: Connection, state: _Round, taken: list[Nudge], found: dict[int, OpenItem],
                now: datetime) -> None:
        """Each taken row's chain goes on (workflow/nudge_plan.py): after a reminder, the plan's next reminder still
        ahead, or once overdue the back-off's next one (the policy's next gap, the last repeating, counted from
        now, so a catch-up after downtime is not followed by a burst); after an escalation, the final deadline."""
        overdue = [n.assignment_id for n in taken if state.said.get(n.id, n.kind) == OVERDUE]
        counts = messaging.sent_counts(conn, overdue, OVERDUE)
        # a chain that has a pending row already is not given another (rows written before the plans were
        # chains, a row added by hand): one row per chain, however the table came to be
        pending = messaging.pending_kinds(conn, [n.assignment_id for n in taken])
        rows = []
        for n in taken:
            item = found[n.assignment_id]
            after = self._after(self._plan(state, item), n, state.said.get(n.id, n.kind), item, counts, now)
            if after is None or pending.get(n.assignment_id, set()) & set(_chain_of(after[0])):
                continue
            rows.append({"request_id": n.request_id, "assignment_id": n.assignment_id,
                         "target_id": item.approver_id, "kind": after[0], "due_at": after[1], "state": "pending"})
            state.again = state.again or after[1] <= now
        messaging.schedule_nudges(conn, rows)

    def _after(self, plan: NudgePlan | None, n: Nudge, said: str, item: OpenItem, counts: dict[int, int],
               now: datetime) -> Moment | None:
        """The row that follows `n` in its chain, if any (a snoozed or final row has none)."""
        if plan is None:
            return None
        if n.kind in REMINDERS:
            return plan.next_reminder(now) or (self._back_off(item, n, counts, now) if said == OVERDUE else None)
        return plan.action_after(n.kind) if n.kind == ESCALATION else None

    def _back_off(self, item: OpenItem, n: Nudge, counts: dict[int, int], now: datetime) -> Moment | None:
        gaps = self.policy.nudges_for(item.type).overdue_every_business_days
        if not gaps:
            return None
        gap = gaps[min(counts.get(n.assignment_id, 1), len(gaps) - 1)]
        return OVERDUE, nudge_plan.shift(self.calendar, self.policy, max(n.due_at, now), gap)

    def _escalated(self, conn: Connection, escalations: list[tuple[Nudge, list[Employee]]],
                   found: dict[int, OpenItem], now: datetime) -> None:
        """Record who each escalation went to: the row's target becomes the (first) person, one more sent row per
        further person, so `escalated_to` lets each of them act; and an audit event."""
        entries, extra = [], []
        for n, whom in escalations:
            messaging.set_target(conn, n.id, whom[0].id)
            extra += [{"request_id": n.request_id, "assignment_id": n.assignment_id, "target_id": p.id,
                       "kind": "escalation", "due_at": n.due_at, "state": "sent", "sent_at": now} for p in whom[1:]]
            entries.append(audit.Entry("assignment.escalated", None, n.request_id, {
                "assignment": n.assignment_id, "approver": found[n.assignment_id].approver_id,
                "to": [p.id for p in whom]}))
        if extra:
            conn.execute(messaging.nudges.insert(), extra)
        audit.record(conn, now, entries)


def _chain_of(kind: str) -> tuple[str, ...]:
    return REMINDERS if kind in REMINDERS else ACTIONS


def _one_per_assignment(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An assignment appears once in a digest, as its most pressing nudge; oldest request first."""
    best: dict[int, dict[str, Any]] = {}
    for i in items:
        held = best.get(i["assignment_id"])
        if held is None or SEVERITY.get(i["nudge"], 0) > SEVERITY.get(held["nudge"], 0):
            best[i["assignment_id"]] = i
    return sorted(best.values(), key=lambda i: i["_order"])


def fire_due(db: Database, policy: Policy, now: datetime, stop: Callable[[], bool] = lambda: False) -> int:
    """The scheduler's due-work entry for nudges: how many nudges went out."""
    return Nudger(db, policy).tick(now, stop).done


# ------------------------------------------------------------------------------------------------ snooze


def snooze(db: Database, calendar: BusinessCalendar, person: Employee, digest_id: int | None,
           now: datetime) -> datetime:
    """"Remind me tomorrow": the person's reminders due before the next business day's working-hours start move
    there, and each item of the digest they clicked is reminded then (escalations are not theirs to postpone).
    Returns when that is. Repeating the click changes nothing more."""
    until = next_morning(calendar, now, _tz_name(person, calendar))
    with db.unit_of_work() as conn:
        waiting = messaging.pending_reminders_of(conn, person.id, until + timedelta(microseconds=1))
        messaging.defer_nudges(conn, [(n.id, until) for n in waiting if n.due_at < until])
        covered = {n.assignment_id for n in waiting}
        digest = messaging.get_outbox(conn, digest_id) if digest_id is not None else None
        items = digest.payload.get("items", []) if digest and digest.recipient_id == person.id else []
        found = open_items(conn, [int(i["assignment_id"]) for i in items])
        rows = [{"request_id": f.request_id, "assignment_id": f.assignment_id, "target_id": person.id,
                 "kind": SNOOZED, "due_at": until, "state": "pending"}
                for f in found.values() if f.open and f.assignment_id not in covered]
        messaging.schedule_nudges(conn, rows)
    return until
