"""The approval engine: every use case a request lives through, each ONE unit of work.

submit, decide (approve / reject / send back), withdraw, resubmit, claim and resolve (queues), reassign,
delegate. Each is a plain synchronous method that opens one transaction, reads the request under a lock
(FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite), changes rows with conditional updates, appends audit
events and enqueues outbox messages and nudges in that same transaction. A stale, repeated or concurrent
action changes nothing and answers why ("already approved by 佐藤 at 10:32").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Policy, RequestTypeSpec
from models import messaging, people
from models import requests as rq
from models.db import Database
from models.people import Employee
from models.requests import Assignment, Request, Step
from workflow import audit, expense, forms, leave
from workflow import messages as msg
from workflow.calendar import BusinessCalendar
from workflow.leave_law import InsufficientLeave
from workflow.numbering import fiscal_year, format_number
from workflow.outcomes import Outcome, refused
from workflow.routes import ResolvedStep, RouteError, resolve_route

Decision = Literal["approve", "reject", "send_back"]
Clock = Callable[[], datetime]
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
        tail = data.get("assignment_id", "")
        self.outbox.append({
            "idempotency_key": f"{kind}:{request.id}:v{version}:{recipient_id}:{tail}",
            "recipient_id": recipient_id, "kind": kind, "request_id": request.id,
            "payload": {"kind": kind, "request_id": request.id, "number": request.number, "type": request.type,
                        **data},
            "state": "pending", "attempts": 0, "next_attempt_at": self.now, "created_at": self.now,
        })

    def flush(self, conn: Connection) -> None:
        messaging.enqueue(conn, self.outbox)
        messaging.schedule_nudges(conn, self.nudges)
        audit.record(conn, self.now, self.audit)


class Engine:
    """The use cases of the back office, over one database and one policy."""

    def __init__(self, db: Database, policy: Policy, *, clock: Clock = _utcnow,
                 calendar: BusinessCalendar | None = None) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.calendar = calendar or calendar_for(policy)
        self.tz = ZoneInfo(policy.company.timezone)

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
        with self.db.unit_of_work() as conn:
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
            request_id = rq.insert_request(
                conn, number=number, type=type_key, fiscal_year=fy, requester_id=requester.id, payload=clean,
                warnings=[w.model_dump() for w in warnings] or None, status="pending", version=1, round=1,
                created_at=now, updated_at=now,
            )
            request = rq.get_request(conn, request_id)
            assert request is not None
            changes = _Changes(now)
            changes.audit.append(audit.Entry("request.submitted", requester.id, request_id,
                                             {"number": number, "type": type_key, "payload": clean}))
            changes.notify("submitted", requester.id, request, 1)
            self._create_round(conn, request, route, 1, changes)
            request = self._advance(conn, request, changes)
            changes.flush(conn)
            return Outcome(True, "submitted", msg.fill(msg.SUBMITTED, number=number), request, warnings=warnings)

    def _behaviour(self, conn: Connection, spec: RequestTypeSpec, requester: Employee, payload: dict[str, Any],
                   now: datetime, request_id: int | None) -> tuple[dict[str, Any], dict[str, LocalText],
                                                                   list[LocalText]]:
        """Type-specific checks and derived facts (leave days and balance; expense totals and invoices)."""
        facts: dict[str, Any] = dict(payload)
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
                      changes: _Changes) -> None:
        for step in route:
            step_id = rq.insert_step(conn, request_id=request.id, round=round_, position=step.position,
                                     key=step.spec.id, kind=step.spec.kind, required=step.required, status="waiting")
            rq.insert_assignments(conn, [
                {"request_id": request.id, "step_id": step_id, "approver_id": a, "status": "waiting"}
                for a in step.approver_ids
            ])

    # ---------------------------------------------------------------- advancing the route
    def _advance(self, conn: Connection, request: Request, changes: _Changes) -> Request:
        """Start the next waiting step(s); inform steps pass straight through; complete the request at the end."""
        steps = rq.steps_of(conn, request.id, request.round)
        assigns = rq.assignments_of(conn, request.id)
        for step in steps:
            if step.status in ("approved", "informed", "resolved", "cancelled"):
                continue
            if step.status in ("active", "claimed"):
                return _reload(conn, request)
            if step.kind == "inform":
                self._inform(conn, request, step, assigns, changes)
                continue
            self._activate(conn, request, step, assigns, changes)
            return _reload(conn, request)
        return self._complete(conn, request, steps, changes)

    def _inform(self, conn: Connection, request: Request, step: Step, assigns: list[Assignment],
                changes: _Changes) -> None:
        mine = [a for a in assigns if a.step_id == step.id and a.status == "waiting"]
        rq.update_step(conn, step.id, status="informed", activated_at=changes.now, completed_at=changes.now)
        rq.set_assignments_status(conn, [a.id for a in mine], ("waiting",), "informed")
        for a in mine:
            changes.notify("fyi", a.approver_id, request, request.version, assignment_id=a.id, step=step.key)
        changes.audit.append(audit.Entry("step.informed", None, request.id,
                                         {"step": step.key, "people": [a.approver_id for a in mine]}))

    def _activate(self, conn: Connection, request: Request, step: Step, assigns: list[Assignment],
                  changes: _Changes) -> None:
        spec = self.policy.types[request.type]
        step_spec = next(s for s in spec.route if s.id == step.key)
        sla = self.policy.sla_for(request.type, step_spec)
        due = self.calendar.due_after(changes.now, float(sla.business_days))
        rq.update_step(conn, step.id, status="active", activated_at=changes.now, due_at=due)
        mine = [a for a in assigns if a.step_id == step.id and a.status == "waiting"]
        rq.set_assignments_status(conn, [a.id for a in mine], ("waiting",), "pending")
        kind = "queue_posted" if step.kind == "queue" else "approval_requested"
        for a in mine:
            changes.notify(kind, a.approver_id, request, request.version, assignment_id=a.id, step=step.key,
                           due_at=due.isoformat())
            self._schedule_nudges(request, a.id, a.approver_id, changes.now, due, changes)
        changes.audit.append(audit.Entry("step.activated", None, request.id, {
            "step": step.key, "round": step.round, "due_at": due, "people": [a.approver_id for a in mine]}))

    def _schedule_nudges(self, request: Request, assignment_id: int, target_id: int, now: datetime,
                         due: datetime, changes: _Changes) -> None:
        """Due-time rows for the reminders of one assignment; the scheduler's tick sends them."""
        policy = self.policy.nudges_for(request.type)
        times: list[tuple[str, datetime]] = [("before_due", self._shift(due, -b)) for b in
                                             policy.before_due_business_days]
        if policy.at_due:
            times.append(("due", due))
        if policy.overdue_every_business_days:
            times.append(("overdue", self._shift(due, policy.overdue_every_business_days[0])))
        if policy.escalate_after_business_days is not None:
            times.append(("escalation", self._shift(due, policy.escalate_after_business_days)))
        for kind, at in times:
            if at > now:
                changes.nudges.append({"request_id": request.id, "assignment_id": assignment_id,
                                       "target_id": target_id, "kind": kind, "due_at": at, "state": "pending"})

    def _shift(self, moment: datetime, business_days: Decimal) -> datetime:
        """The same local clock time `business_days` working days later (or earlier, if negative)."""
        local = moment.astimezone(self.tz)
        whole = int(business_days)
        day = self.calendar.add_business_days(local.date(), whole) if whole else local.date()
        shifted = datetime.combine(day, local.time(), self.tz)
        rest = business_days - whole
        if rest:
            shifted = self.calendar.add_business_hours(shifted, float(rest * self.policy.company.hours_per_day))
        return shifted.astimezone(UTC)

    def _complete(self, conn: Connection, request: Request, steps: list[Step], changes: _Changes) -> Request:
        status = "resolved" if any(s.kind == "queue" for s in steps) else "approved"
        if not rq.update_request(conn, request.id, request.version, status=status, updated_at=changes.now,
                                 decided_at=changes.now):
            raise _Conflict()
        request = _reload(conn, request)
        spec = self.policy.types[request.type]
        if spec.behaviour == "leave" and status == "approved":
            self._on_leave_approved(conn, request, changes)
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
               *, to_step: str | None = None) -> Outcome:
        """Approve, reject (reason required) or send back (reason required; to the applicant or an earlier step)."""
        if decision not in _DECIDED:
            raise ValueError(f"unknown decision {decision!r}")
        comment = (comment or "").strip() or None
        if decision != "approve" and not comment:
            return refused("reason_required", msg.REASON_REQUIRED, errors={"comment": msg.REASON_REQUIRED})
        return self._on_assignment(assignment_id, actor_id, lambda ctx: self._decide(ctx, decision, comment,
                                                                                    to_step))

    def _decide(self, ctx: _Context, decision: Decision, comment: str | None, to_step: str | None) -> Outcome:
        conn, request, a, changes = ctx.conn, ctx.request, ctx.assignment, ctx.changes
        step = ctx.step
        if step.kind == "queue":
            return refused("not_allowed", msg.fill(msg.NOT_ALLOWED, number=request.number), request)
        if a.status != "pending":
            return self._stale(ctx)
        status = _DECIDED[decision]
        if not rq.decide_assignment(conn, a.id, ("pending",), status=status, acted_by_id=ctx.actor.id,
                                    comment=comment, decided_at=changes.now):
            return self._stale(ctx)
        messaging.cancel_nudges(conn, [a.id])
        changes.audit.append(audit.Entry(f"assignment.{status}", ctx.actor.id, request.id, {
            "step": step.key, "approver": a.approver_id, "acting_for": a.approver_id
            if a.approver_id != ctx.actor.id else None, "comment": comment}))
        who = {"decision": status, "by": ctx.actor.id, "acting_for": a.approver_id
               if a.approver_id != ctx.actor.id else None, "step": step.key, "comment": comment}
        changes.notify("step_decided", request.requester_id, request, request.version + 1, **who)
        if decision == "send_back":
            return self._send_back(ctx, to_step, comment)
        mine = [x for x in rq.assignments_of(conn, request.id) if x.step_id == step.id
                and x.status not in ("superseded", "cancelled")]
        approvals = sum(1 for x in mine if x.status == "approved")
        rejections = sum(1 for x in mine if x.status == "rejected")
        required = step.required or len(mine)
        if decision == "reject" and len(mine) - rejections < required:
            return self._finish_rejected(ctx, mine)
        if approvals >= required:
            rq.update_step(conn, step.id, status="approved", completed_at=changes.now)
            self._cancel_open(ctx, [x for x in mine if x.status in ("pending", "waiting")])
        request = self._bump(ctx)
        request = self._advance(conn, request, changes)
        text = msg.APPROVED if decision == "approve" else msg.REJECTED
        return Outcome(True, status, msg.fill(text, number=request.number), request)

    def _finish_rejected(self, ctx: _Context, mine: list[Assignment]) -> Outcome:
        conn, changes = ctx.conn, ctx.changes
        rq.update_step(conn, ctx.step.id, status="rejected", completed_at=changes.now)
        self._cancel_open(ctx, [x for x in rq.assignments_of(conn, ctx.request.id) if x.undecided])
        request = self._bump(ctx, status="rejected", decided_at=changes.now)
        self._cancel_waiting_steps(conn, request)
        changes.notify("request_completed", request.requester_id, request, request.version, status="rejected")
        changes.audit.append(audit.Entry("request.completed", ctx.actor.id, request.id, {"status": "rejected"}))
        return Outcome(True, "rejected", msg.fill(msg.REJECTED, number=request.number), request)

    def _send_back(self, ctx: _Context, to_step: str | None, comment: str | None) -> Outcome:
        conn, changes, request = ctx.conn, ctx.changes, ctx.request
        steps = rq.steps_of(conn, request.id, request.round)
        target = None
        if to_step is not None:
            target = next((s for s in steps if s.key == to_step and s.position < ctx.step.position), None)
            if target is None:
                raise _Refusal(refused("unknown_step", msg.fill(msg.UNKNOWN_STEP, step=to_step), request))
        rq.update_step(conn, ctx.step.id, status="sent_back", completed_at=changes.now)
        self._cancel_open(ctx, [x for x in rq.assignments_of(conn, request.id)
                                if x.step_id == ctx.step.id and x.undecided])
        if target is None:  # back to the applicant, who may fix and resubmit
            request = self._bump(ctx, status="sent_back")
            self._cancel_waiting_steps(conn, request)
            changes.notify("request_sent_back", request.requester_id, request, request.version, comment=comment)
            changes.audit.append(audit.Entry("request.sent_back", ctx.actor.id, request.id, {"comment": comment}))
            return Outcome(True, "sent_back", msg.fill(msg.SENT_BACK, number=request.number), request)
        self._rework_from(conn, request, steps, target.position)
        changes.audit.append(audit.Entry("request.sent_back", ctx.actor.id, request.id,
                                         {"comment": comment, "to_step": target.key}))
        request = self._advance(conn, self._bump(ctx), changes)
        return Outcome(True, "sent_back", msg.fill(msg.SENT_BACK, number=request.number), request)

    def _rework_from(self, conn: Connection, request: Request, steps: list[Step], position: int) -> None:
        """Steps from `position` on start again: their assignments are superseded by fresh ones."""
        assigns = rq.assignments_of(conn, request.id)
        for step in steps:
            if step.position < position:
                continue
            old = [a for a in assigns if a.step_id == step.id and a.status not in ("superseded", "cancelled")]
            rq.set_assignments_status(conn, [a.id for a in old], tuple({a.status for a in old}), "superseded")
            rq.insert_assignments(conn, [{"request_id": request.id, "step_id": step.id,
                                          "approver_id": a.approver_id, "status": "waiting"} for a in old])
            rq.update_step(conn, step.id, status="waiting", activated_at=None, due_at=None, completed_at=None)

    def _cancel_open(self, ctx: _Context, open_: list[Assignment]) -> None:
        """Close other people's undecided assignments; their cards must show the outcome."""
        ids = [a.id for a in open_]
        rq.set_assignments_status(ctx.conn, ids, rq.UNDECIDED, "cancelled")
        messaging.cancel_nudges(ctx.conn, ids)
        for a in open_:
            if a.status in ("pending", "claimed"):
                ctx.changes.notify("card_update", a.approver_id, ctx.request, ctx.request.version + 1,
                                   assignment_id=a.id)

    def _cancel_waiting_steps(self, conn: Connection, request: Request) -> None:
        for step in rq.steps_of(conn, request.id, request.round):
            if step.status == "waiting":
                rq.update_step(conn, step.id, status="cancelled")
        rq.set_assignments_status(conn, [a.id for a in rq.assignments_of(conn, request.id)
                                         if a.status == "waiting"], ("waiting",), "cancelled")

    def _bump(self, ctx: _Context, **values: Any) -> Request:
        if not rq.update_request(ctx.conn, ctx.request.id, ctx.request.version, updated_at=ctx.changes.now,
                                 **values):
            raise _Conflict()
        ctx.request = _reload(ctx.conn, ctx.request)
        return ctx.request

    def _stale(self, ctx: _Context) -> Outcome:
        """Why a click no longer applies: who decided, and when, in the clicker's language."""
        request, a = ctx.request, ctx.assignment
        if a.status in ("approved", "rejected", "sent_back", "resolved") and a.acted_by_id:
            return refused("already_decided", self._already(ctx.conn, a.acted_by_id, a.status, a.decided_at,
                                                            request.number), request)
        if a.status == "cancelled":
            decided = [x for x in rq.assignments_of(ctx.conn, request.id) if x.step_id == a.step_id
                       and x.acted_by_id and x.decided_at]
            if decided:
                last = max(decided, key=lambda x: x.decided_at)  # type: ignore[arg-type,return-value]
                return refused("already_decided", self._already(ctx.conn, last.acted_by_id, last.status,
                                                                last.decided_at, request.number), request)
        if request.status != "pending":
            return refused("request_closed", _closed(request), request)
        if a.status == "cancelled":
            return refused("step_closed", msg.fill(msg.STEP_MOVED_ON, number=request.number), request)
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
                       allow_admin: bool = False, check_actor: bool = True) -> Outcome:
        now = self.clock()
        with self.db.unit_of_work() as conn:
            a = rq.get_assignment(conn, assignment_id)
            if a is None:
                return refused("not_found", msg.NOT_FOUND)
            request = rq.get_request(conn, a.request_id, lock=True)
            actor = people.get_employee(conn, actor_id)
            assert request is not None
            if actor is None or not actor.active:
                return refused("unknown_person", msg.UNKNOWN_PERSON, request)
            a = rq.get_assignment(conn, assignment_id)  # re-read under the request's lock
            assert a is not None
            step = next(s for s in rq.steps_of(conn, request.id) if s.id == a.step_id)
            ctx = _Context(conn, request, a, step, actor, _Changes(now))
            if request.status != "pending":
                if a.status in ("approved", "rejected", "sent_back", "resolved", "cancelled"):
                    return self._stale(ctx)
                return refused("request_closed", _closed(request), request)
            if actor.id == request.requester_id:
                return refused("self_approval", msg.SELF_APPROVAL, request)
            if check_actor and not self._may_act(conn, actor, a, request, now, allow_admin):
                if not a.undecided:
                    return self._stale(ctx)
                return refused("not_allowed", msg.fill(msg.NOT_ALLOWED, number=request.number), request)
            try:
                outcome = action(ctx)
            except _Refusal as refusal:
                conn.rollback()
                return refusal.outcome
            except InsufficientLeave as exc:
                conn.rollback()
                return refused("insufficient_leave", msg.fill(
                    msg.LEAVE_BALANCE_CHANGED, available=leave._fmt(exc.available),
                    asked=leave._fmt(exc.requested)), request)
            if not outcome.ok:
                conn.rollback()
                return outcome
            ctx.changes.flush(conn)
            return outcome

    def _may_act(self, conn: Connection, actor: Employee, a: Assignment, request: Request, now: datetime,
                 allow_admin: bool) -> bool:
        """The approver, someone they delegated to for this type and time, or (where allowed) an admin."""
        if actor.id == a.approver_id or (allow_admin and actor.has_role("admin")):
            return True
        return any(d.to_id == actor.id and d.covers(now, request.type)
                   for d in people.delegations_from(conn, {a.approver_id}, now))

    # ---------------------------------------------------------------- queues (IT): claim, resolve
    def claim(self, assignment_id: int, actor_id: int) -> Outcome:
        """Take a queue item: the step becomes yours; other holders' copies show who took it."""
        return self._on_assignment(assignment_id, actor_id, self._claim)

    def _claim(self, ctx: _Context) -> Outcome:
        conn, changes, request = ctx.conn, ctx.changes, ctx.request
        if ctx.step.kind != "queue":
            return refused("not_queue", msg.NOT_QUEUE, request)
        if ctx.step.status == "claimed" or ctx.assignment.status != "pending":
            taker = next((x for x in rq.assignments_of(conn, request.id) if x.step_id == ctx.step.id
                          and x.status in ("claimed", "resolved")), None)
            if taker is not None:
                actor = people.get_employee(conn, taker.acted_by_id or taker.approver_id)
                name = LocalText(ja=actor.name_ja, en=actor.name_en) if actor else LocalText(ja="?", en="?")
                when = (taker.decided_at or changes.now).astimezone(self.tz).strftime("%Y-%m-%d %H:%M")
                return refused("already_claimed", msg.fill(msg.ALREADY_CLAIMED, number=request.number,
                                                           name=name, when=when), request)
            return self._stale(ctx)
        if not rq.decide_assignment(conn, ctx.assignment.id, ("pending",), status="claimed",
                                    acted_by_id=ctx.actor.id, decided_at=changes.now):
            return self._stale(ctx)
        rq.update_step(conn, ctx.step.id, status="claimed")
        others = [x for x in rq.assignments_of(conn, request.id) if x.step_id == ctx.step.id
                  and x.id != ctx.assignment.id and x.status == "pending"]
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
        messaging.cancel_nudges(conn, [ctx.assignment.id])
        rq.update_step(conn, ctx.step.id, status="resolved", completed_at=changes.now)
        changes.audit.append(audit.Entry("step.resolved", ctx.actor.id, ctx.request.id,
                                         {"step": ctx.step.key, "comment": comment}))
        request = self._advance(conn, self._bump(ctx), changes)
        return Outcome(True, "resolved", msg.fill(msg.RESOLVED, number=request.number), request)

    # ---------------------------------------------------------------- reassign (admin)
    def reassign(self, assignment_id: int, admin_id: int, new_approver_id: int, comment: str | None = None) -> Outcome:
        """An admin moves an undecided assignment to someone else (never to the requester)."""
        def action(ctx: _Context) -> Outcome:
            if not ctx.actor.has_role("admin"):
                return refused("only_admin", msg.ONLY_ADMIN, ctx.request)
            if not ctx.assignment.undecided:
                return self._stale(ctx)
            target = people.get_employee(ctx.conn, new_approver_id)
            if target is None or not target.active:
                return refused("inactive", msg.INACTIVE_PERSON, ctx.request)
            if target.id == ctx.request.requester_id:
                return refused("self_approval", msg.SELF_APPROVAL, ctx.request)
            a = ctx.assignment
            rq.set_assignments_status(ctx.conn, [a.id], rq.UNDECIDED, "superseded")
            messaging.cancel_nudges(ctx.conn, [a.id])
            rq.insert_assignments(ctx.conn, [{"request_id": a.request_id, "step_id": a.step_id,
                                              "approver_id": target.id, "status": a.status}])
            new = max(rq.assignments_of(ctx.conn, a.request_id), key=lambda x: x.id)
            request = self._bump(ctx)
            ctx.changes.notify("card_update", a.approver_id, request, request.version, assignment_id=a.id)
            if a.status == "pending":
                kind = "queue_posted" if ctx.step.kind == "queue" else "approval_requested"
                ctx.changes.notify(kind, target.id, request, request.version, assignment_id=new.id,
                                   step=ctx.step.key, due_at=ctx.step.due_at.isoformat() if ctx.step.due_at else None)
                if ctx.step.due_at:
                    self._schedule_nudges(request, new.id, target.id, ctx.changes.now, ctx.step.due_at, ctx.changes)
            ctx.changes.audit.append(audit.Entry("assignment.reassigned", ctx.actor.id, request.id, {
                "from": a.approver_id, "to": target.id, "step": ctx.step.key, "comment": comment}))
            name = LocalText(ja=target.name_ja, en=target.name_en)
            return Outcome(True, "reassigned", msg.fill(msg.REASSIGNED, number=request.number, name=name), request)
        return self._on_assignment(assignment_id, admin_id, action, allow_admin=True)

    # ---------------------------------------------------------------- the requester: withdraw, resubmit
    def withdraw(self, request_id: int, actor_id: int, comment: str | None = None) -> Outcome:
        """The requester takes a request back before the final decision."""
        now = self.clock()
        with self.db.unit_of_work() as conn:
            request = rq.get_request(conn, request_id, lock=True)
            if request is None:
                return refused("not_found", msg.NOT_FOUND)
            if request.requester_id != actor_id:
                return refused("only_requester", msg.ONLY_REQUESTER, request)
            if request.status not in ("pending", "sent_back"):
                return refused("request_closed", _closed(request), request)
            changes = _Changes(now)
            open_ = [a for a in rq.assignments_of(conn, request.id) if a.undecided]
            if not rq.update_request(conn, request.id, request.version, status="withdrawn", updated_at=now,
                                     decided_at=now):
                return refused("request_closed", _closed(request), request)
            request = _reload(conn, request)
            ids = [a.id for a in open_]
            rq.set_assignments_status(conn, ids, rq.UNDECIDED, "cancelled")
            messaging.cancel_nudges(conn, ids)
            for step in rq.steps_of(conn, request.id, request.round):
                if step.status in ("waiting", "active", "claimed"):
                    rq.update_step(conn, step.id, status="cancelled")
            for a in open_:
                if a.status in ("pending", "claimed"):
                    changes.notify("card_update", a.approver_id, request, request.version, assignment_id=a.id)
            changes.audit.append(audit.Entry("request.withdrawn", actor_id, request.id, {"comment": comment}))
            changes.flush(conn)
            return Outcome(True, "withdrawn", msg.fill(msg.WITHDRAWN, number=request.number), request)

    def resubmit(self, request_id: int, actor_id: int, payload: Any) -> Outcome:
        """Fix a sent-back request: same number, its history kept, the route resolved again from the start."""
        now = self.clock()
        with self.db.unit_of_work() as conn:
            request = rq.get_request(conn, request_id, lock=True)
            if request is None:
                return refused("not_found", msg.NOT_FOUND)
            if request.requester_id != actor_id:
                return refused("only_requester", msg.ONLY_REQUESTER, request)
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
            if not rq.update_request(conn, request.id, request.version, status="pending", payload=clean,
                                     warnings=[w.model_dump() for w in warnings] or None,
                                     round=request.round + 1, updated_at=now):
                return refused("request_closed", _closed(request), request)
            request = _reload(conn, request)
            changes = _Changes(now)
            self._create_round(conn, request, route, request.round, changes)
            changes.audit.append(audit.Entry("request.resubmitted", actor_id, request.id,
                                             {"round": request.round, "payload": clean}))
            request = self._advance(conn, request, changes)
            changes.flush(conn)
            return Outcome(True, "resubmitted", msg.fill(msg.RESUBMITTED, number=request.number), request,
                           warnings=warnings)

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
        with self.db.unit_of_work() as conn:
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


@dataclass
class _Context:
    """The rows an assignment action works on, read under the request's lock."""

    conn: Connection
    request: Request
    assignment: Assignment
    step: Step
    actor: Employee
    changes: _Changes


class _Conflict(Exception):
    """The request changed under us despite the lock: a bug or a concurrent writer without the lock."""


class _Refusal(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.code)
        self.outcome = outcome


def _reload(conn: Connection, request: Request) -> Request:
    fresh = rq.get_request(conn, request.id)
    assert fresh is not None
    return fresh


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
