"""Who approves: turning a type's route into concrete people at submit time.

Resolvers: the requester's manager (or N levels up), the department head, a role's holders, a named person.
Separation of duties: a resolved approver who is the requester, or is vacant or inactive, moves up one level.
Conditions (amount thresholds, leave length, department) decide which steps a request goes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Condition, RequestTypeSpec, StepSpec
from models import people
from models.people import Employee
from workflow import messages as msg

MAX_CHAIN = 20  # a manager chain longer than this is a data error (a cycle), not an org chart


@dataclass(frozen=True)
class ResolvedStep:
    """A step with the people who act on it, fixed at submit time."""

    position: int
    spec: StepSpec
    approver_ids: tuple[int, ...]
    required: int  # approvals needed; 0 = all


class RouteError(Exception):
    """No one can take a step; the message tells the requester whom to ask."""

    def __init__(self, message: LocalText) -> None:
        super().__init__(message.en)
        self.message = message


class _People:
    """Employees read once per resolution (routes look at the same few people repeatedly)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cache: dict[int, Employee | None] = {}

    def get(self, employee_id: int | None) -> Employee | None:
        if employee_id is None:
            return None
        if employee_id not in self.cache:
            self.cache[employee_id] = people.get_employee(self.conn, employee_id)
        return self.cache[employee_id]


def _usable(person: Employee | None, requester: Employee) -> bool:
    return person is not None and person.active and person.id != requester.id


def _move_up(found: _People, person: Employee | None, requester: Employee) -> Employee | None:
    """From an unusable approver, up the manager chain to the first usable one."""
    seen = 0
    while person is not None and not _usable(person, requester) and seen < MAX_CHAIN:
        person = found.get(person.manager_id)
        seen += 1
    return person if _usable(person, requester) else None


def _manager(found: _People, requester: Employee, levels: int) -> Employee | None:
    person: Employee | None = requester
    for _ in range(levels):
        if person is None:
            break
        person = found.get(person.manager_id)
    if person is None:  # the chain ended: the department head decides
        return _department_head(found, requester)
    return _move_up(found, person, requester)


def _department_head(found: _People, requester: Employee) -> Employee | None:
    department_id = requester.department_id
    for _ in range(MAX_CHAIN):
        if department_id is None:
            break
        department = people.get_department(found.conn, department_id)
        if department is None:
            break
        head = found.get(department.head_id)
        if _usable(head, requester):
            return head
        if head is not None and head.id == requester.id:
            # the head files their own request: their superior decides
            return _move_up(found, found.get(head.manager_id), requester) or (
                _parent_head(found, department.parent_id, requester))
        department_id = department.parent_id
    return _move_up(found, found.get(requester.manager_id), requester)


def _parent_head(found: _People, parent_id: int | None, requester: Employee) -> Employee | None:
    parent = people.get_department(found.conn, parent_id) if parent_id else None
    return _move_up(found, found.get(parent.head_id), requester) if parent else None


def resolve_approver(found: _People, ref: str, requester: Employee) -> list[Employee]:
    """One resolver reference (e.g. 'manager', 'role:finance') to the people it means for this requester."""
    kind, _, arg = ref.partition(":")
    if kind == "manager":
        person = _manager(found, requester, int(arg or 1))
        return [person] if person else []
    if kind == "department_head":
        person = _department_head(found, requester)
        return [person] if person else []
    if kind == "role":
        holders = [e for e in people.employees_with_role(found.conn, arg) if e.id != requester.id]
        return holders
    if kind == "person":
        person = people.find_employee_by_email(found.conn, arg)
        if person is not None and not _usable(person, requester):
            person = _move_up(found, found.get(person.manager_id), requester)
        return [person] if person else []
    raise ValueError(f"unknown approver reference {ref!r}")


def _as_decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def condition_holds(cond: Condition, facts: dict[str, Any]) -> bool:
    """A missing fact never satisfies a condition (so an optional field left empty adds no step)."""
    value = facts.get(cond.fact)
    if value is None:
        return False
    values = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    for op, bound in (("gt", cond.gt), ("gte", cond.gte), ("lt", cond.lt), ("lte", cond.lte)):
        if bound is None:
            continue
        number = _as_decimal(value)
        if number is None:
            return False
        if not {"gt": number > bound, "gte": number >= bound, "lt": number < bound, "lte": number <= bound}[op]:
            return False
    if cond.eq is not None and str(cond.eq) not in values:
        return False
    if cond.in_ is not None and not {str(v) for v in cond.in_} & set(values):
        return False
    if cond.not_in is not None and {str(v) for v in cond.not_in} & set(values):
        return False
    return True


def resolve_route(conn: Connection, spec: RequestTypeSpec, requester: Employee,
                  facts: dict[str, Any]) -> list[ResolvedStep]:
    """The steps this request goes through, each with its people. Raises RouteError if a step has nobody."""
    found = _People(conn)
    found.cache[requester.id] = requester
    steps: list[ResolvedStep] = []
    for spec_step in spec.route:
        if not all(condition_holds(c, facts) for c in spec_step.when):
            continue
        approvers: dict[int, Employee] = {}
        for ref in spec_step.approver_refs:
            for person in resolve_approver(found, ref, requester):
                approvers.setdefault(person.id, person)
        if not approvers:
            title = spec_step.title or LocalText(ja=spec_step.id, en=spec_step.id)
            raise RouteError(msg.fill(msg.NO_APPROVER, step=title))
        required = _required(spec_step, len(approvers))
        steps.append(ResolvedStep(len(steps), spec_step, tuple(approvers), required))
    return steps


def _required(step: StepSpec, count: int) -> int:
    if step.kind != "approval" or step.require == "any":
        return 1 if step.kind != "inform" else 0
    if step.require == "all":
        return 0
    return min(int(step.require), count)  # N of M, never more than there are people
