"""The approval engine: every use case a request lives through, each ONE unit of work.

submit, decide (approve / reject / send back), withdraw, resubmit, claim and resolve (queues), reassign,
delegate. Each is a plain synchronous method that opens one transaction, reads the request under a lock
(FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite), changes rows with conditional updates, appends audit
events and enqueues outbox messages and nudges in that same transaction. A stale, repeated or concurrent
action changes nothing and answers why ("already approved by 佐藤 at 10:32").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Policy, RequestTypeSpec
from models import messaging, people
from models import requests as rq
from models.db import Database
from models.people import Employee
from models.requests import Assignment, Request, Step
from workflow import audit, delivery, expense, forms, leave
from workflow import messages as msg
from workflow.calendar import BusinessCalendar
from workflow.leave_law import InsufficientLeave, format_days
from workflow.nudge_plan import plan_for
from workflow.numbering import fiscal_year, format_number
from workflow.outcomes import Outcome, refused
from workflow.routes import ResolvedStep, RouteError, resolve_route

Decision = Literal["approve", "reject", "send_back"]
Clock = Callable[[], datetime]
# told of every decision-like use case (decide, claim, resolve, reassign) once its unit of work is over: the outcome
# and the seconds it took (bot/metrics.py counts decisions and their latency with it)
DecisionObserver = Callable[[Outcome, float], None]
_DECIDED = {"approve": "approved", "reject": "rejected", "send_back": "sent_back"}


def calendar_for(policy: Policy) -> BusinessCalendar:
    """The company's business calendar from workflows.yaml."""
    company = policy.company
    return BusinessCalendar(
        timezone=company.timezone, work_start=company.working_hours.start, work_end=company.working_hours.end,
        annual_closures=[c.month_days() for c in company.closures],
        closed_dates=[datetime.fromisoformat(d).date() for d in company.closed_dates],
        open_dates=[datetime.fromisoformat(d).date() for d in company.open_dates],
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Changes:
    """What one unit of work will append: audit entries and outbox messages, flushed before commit."""

    now: datetime
    audit: list[audit.Entry] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    nudges: list[dict[str, Any]] = field(default_factory=list)

    def notify(self, kind: str, recipient_id: int, request: Request, version: int, **data: Any) -> None:
        tail = f"{data.get('assignment_id', '')}{':channel' if data.get('channel') else ''}"
        self.outbox.append({
            "idempotency_key": f"{kind}:{request.id}:v{version}:{recipient_id}:{tail}",
            "recipient_id": recipient_id, "kind": kind, "request_id": request.id,
            "payload": {"kind": kind, "request_id": request.id, "number": request.number, "type": request.type,
                        **data},
            "state": "pending", "attempts": 0, "next_attempt_at": self.now, "created_at": self.now,
            "priority": delivery.priority_of(kind),
        })

    def flush(self, conn: Connection) -> None:
        messaging.enqueue(conn, self.outbox)
        messaging.schedule_nudges(conn, self.nudges)
        audit.record(conn, self.now, self.audit)


_Row = TypeVar("_Row", Step, Assignment, Outcome)


def _with(row: _Row, **values: Any) -> _Row:
    """`dataclasses.replace` for the rows a `_Route` keeps in step (Step, Assignment) and for outcomes (frozen,
    plain fields, no __post_init__): the same fields with some changed, without replace's walk over the fields
    and its call to __init__ (0.8 us against 2.6; a decision changes four rows). A name that is no field is
    refused, as replace refuses it."""
    fields_ = row.__dict__
    if not fields_.keys() >= values.keys():
        raise TypeError(f"{type(row).__name__} has no field(s) {sorted(values.keys() - fields_.keys())}")
    new = object.__new__(type(row))
    new.__dict__.update(fields_, **values)  # a frozen dataclass refuses setattr, not its __dict__
    return new


@dataclass
class _Route:
    """The request's steps (current round) and assignments (all rounds), read once per use case and kept in
    step with every update this unit of work makes, so no use case reads them twice."""

    conn: Connection
    request: Request
    steps: list[Step]
    assigns: list[Assignment]

    @classmethod
    def load(cls, conn: Connection, request: Request) -> _Route:
        return cls(conn, request, rq.steps_of(conn, request.id, request.round), rq.assignments_of(conn, request.id))

    def set_step(self, step_id: int, **values: Any) -> None:
        rq.update_step(self.conn, step_id, **values)
        self.steps = [_with(s, **values) if s.id == step_id else s for s in self.steps]

    def set_status(self, ids: list[int], from_statuses: tuple[str, ...], status: str) -> None:
        chosen = [a.id for a in self.assigns if a.id in ids and a.status in from_statuses]
        rq.set_assignments_status(self.conn, chosen, from_statuses, status)
        self.assigns = [_with(a, status=status) if a.id in chosen else a for a in self.assigns]

    def decided(self, assignment_id: int, **values: Any) -> None:
        self.assigns = [_with(a, **values) if a.id == assignment_id else a for a in self.assigns]

    def open_ids(self) -> tuple[int, ...]:
        return tuple(a.id for a in self.assigns if a.status in ("pending", "claimed"))

    def of_step(self, step_id: int, cycle: int | None = None) -> list[Assignment]:
        """The assignments of a step's current cycle (or of the given one)."""
        if cycle is None:
            step = next((s for s in self.steps if s.id == step_id), None)
            cycle = step.cycle if step is not None else max(
                (a.cycle for a in self.assigns if a.step_id == step_id), default=1)
        return [a for a in self.assigns if a.step_id == step_id and a.cycle == cycle]


class Engine:
    """The use cases of the back office, over one database and one policy."""

    def __init__(self, db: Database, policy: Policy, *, clock: Clock = _utcnow,
                 calendar: BusinessCalendar | None = None, observe: DecisionObserver | None = None) -> None:
        self.db = db
        self.observe = observe
        self.policy = policy
        self.clock = clock
        self.calendar = calendar or calendar_for(policy)
        self.tz = ZoneInfo(policy.company.timezone)

    def _transaction(self, work: Callable[[Connection], Outcome]) -> Outcome:
        """Run one use case in one unit of work; a refusal rolls back, so it leaves the database as it was
        (even what was written on the way, such as leave grants brought up to date)."""
        with self.db.unit_of_work() as conn:
            outcome = work(conn)
            if not outcome.ok:
                self.db.rollback(conn)
            return outcome

    # ---------------------------------------------------------------- submit
    def submit(self, requester_id: int, type_key: str, payload: Any) -> Outcome:
        """File a request: validate, number it, resolve its route, start the first step."""
        spec = self.policy.types.get(type_key)
        if spec is None:
            return refused("unknown_type", msg.fill(msg.UNKNOWN_TYPE, type=type_key))
        clean, errors = forms.validate_payload(spec, payload)
        if clean is None:
            return refused("invalid", _first(errors), errors=errors)
        now = self.clock()

        def work(conn: Connection) -> Outcome:
            requester = people.get_employee(conn, requester_id)
            if requester is None or not requester.active:
                return refused("unknown_person", msg.UNKNOWN_PERSON)
            facts, errors, warnings = self._behaviour(conn, spec, requester, clean, now, None)
            if errors:
                return refused("invalid", _first(errors), errors=errors)
            try:
                route = resolve_route(conn, spec, requester, facts)
            except RouteError as exc:
                return refused("no_approver", exc.message)
            fy = fiscal_year(now.astimezone(self.tz).date(), self.policy.company.fiscal_year_start_month)
            number = format_number(spec.prefix, fy, rq.next_number(conn, type_key, fy))
            request = rq.insert_request(
                conn, number=number, type=type_key, fiscal_year=fy, requester_id=requester.id, payload=clean,
                warnings=[w.model_dump() for w in warnings] or None, status="pending", version=1, round=1,
                created_at=now, updated_at=now, decided_at=None,
            )
            changes = _Changes(now)
            changes.audit.append(audit.Entry("request.submitted", requester.id, request.id,
                                             {"number": number, "type": type_key, "payload": clean}))
            changes.notify("submitted", requester.id, request, 1)
            state = self._create_round(conn, request, route, 1, [])
            request = self._advance(state, changes)
            changes.flush(conn)
            return Outcome(True, "submitted", msg.fill(msg.SUBMITTED, number=number), request, warnings=warnings,
                           open_assignments=state.open_ids())
        return self._transaction(work)

    def _behaviour(self, conn: Connection, spec: RequestTypeSpec, requester: Employee, payload: dict[str, Any],
                   now: datetime, request_id: int | None) -> tuple[dict[str, Any], dict[str, LocalText],
                                                                   list[LocalText]]:
        """Type-specific checks and derived facts (leave days and balance; expense totals and invoices)."""
        facts: dict[str, Any] = dict(payload)
        if any(c.fact == "requester.department" for step in spec.route for c in step.when):
            # a read on every submit only when some route condition asks for it
            facts["requester.department"] = self._department_code(conn, requester)
        facts["requester.roles"] = list(requester.roles)
        facts["requester.work_days_per_week"] = requester.work_days_per_week
        if spec.behaviour == "leave":
            days, errors = leave.leave_days(payload, self.calendar, self.policy.company.hours_per_day)
            if not errors:
                errors = leave.check_request(conn, requester, days, self.calendar,
                                             self.policy.company.hours_per_day, now, request_id)
            facts["days"] = sum((d.days for d in days), Decimal(0))
            return facts, errors, []
        if spec.behaviour == "expense":
            summary = expense.summarize(payload)
            facts["total"] = summary.total
            return facts, summary.errors, summary.warnings
        return facts, {}, []

    def _department_code(self, conn: Connection, person: Employee) -> str | None:
        dept = people.get_department(conn, person.department_id) if person.department_id else None
        return dept.code if dept else None

    def _create_round(self, conn: Connection, request: Request, route: list[ResolvedStep], round_: int,
                      earlier: list[Assignment]) -> _Route:
        """The steps and assignments of one round, inserted in two statements."""
        steps = rq.insert_steps(conn, [
            {"request_id": request.id, "round": round_, "position": step.position, "key": step.spec.id,
             "kind": step.spec.kind, "required": step.required, "cycle": 1, "status": "waiting", "activated_at": None,
             "due_at": None, "completed_at": None} for step in route])
        assigns = rq.insert_assignments(conn, [
            {"request_id": request.id, "step_id": row.id, "approver_id": a, "cycle": 1, "status": "waiting",
             "acted_by_id": None, "comment": None, "decided_at": None}
            for row, step in zip(steps, route, strict=True) for a in step.approver_ids])
        return _Route(conn, request, steps, earlier + assigns)

    # ---------------------------------------------------------------- advancing the route
    def _advance(self, state: _Route, changes: _Changes) -> Request:
        """Start the next waiting step(s); inform steps pass straight through; complete the request at the end."""
        for step in list(state.steps):
            if step.status in ("approved", "informed", "resolved", "cancelled"):
                continue
            if step.status in ("active", "claimed"):
                return state.request
            if step.kind == "inform":
                self._inform(state, step, changes)
                continue
            self._activate(state, step, changes)
            return state.request
        return self._complete(state, changes)

    def _inform(self, state: _Route, step: Step, changes: _Changes) -> None:
        mine = [a for a in state.of_step(step.id) if a.status == "waiting"]
        state.set_step(step.id, status="informed", activated_at=changes.now, completed_at=changes.now)
        state.set_status([a.id for a in mine], ("waiting",), "informed")
        for a in mine:
            changes.notify("fyi", a.approver_id, state.request, state.request.version, assignment_id=a.id,
                           step=step.key)
        changes.audit.append(audit.Entry("step.informed", None, state.request.id,
                                         {"step": step.key, "people": [a.approver_id for a in mine]}))

    def _activate(self, state: _Route, step: Step, changes: _Changes) -> None:
        request = state.request
        spec = self.policy.types[request.type]
        step_spec = next(s for s in spec.route if s.id == step.key)
        sla = self.policy.sla_for(request.type, step_spec)
        due = self.calendar.due_after(changes.now, float(sla.business_days))
        state.set_step(step.id, status="active", activated_at=changes.now, due_at=due)
        mine = [a for a in state.of_step(step.id) if a.status == "waiting"]
        state.set_status([a.id for a in mine], ("waiting",), "pending")
        kind = "queue_posted" if step.kind == "queue" else "approval_requested"
        channel = step_spec.channel if step.kind == "queue" else None
        for i, a in enumerate(mine):
            if channel is not None and i == 0:  # ONE shared card in the queue's channel (for whoever holds it)
                changes.notify(kind, a.approver_id, request, request.version, assignment_id=a.id, step=step.key,
                               due_at=due.isoformat(), channel=channel)
            # each holder's own card; with a channel, delivery sends it only to those the channel cannot reach
            # (the channel is Slack's: people reached on Teams get their own card there)
            changes.notify(kind, a.approver_id, request, request.version, assignment_id=a.id, step=step.key,
                           due_at=due.isoformat(), **({"covered_by_channel": channel} if channel else {}))
            self._schedule_nudges(request, a.id, a.approver_id, changes.now, due, changes)
        changes.audit.append(audit.Entry("step.activated", None, request.id, {
            "step": step.key, "round": step.round, "due_at": due, "people": [a.approver_id for a in mine]}))

    def _schedule_nudges(self, request: Request, assignment_id: int, target_id: int, now: datetime,
                         due: datetime, changes: _Changes) -> None:
        """The first nudge row of each chain of one assignment (its next reminder, its next action); the
        scheduler's tick sends them and writes the rows that follow (workflow/nudge_plan.py)."""
        plan = plan_for(self.calendar, self.policy, self.policy.nudges_for(request.type), due)
        for kind, at in plan.first_rows(now):
            changes.nudges.append({"request_id": request.id, "assignment_id": assignment_id,
                                   "target_id": target_id, "kind": kind, "due_at": at, "state": "pending"})

    def _complete(self, state: _Route, changes: _Changes) -> Request:
        request = state.request
        status = "resolved" if any(s.kind == "queue" for s in state.steps) else "approved"
        updated = rq.bump_request(state.conn, request, status=status, updated_at=changes.now, decided_at=changes.now)
        if updated is None:
            raise _Conflict()
        state.request = request = updated
        spec = self.policy.types[request.type]
        if spec.behaviour == "leave" and status == "approved":
            self._on_leave_approved(state.conn, request, changes)
        changes.notify("request_completed", request.requester_id, request, request.version, status=status)
        changes.audit.append(audit.Entry("request.completed", None, request.id, {"status": status}))
        return request

    def _on_leave_approved(self, conn: Connection, request: Request, changes: _Changes) -> None:
        """Deduct the days, and let the person's substitute (else manager) approve for them while away."""
        requester = people.get_employee(conn, request.requester_id)
        assert requester is not None
        days, _errors = leave.leave_days(request.payload, self.calendar, self.policy.company.hours_per_day)
        leave.consume(conn, requester, request.id, days, changes.now)
        changes.audit.append(audit.Entry("leave.taken", None, request.id, {
            "days": str(sum((d.days for d in days), Decimal(0))), "dates": [d.on.isoformat() for d in days]}))
        if request.payload["unit"] != "full":
            return  # a half day or a few hours away is no reason to hand over approvals
        delegate_id = requester.substitute_id or requester.manager_id
        delegate = people.get_employee(conn, delegate_id) if delegate_id else None
        if delegate is None or not delegate.active:
            return
        person_tz = _zone(requester.timezone, self.tz)
        starts = datetime.combine(days[0].on, datetime.min.time(), person_tz)
        ends = datetime.combine(days[-1].on + timedelta(days=1), datetime.min.time(), person_tz)
        people.insert_delegation(conn, from_id=requester.id, to_id=delegate.id, starts_at=starts, ends_at=ends,
                                 request_types=None, source="leave", source_request_id=request.id,
                                 created_at=changes.now)
        changes.audit.append(audit.Entry("delegation.created", None, request.id, {
            "from": requester.id, "to": delegate.id, "starts_at": starts, "ends_at": ends, "source": "leave"}))

    # ---------------------------------------------------------------- decide
    def decide(self, assignment_id: int, actor_id: int, decision: Decision, comment: str | None = None,
               *, to_step: str | None = None, actor: Employee | None = None) -> Outcome:
        """Approve, reject (reason required) or send back (reason required; to the applicant or an earlier step).

        `actor`: the employee `actor_id` as the caller read them while handling this very click (the conversation
        identifies the person first, and only an active one); the decision then does not read them again. On
        SQLite both reads are in one transaction (the writer's round); on PostgreSQL a moment apart, as if the
        click had come that moment earlier."""
        if decision not in _DECIDED:
            raise ValueError(f"unknown decision {decision!r}")
        comment = (comment or "").strip() or None
        if decision != "approve" and not comment:
            return refused("reason_required", msg.REASON_REQUIRED, errors={"comment": msg.REASON_REQUIRED})
        return self._on_assignment(assignment_id, actor_id, lambda ctx: self._decide(ctx, decision, comment,
                                                                                    to_step), actor=actor)

    def _decide(self, ctx: _Context, decision: Decision, comment: str | None, to_step: str | None) -> Outcome:
        conn, a, changes, step, route = ctx.conn, ctx.assignment, ctx.changes, ctx.step, ctx.route
        if step.kind == "queue":
            return refused("not_allowed", msg.fill(msg.NOT_ALLOWED, number=ctx.request.number), ctx.request)
        if a.status != "pending":
            return self._stale(ctx)
        status = _DECIDED[decision]
        if not rq.decide_assignment(conn, a.id, ("pending",), status=status, acted_by_id=ctx.actor.id,
                                    comment=comment, decided_at=changes.now):
            return self._stale(ctx)
        route.decided(a.id, status=status, acted_by_id=ctx.actor.id, comment=comment, decided_at=changes.now)
        messaging.cancel_nudges(conn, [a.id])
        acting_for = a.approver_id if a.approver_id != ctx.actor.id else None
        changes.audit.append(audit.Entry(f"assignment.{status}", ctx.actor.id, ctx.request.id, {
            "step": step.key, "approver": a.approver_id, "acting_for": acting_for, "comment": comment}))
        changes.notify("step_decided", ctx.request.requester_id, ctx.request, ctx.request.version + 1,
                       decision=status, by=ctx.actor.id, acting_for=acting_for, step=step.key, comment=comment)
        if decision == "send_back":
            return self._send_back(ctx, to_step, comment)
        mine = [x for x in route.of_step(step.id) if x.status not in ("superseded", "cancelled")]
        # distinct people: nobody counts twice towards a quorum, whatever cards they hold
        approvals = len({x.approver_id for x in mine if x.status == "approved"})
        rejections = len({x.approver_id for x in mine if x.status == "rejected"})
        required = step.required or len(mine)
        if decision == "reject" and len(mine) - rejections < required:
            return self._finish_rejected(ctx)
        if approvals >= required:
            route.set_step(step.id, status="approved", completed_at=changes.now)
            self._cancel_open(ctx, [x for x in mine if x.status in ("pending", "waiting")])
        self._bump(ctx)
        request = self._advance(route, changes)
        text = msg.APPROVED if decision == "approve" else msg.REJECTED
        return Outcome(True, status, msg.fill(text, number=request.number), request)

    def _finish_rejected(self, ctx: _Context) -> Outcome:
        changes = ctx.changes
        ctx.route.set_step(ctx.step.id, status="rejected", completed_at=changes.now)
        self._cancel_open(ctx, [x for x in ctx.route.assigns if x.undecided])
        request = self._bump(ctx, status="rejected", decided_at=changes.now)
        self._cancel_waiting_steps(ctx.route)
        changes.notify("request_completed", request.requester_id, request, request.version, status="rejected")
        changes.audit.append(audit.Entry("request.completed", ctx.actor.id, request.id, {"status": "rejected"}))
        return Outcome(True, "rejected", msg.fill(msg.REJECTED, number=request.number), request)

    def _send_back(self, ctx: _Context, to_step: str | None, comment: str | None) -> Outcome:
        changes, route = ctx.changes, ctx.route
        target = None
        if to_step is not None:
            target = next((s for s in route.steps if s.key == to_step and s.position < ctx.step.position), None)
            if target is None:
                raise _Refusal(refused("unknown_step", msg.fill(msg.UNKNOWN_STEP, step=to_step), ctx.request))
        route.set_step(ctx.step.id, status="sent_back", completed_at=changes.now)
        self._cancel_open(ctx, [x for x in route.of_step(ctx.step.id) if x.undecided])
        if target is None:  # back to the applicant, who may fix and resubmit
            request = self._to_applicant(route, changes, ctx.actor.id, {"comment": comment})
            return Outcome(True, "sent_back", msg.fill(msg.SENT_BACK, number=request.number), request)
        self._rework_from(route, target.position)
        changes.audit.append(audit.Entry("request.sent_back", ctx.actor.id, ctx.request.id,
                                         {"comment": comment, "to_step": target.key}))
        self._bump(ctx)
        request = self._advance(route, changes)
        return Outcome(True, "sent_back", msg.fill(msg.SENT_BACK, number=request.number), request)

    def _to_applicant(self, route: _Route, changes: _Changes, actor_id: int | None,
                      data: dict[str, Any]) -> Request:
        """The request goes back to its applicant (sent_back; they may fix and resubmit, or withdraw): later steps
        are cancelled, the requester's status card is refreshed, the audit trail says who (None: the system)."""
        request = self._bump_route(route, changes, status="sent_back")
        self._cancel_waiting_steps(route)
        changes.notify("request_sent_back", request.requester_id, request, request.version,
                       **{k: v for k, v in data.items() if k in ("comment", "by", "reason", "note")})
        changes.audit.append(audit.Entry("request.sent_back", actor_id, request.id, data))
        return request

    def _rework_from(self, route: _Route, position: int) -> None:
        """Steps from `position` on start a new cycle with everyone they had: decisions already made stay as
        they were (history), undecided assignments are superseded, and fresh ones wait for each person."""
        fresh: list[dict[str, Any]] = []
        for step in route.steps:
            if step.position < position:
                continue
            current = [a for a in route.of_step(step.id) if a.status != "superseded"]
            route.set_status([a.id for a in current if a.undecided], rq.UNDECIDED, "superseded")
            messaging.cancel_nudges(route.conn, [a.id for a in current if a.undecided])
            people_ = list(dict.fromkeys(a.approver_id for a in current))
            fresh += [{"request_id": route.request.id, "step_id": step.id, "approver_id": p,
                       "cycle": step.cycle + 1, "status": "waiting", "acted_by_id": None, "comment": None,
                       "decided_at": None} for p in people_]
            route.set_step(step.id, status="waiting", cycle=step.cycle + 1, activated_at=None, due_at=None,
                           completed_at=None)
        route.assigns += rq.insert_assignments(route.conn, fresh)

    def _cancel_open(self, ctx: _Context, open_: list[Assignment]) -> None:
        """Close other people's undecided assignments; their cards must show the outcome."""
        self._close_open(ctx.route, ctx.changes, open_)

    def _close_open(self, route: _Route, changes: _Changes, open_: list[Assignment]) -> None:
        ids = [a.id for a in open_]
        route.set_status(ids, rq.UNDECIDED, "cancelled")
        messaging.cancel_nudges(route.conn, [a.id for a in open_ if a.status in ("pending", "claimed")])
        for a in open_:
            if a.status in ("pending", "claimed"):
                changes.notify("card_update", a.approver_id, route.request, route.request.version + 1,
                               assignment_id=a.id)

    def _cancel_waiting_steps(self, route: _Route) -> None:
        for step in route.steps:
            if step.status == "waiting":
                route.set_step(step.id, status="cancelled")
        route.set_status([a.id for a in route.assigns if a.status == "waiting"], ("waiting",), "cancelled")

    def _bump(self, ctx: _Context, **values: Any) -> Request:
        return self._bump_route(ctx.route, ctx.changes, **values)

    def _bump_route(self, route: _Route, changes: _Changes, **values: Any) -> Request:
        updated = rq.bump_request(route.conn, route.request, updated_at=changes.now, **values)
        if updated is None:
            raise _Conflict()
        route.request = updated
        return updated

    def _stale(self, ctx: _Context) -> Outcome:
        """Why a click no longer applies: who decided, and when, in the clicker's language."""
        request, a = ctx.request, ctx.assignment
        if a.status in ("approved", "rejected", "sent_back", "resolved") and a.acted_by_id:
            return refused("already_decided", self._already(ctx.conn, a.acted_by_id, a.status, a.decided_at,
                                                            request.number), request)
        if a.status in ("cancelled", "superseded"):
            decided = [x for x in ctx.route.of_step(a.step_id, a.cycle) if x.acted_by_id and x.decided_at]
            if decided:
                last = max(decided, key=lambda x: x.decided_at)  # type: ignore[arg-type,return-value]
                return refused("already_decided", self._already(ctx.conn, last.acted_by_id, last.status,
                                                                last.decided_at, request.number), request)
        if request.status != "pending":
            return refused("request_closed", _closed(request), request)
        if a.status == "waiting":
            return refused("not_started", msg.fill(msg.NOT_YOUR_TURN, number=request.number), request)
        return refused("step_closed", msg.fill(msg.STEP_MOVED_ON, number=request.number), request)

    def _already(self, conn: Connection, actor_id: int | None, status: str, when: datetime | None,
                 number: str) -> LocalText:
        actor = people.get_employee(conn, actor_id) if actor_id else None
        name = LocalText(ja=actor.name_ja, en=actor.name_en) if actor else LocalText(ja="?", en="?")
        local = when.astimezone(self.tz).strftime("%Y-%m-%d %H:%M") if when else "?"
        return msg.fill(msg.ALREADY_DECIDED, number=number, name=name, when=local,
                        decision=msg.DECISION_JA.get(status, status), decision_en=status.replace("_", " "))

    # ---------------------------------------------------------------- the shared frame of assignment actions
    def _on_assignment(self, assignment_id: int, actor_id: int, action: Callable[[_Context], Outcome], *,
                       allow_admin: bool = False, actor: Employee | None = None) -> Outcome:
        started = time.perf_counter()
        outcome = self._act_on_assignment(assignment_id, actor_id, action, allow_admin, actor)
        if self.observe is not None:
            self.observe(outcome, time.perf_counter() - started)
        return outcome

    def _act_on_assignment(self, assignment_id: int, actor_id: int, action: Callable[[_Context], Outcome],
                           allow_admin: bool, known: Employee | None) -> Outcome:
        now = self.clock()
        with self.db.unit_of_work() as conn:
            # the request locked, then its route read under the lock (on PostgreSQL: sent together, one wait)
            request, assigns, current = rq.route_of_assignment(conn, assignment_id, lock=True)
            if request is None:
                return refused("not_found", msg.NOT_FOUND)
            route = _Route(conn, request, current, assigns)
            a = next(x for x in route.assigns if x.id == assignment_id)
            step = next((s for s in route.steps if s.id == a.step_id), None)
            if step is None:  # a click on a card from an earlier round (before a send-back)
                step = next(s for s in rq.steps_of(conn, request.id) if s.id == a.step_id)
            actor = known if known is not None and known.id == actor_id else people.get_employee(conn, actor_id)
            if actor is None or not actor.active:
                return refused("unknown_person", msg.UNKNOWN_PERSON, request)
            ctx = _Context(route, a, step, actor, _Changes(now))
            if request.status != "pending":
                if a.status in ("approved", "rejected", "sent_back", "resolved", "cancelled"):
                    return self._stale(ctx)
                return refused("request_closed", _closed(request), request)
            if actor.id == request.requester_id:
                return refused("self_approval", msg.SELF_APPROVAL, request)
            if not self._may_act(conn, actor, a, request, now, allow_admin):
                if not a.undecided:
                    return self._stale(ctx)
                return refused("not_allowed", msg.fill(msg.NOT_ALLOWED, number=request.number), request)
            try:
                outcome = action(ctx)
            except _Refusal as refusal:
                self.db.rollback(conn)
                return refusal.outcome
            except InsufficientLeave as exc:
                self.db.rollback(conn)
                return refused("insufficient_leave", msg.fill(
                    msg.LEAVE_BALANCE_CHANGED, available=format_days(exc.available),
                    asked=format_days(exc.requested)), request)
            if not outcome.ok:
                self.db.rollback(conn)
                return outcome
            ctx.changes.flush(conn)
            return _with(outcome, open_assignments=route.open_ids())

    def _may_act(self, conn: Connection, actor: Employee, a: Assignment, request: Request, now: datetime,
                 allow_admin: bool) -> bool:
        """The approver, someone they delegated to for this type and time, or (where allowed) an admin."""
        if actor.id == a.approver_id or (allow_admin and actor.has_role("admin")):
            return True
        return any(d.to_id == actor.id and d.covers(now, request.type)
                   for d in people.delegations_from(conn, {a.approver_id}, now)) \
            or messaging.escalated_to(conn, a.id, actor.id)  # the overdue approver's manager (workflow.nudges)

    # ---------------------------------------------------------------- queues (IT): claim, resolve
    def claim(self, assignment_id: int, actor_id: int) -> Outcome:
        """Take a queue item: the step becomes yours; other holders' copies show who took it."""
        return self._on_assignment(assignment_id, actor_id, self._claim)

    def _claim(self, ctx: _Context) -> Outcome:
        conn, changes, route = ctx.conn, ctx.changes, ctx.route
        if ctx.step.kind != "queue":
            return refused("not_queue", msg.NOT_QUEUE, ctx.request)
        if ctx.step.status == "claimed" or ctx.assignment.status != "pending":
            taker = next((x for x in route.of_step(ctx.step.id) if x.status in ("claimed", "resolved")), None)
            if taker is not None:
                actor = people.get_employee(conn, taker.acted_by_id or taker.approver_id)
                name = LocalText(ja=actor.name_ja, en=actor.name_en) if actor else LocalText(ja="?", en="?")
                when = (taker.decided_at or changes.now).astimezone(self.tz).strftime("%Y-%m-%d %H:%M")
                return refused("already_claimed", msg.fill(msg.ALREADY_CLAIMED, number=ctx.request.number,
                                                           name=name, when=when), ctx.request)
            return self._stale(ctx)
        if not rq.decide_assignment(conn, ctx.assignment.id, ("pending",), status="claimed",
                                    acted_by_id=ctx.actor.id, decided_at=changes.now):
            return self._stale(ctx)
        route.decided(ctx.assignment.id, status="claimed", acted_by_id=ctx.actor.id, decided_at=changes.now)
        route.set_step(ctx.step.id, status="claimed")
        others = [x for x in route.of_step(ctx.step.id) if x.id != ctx.assignment.id and x.status == "pending"]
        self._cancel_open(ctx, others)
        request = self._bump(ctx)
        changes.notify("step_decided", request.requester_id, request, request.version, decision="claimed",
                       by=ctx.actor.id, step=ctx.step.key)
        changes.audit.append(audit.Entry("step.claimed", ctx.actor.id, request.id, {"step": ctx.step.key}))
        return Outcome(True, "claimed", msg.fill(msg.CLAIMED, number=request.number), request)

    def resolve(self, assignment_id: int, actor_id: int, comment: str | None = None) -> Outcome:
        """Finish a claimed queue item; the request moves on (usually to resolved)."""
        return self._on_assignment(assignment_id, actor_id, lambda ctx: self._resolve(ctx, comment))

    def _resolve(self, ctx: _Context, comment: str | None) -> Outcome:
        conn, changes = ctx.conn, ctx.changes
        if ctx.step.kind != "queue":
            return refused("not_queue", msg.NOT_QUEUE, ctx.request)
        if ctx.assignment.status != "claimed":
            return self._stale(ctx)
        if not rq.decide_assignment(conn, ctx.assignment.id, ("claimed",), status="resolved",
                                    acted_by_id=ctx.actor.id, comment=comment, decided_at=changes.now):
            return self._stale(ctx)
        ctx.route.decided(ctx.assignment.id, status="resolved", acted_by_id=ctx.actor.id, comment=comment,
                          decided_at=changes.now)
        messaging.cancel_nudges(conn, [ctx.assignment.id])
        ctx.route.set_step(ctx.step.id, status="resolved", completed_at=changes.now)
        changes.audit.append(audit.Entry("step.resolved", ctx.actor.id, ctx.request.id,
                                         {"step": ctx.step.key, "comment": comment}))
        self._bump(ctx)
        request = self._advance(ctx.route, changes)
        return Outcome(True, "resolved", msg.fill(msg.RESOLVED, number=request.number), request)

    # ---------------------------------------------------------------- reassign (admin)
    def reassign(self, assignment_id: int, admin_id: int, new_approver_id: int, comment: str | None = None) -> Outcome:
        """An admin moves an undecided assignment to someone else (never to the requester)."""
        return self._on_assignment(assignment_id, admin_id, lambda ctx: self._reassign(ctx, new_approver_id, comment),
                                   allow_admin=True)

    def _reassign(self, ctx: _Context, new_approver_id: int, comment: str | None) -> Outcome:
        if not ctx.actor.has_role("admin"):
            return refused("only_admin", msg.ONLY_ADMIN, ctx.request)
        if not ctx.assignment.undecided:
            return self._stale(ctx)
        target = people.get_employee(ctx.conn, new_approver_id)
        if target is None or not target.active:
            return refused("inactive", msg.INACTIVE_PERSON, ctx.request)
        if target.id == ctx.request.requester_id:
            return refused("self_approval", msg.SELF_APPROVAL, ctx.request)
        a, step, changes = ctx.assignment, ctx.step, ctx.changes
        if any(x.approver_id == target.id and x.status not in ("superseded", "cancelled")
               for x in ctx.route.of_step(step.id)):
            # one person holding two cards of a step could make up an N-of-M quorum alone
            name = LocalText(ja=target.name_ja, en=target.name_en)
            return refused("already_on_step", msg.fill(msg.ALREADY_ON_STEP, name=name), ctx.request)
        ctx.route.set_status([a.id], rq.UNDECIDED, "superseded")
        messaging.cancel_nudges(ctx.conn, [a.id])
        new = rq.insert_assignments(ctx.conn, [{"request_id": a.request_id, "step_id": a.step_id,
                                                "approver_id": target.id, "cycle": a.cycle, "status": a.status,
                                                "acted_by_id": None,
                                                "comment": None, "decided_at": None}])[0]
        ctx.route.assigns.append(new)
        request = self._bump(ctx)
        changes.notify("card_update", a.approver_id, request, request.version, assignment_id=a.id)
        if a.status == "pending":
            kind = "queue_posted" if step.kind == "queue" else "approval_requested"
            changes.notify(kind, target.id, request, request.version, assignment_id=new.id, step=step.key,
                           due_at=step.due_at.isoformat() if step.due_at else None)
            if step.due_at:
                self._schedule_nudges(request, new.id, target.id, changes.now, step.due_at, changes)
        changes.audit.append(audit.Entry("assignment.reassigned", ctx.actor.id, request.id, {
            "from": a.approver_id, "to": target.id, "step": step.key, "comment": comment}))
        name = LocalText(ja=target.name_ja, en=target.name_en)
        return Outcome(True, "reassigned", msg.fill(msg.REASSIGNED, number=request.number, name=name), request)

    # ---------------------------------------------------------------- the requester: withdraw, resubmit
    def withdraw(self, request_id: int, actor_id: int, comment: str | None = None) -> Outcome:
        """The requester takes a request back before the final decision."""
        now = self.clock()

        def work(conn: Connection) -> Outcome:
            request, refusal = _requesters_own(conn, request_id, actor_id)
            if refusal is not None:
                return refusal
            assert request is not None
            if request.status not in ("pending", "sent_back"):
                return refused("request_closed", _closed(request), request)
            route = _Route.load(conn, request)
            changes = _Changes(now)
            updated = rq.bump_request(conn, request, status="withdrawn", updated_at=now, decided_at=now)
            if updated is None:
                return refused("request_closed", _closed(request), request)
            route.request = request = updated
            open_ = [a for a in route.assigns if a.undecided]
            route.set_status([a.id for a in open_], rq.UNDECIDED, "cancelled")
            messaging.cancel_nudges(conn, [a.id for a in open_])
            for step in route.steps:
                if step.status in ("waiting", "active", "claimed"):
                    route.set_step(step.id, status="cancelled")
            for a in open_:
                if a.status in ("pending", "claimed"):
                    changes.notify("card_update", a.approver_id, request, request.version, assignment_id=a.id)
            # the requester's status card still offers Withdraw (and Fix and resubmit): it must show the end too
            changes.notify("request_completed", request.requester_id, request, request.version, status="withdrawn")
            changes.audit.append(audit.Entry("request.withdrawn", actor_id, request.id, {"comment": comment}))
            changes.flush(conn)
            return Outcome(True, "withdrawn", msg.fill(msg.WITHDRAWN, number=request.number), request)
        return self._transaction(work)

    def resubmit(self, request_id: int, actor_id: int, payload: Any) -> Outcome:
        """Fix a sent-back request: same number, its history kept, the route resolved again from the start."""
        now = self.clock()

        def work(conn: Connection) -> Outcome:
            request, refusal = _requesters_own(conn, request_id, actor_id)
            if refusal is not None:
                return refusal
            assert request is not None
            if request.status != "sent_back":
                return refused("not_sent_back", msg.fill(msg.NOT_SENT_BACK, number=request.number), request)
            spec = self.policy.types[request.type]
            clean, errors = forms.validate_payload(spec, payload)
            if clean is None:
                return refused("invalid", _first(errors), request, errors)
            requester = people.get_employee(conn, actor_id)
            assert requester is not None
            facts, errors, warnings = self._behaviour(conn, spec, requester, clean, now, request.id)
            if errors:
                return refused("invalid", _first(errors), request, errors)
            try:
                route = resolve_route(conn, spec, requester, facts)
            except RouteError as exc:
                return refused("no_approver", exc.message, request)
            updated = rq.bump_request(conn, request, status="pending", payload=clean,
                                      warnings=[w.model_dump() for w in warnings] or None,
                                      round=request.round + 1, updated_at=now)
            if updated is None:
                return refused("request_closed", _closed(request), request)
            changes = _Changes(now)
            state = self._create_round(conn, updated, route, updated.round, rq.assignments_of(conn, request.id))
            changes.audit.append(audit.Entry("request.resubmitted", actor_id, request.id,
                                             {"round": updated.round, "payload": clean}))
            request = self._advance(state, changes)
            changes.flush(conn)
            return Outcome(True, "resubmitted", msg.fill(msg.RESUBMITTED, number=request.number), request,
                           warnings=warnings)
        return self._transaction(work)

    # ---------------------------------------------------------------- the final deadline (the tick)
    def expire(self, assignment_id: int, now: datetime | None = None, *, nudge_id: int | None = None) -> Outcome:
        """`final: return_to_requester`: a step nobody decided by its final deadline sends the request back to
        the requester, as a system action (no person is the actor; the audit event says `by: system`, reason
        overdue / 期限超過), with a note in the requester's language. The send-back path of `decide`: the step's
        open assignments are cancelled with their nudges, every approver's card and the requester's status card
        are refreshed, later steps are cancelled; the requester may resubmit (same number) or withdraw.

        One transaction, the request locked and every update conditional: a decision, claim or withdrawal that
        landed first wins and this changes nothing (`ok=False`); one that comes after finds the request sent back.
        `nudge_id` (the tick's final row) is closed in the same transaction, so two tickers act once."""
        now = now or self.clock()

        def work(conn: Connection) -> Outcome:
            request = rq.request_of_assignment(conn, assignment_id, lock=True)
            if request is None:
                return refused("not_found", msg.NOT_FOUND)
            route = _Route.load(conn, request)
            a = next(x for x in route.assigns if x.id == assignment_id)
            step = next((s for s in route.steps if s.id == a.step_id), None)
            if request.status != "pending":
                return refused("request_closed", _closed(request), request)
            # only a step still waiting for a decision: a claimed queue item is being worked on
            if step is None or step.status != "active" or a.status != "pending" or a.cycle != step.cycle:
                return refused("step_closed", msg.fill(msg.STEP_MOVED_ON, number=request.number), request)
            if nudge_id is not None and not messaging.close_nudges(conn, [nudge_id], "sent", now):
                return refused("step_closed", msg.fill(msg.STEP_MOVED_ON, number=request.number), request)
            requester = people.get_employee(conn, request.requester_id)
            locale = requester.locale if requester is not None else self.policy.company.default_locale
            spec = self.policy.types[request.type]
            step_spec = next((s for s in spec.route if s.id == step.key), None)
            title = step_spec.title if step_spec is not None and step_spec.title is not None \
                else LocalText(ja=step.key, en=step.key)
            days = format_days(self.policy.nudges_for(request.type).final_after_business_days)
            note = msg.fill(msg.OVERDUE_NOTE, step=title, days=days)
            changes = _Changes(now)
            route.set_step(step.id, status="sent_back", completed_at=now)
            self._close_open(route, changes, [x for x in route.of_step(step.id) if x.undecided])
            request = self._to_applicant(route, changes, None, {
                "by": "system", "reason": msg.OVERDUE_REASON.en, "reason_ja": msg.OVERDUE_REASON.ja,
                "policy": "return_to_requester", "step": step.key, "assignment": a.id, "approver": a.approver_id,
                "comment": note(locale), "note": {"ja": note.ja, "en": note.en}})
            changes.flush(conn)
            return Outcome(True, "returned", msg.fill(msg.RETURNED_OVERDUE, number=request.number), request)
        return self._transaction(work)

    # ---------------------------------------------------------------- delegation
    def delegate(self, from_id: int, to_id: int, starts_at: datetime, ends_at: datetime,
                 request_types: list[str] | None = None) -> Outcome:
        """Let `to_id` act for `from_id` in a time window (optionally only for some request types)."""
        if ends_at <= starts_at:
            return refused("bad_window", msg.BAD_WINDOW, errors={"ends_at": msg.BAD_WINDOW})
        if from_id == to_id:
            return refused("self_delegation", msg.SELF_DELEGATION, errors={"to": msg.SELF_DELEGATION})
        unknown = [t for t in request_types or [] if t not in self.policy.types]
        if unknown:
            return refused("unknown_type", msg.fill(msg.UNKNOWN_TYPE, type=", ".join(unknown)))
        now = self.clock()

        def work(conn: Connection) -> Outcome:
            giver, taker = people.get_employee(conn, from_id), people.get_employee(conn, to_id)
            if giver is None or not giver.active:
                return refused("unknown_person", msg.UNKNOWN_PERSON)
            if taker is None or not taker.active:
                return refused("inactive", msg.INACTIVE_PERSON, errors={"to": msg.INACTIVE_PERSON})
            people.insert_delegation(conn, from_id=from_id, to_id=to_id, starts_at=starts_at, ends_at=ends_at,
                                     request_types=request_types, source="manual", created_at=now)
            audit.record(conn, now, [audit.Entry("delegation.created", from_id, None, {
                "from": from_id, "to": to_id, "starts_at": starts_at, "ends_at": ends_at,
                "request_types": request_types, "source": "manual"})])
            name = LocalText(ja=taker.name_ja, en=taker.name_en)
            return Outcome(True, "delegated", msg.fill(msg.DELEGATED, name=name))
        return self._transaction(work)


@dataclass
class _Context:
    """The rows an assignment action works on, read under the request's lock."""

    route: _Route
    assignment: Assignment
    step: Step
    actor: Employee
    changes: _Changes

    @property
    def conn(self) -> Connection:
        return self.route.conn

    @property
    def request(self) -> Request:
        return self.route.request


class _Conflict(Exception):
    """The request changed under us despite the lock: a bug or a concurrent writer without the lock."""


class _Refusal(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.code)
        self.outcome = outcome


def _requesters_own(conn: Connection, request_id: int, actor_id: int) -> tuple[Request | None, Outcome | None]:
    """The request, locked, if it exists and the actor filed it; else the refusal to give."""
    request = rq.get_request(conn, request_id, lock=True)
    if request is None:
        return None, refused("not_found", msg.NOT_FOUND)
    if request.requester_id != actor_id:
        return request, refused("only_requester", msg.ONLY_REQUESTER, request)
    return request, None


def _closed(request: Request) -> LocalText:
    return msg.fill(msg.REQUEST_CLOSED, number=request.number,
                    status=msg.STATUS_JA.get(request.status, request.status),
                    status_en=msg.STATUS_EN.get(request.status, request.status))


def _first(errors: dict[str, LocalText]) -> LocalText:
    return next(iter(errors.values()))


def _zone(name: str, fallback: ZoneInfo) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:  # an unknown zone in the org data must not block an approval
        return fallback
