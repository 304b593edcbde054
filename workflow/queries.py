"""The read model of one request: everything a card shows, read in one go.

A card (the approver's DM, the requester's status message, App Home) needs the request, the titles of its type
and steps from workflows.yaml, and who stands where on the route, with names in both languages. `load_details`
reads that with a fixed handful of statements (request, steps, assignments, then every name at once), whatever
the size of the route, so updating every copy of a card after a decision stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Policy, RequestTypeSpec
from models import people
from models import requests as rq
from models.people import Employee
from models.requests import Assignment, Request, Step

UNKNOWN_PERSON = LocalText.of("（不明）", "(unknown)")

# Assignments that only record history: a person replaced by a reassignment is not on the route any more.
_HIDDEN = ("superseded",)


@dataclass(frozen=True)
class PersonDecision:
    """One person on a step: where they stand, and who acted when a delegate did it for them."""

    approver_id: int
    approver_name: LocalText
    status: str  # an assignment status: waiting | pending | approved | rejected | sent_back | claimed | ...
    acted_by_name: LocalText | None  # set only when someone other than the approver acted (a delegate)
    decided_at: datetime | None
    comment: str | None
    assignment_id: int = 0  # what a button on this person's card carries
    acted_by_id: int | None = None


@dataclass(frozen=True)
class StepView:
    """One step of the current round, with the people of its current cycle."""

    key: str
    title: LocalText
    kind: str  # approval | inform | queue
    status: str  # a step status: waiting | active | approved | rejected | sent_back | informed | claimed | ...
    people: tuple[PersonDecision, ...]
    due_at: datetime | None


@dataclass(frozen=True)
class RequestDetails:
    """A request as a card shows it. `history_rounds` counts the rounds before the current one (each
    resubmission after a send-back starts a new round); `names` holds every person the card may mention,
    the people picked in user fields of the payload included."""

    request: Request
    type_title: LocalText
    requester_name: LocalText
    steps: tuple[StepView, ...]
    history_rounds: int
    names: Mapping[int, LocalText] = field(default_factory=dict)

    def person(self, assignment_id: int) -> tuple[StepView, PersonDecision] | None:
        """The step and person an assignment belongs to, if it is on the current route."""
        for step in self.steps:
            for one in step.people:
                if one.assignment_id == assignment_id:
                    return step, one
        return None


def load_details(conn: Connection, policy: Policy, request_id: int) -> RequestDetails | None:
    """The request with its current route and every name it mentions; None when there is no such request."""
    request = rq.get_request(conn, request_id)
    if request is None:
        return None
    spec = policy.types.get(request.type)
    steps = rq.steps_of(conn, request.id, request.round)
    current = _current_assignments(steps, rq.assignments_of(conn, request.id))
    ids = {request.requester_id} | _people_ids(current) | _payload_people(spec, request)
    names = {i: _name(e) for i, e in people.get_employees(conn, ids).items()}
    return _details(request, spec, steps, current, names)


def load_details_many(conn: Connection, policy: Policy, request_ids: Iterable[int]) -> dict[int, RequestDetails]:
    """`load_details` for several requests in four statements, not four each (delivery reads the requests of a
    claimed batch of rows at once); a request that does not exist is left out."""
    found = rq.get_requests(conn, request_ids)
    routes = rq.steps_of_requests(conn, found)
    decisions = rq.assignments_of_requests(conn, found)
    read: dict[int, tuple[RequestTypeSpec | None, list[Step], dict[int, list[Assignment]], set[int]]] = {}
    everyone: set[int] = set()
    for request_id, request in found.items():
        spec = policy.types.get(request.type)
        steps = [s for s in routes[request_id] if s.round == request.round]
        current = _current_assignments(steps, decisions[request_id])
        ids = {request.requester_id} | _people_ids(current) | _payload_people(spec, request)
        read[request_id] = (spec, steps, current, ids)
        everyone |= ids
    employees = people.get_employees(conn, everyone)
    return {request_id: _details(found[request_id], spec, steps, current,
                                 {i: _name(e) for i, e in employees.items() if i in ids})
            for request_id, (spec, steps, current, ids) in read.items()}


def current_details(conn: Connection, policy: Policy, request_ids: Iterable[int],
                    known: Mapping[int, RequestDetails]) -> dict[int, RequestDetails]:
    """The details of those of these requests that `known` does not hold as they now are (a request's version
    says: every change bumps it), read together (`load_details_many`); five statements in all."""
    versions = rq.versions_of(conn, request_ids)
    stale = [i for i, version in versions.items()
             if (had := known.get(i)) is None or had.request.version != version]
    return load_details_many(conn, policy, stale) if stale else {}


def _details(request: Request, spec: RequestTypeSpec | None, steps: list[Step],
             current: Mapping[int, list[Assignment]], names: dict[int, LocalText]) -> RequestDetails:
    views = tuple(_step_view(step, spec, current.get(step.id, []), names) for step in steps)
    return RequestDetails(
        request=request,
        type_title=spec.title if spec else LocalText.of(request.type, request.type),
        requester_name=names.get(request.requester_id, UNKNOWN_PERSON),
        steps=views,
        history_rounds=request.round - 1,
        names=names,
    )


def _current_assignments(steps: list[Step], assigns: list[Assignment]) -> dict[int, list[Assignment]]:
    """The assignments of each step's current cycle: earlier cycles are decisions a send-back set aside."""
    cycles = {s.id: s.cycle for s in steps}
    found: dict[int, list[Assignment]] = {}
    for a in assigns:
        if cycles.get(a.step_id) == a.cycle and a.status not in _HIDDEN:
            found.setdefault(a.step_id, []).append(a)
    return found


def _people_ids(current: Mapping[int, list[Assignment]]) -> set[int]:
    ids: set[int] = set()
    for assigns in current.values():
        for a in assigns:
            ids.add(a.approver_id)
            if a.acted_by_id is not None:
                ids.add(a.acted_by_id)
    return ids


def _payload_people(spec: RequestTypeSpec | None, request: Request) -> set[int]:
    """Employees chosen in user fields (e.g. a stand-in during leave), so a card can name them."""
    ids: set[int] = set()
    for f in spec.fields if spec else []:
        value = request.payload.get(f.id)
        if f.type == "user" and str(value).isdigit():
            ids.add(int(str(value)))
    return ids


def _step_view(step: Step, spec: RequestTypeSpec | None, assigns: list[Assignment],
               names: Mapping[int, LocalText]) -> StepView:
    step_spec = next((s for s in spec.route if s.id == step.key), None) if spec else None
    title = step_spec.title if step_spec and step_spec.title else LocalText.of(step.key, step.key)
    return StepView(key=step.key, title=title, kind=step.kind, status=step.status,
                    people=tuple(_decision(a, names) for a in assigns), due_at=step.due_at)


def _decision(a: Assignment, names: Mapping[int, LocalText]) -> PersonDecision:
    delegate = a.acted_by_id is not None and a.acted_by_id != a.approver_id
    return PersonDecision(
        approver_id=a.approver_id,
        approver_name=names.get(a.approver_id, UNKNOWN_PERSON),
        status=a.status,
        acted_by_name=names.get(a.acted_by_id or 0, UNKNOWN_PERSON) if delegate else None,
        decided_at=a.decided_at,
        comment=a.comment,
        assignment_id=a.id,
        acted_by_id=a.acted_by_id,
    )


def _name(person: Employee) -> LocalText:
    return LocalText(ja=person.name_ja, en=person.name_en)


def queue_assignment_for(conn: Connection, assignment_id: int, person_id: int) -> int:
    """The assignment a person claims with a queue card's button: their own pending one in the card's step
    (a queue's shared channel card is posted for one holder, but anyone of the queue may take it), else the
    card's own (the engine then says why they cannot)."""
    card = rq.get_assignment(conn, assignment_id)
    if card is None or card.approver_id == person_id:
        return assignment_id
    mine = next((a for a in rq.assignments_of(conn, card.request_id)
                 if a.step_id == card.step_id and a.cycle == card.cycle and a.approver_id == person_id
                 and a.status == "pending"), None)
    return mine.id if mine is not None else assignment_id
