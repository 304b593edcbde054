"""Requests, their numbering counters, the steps of their route and each approver's assignment."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import JSONType, UTCDateTime, metadata, prepared
from models.statements import run, run_later

request_counters = sa.Table(
    "request_counters", metadata,
    sa.Column("type", sa.String(40), primary_key=True),
    sa.Column("fiscal_year", sa.Integer, primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)

requests = sa.Table(
    "requests", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("number", sa.String(40), nullable=False, unique=True),  # LV-2026-0001
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("fiscal_year", sa.Integer, nullable=False),
    sa.Column("requester_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False, index=True),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("warnings", JSONType, nullable=True),
    # pending | sent_back | approved | rejected | withdrawn | resolved
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # bumped by every change: the optimistic-lock token
    sa.Column("round", sa.Integer, nullable=False),  # bumped by every resubmission after a send-back
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    sa.Index("ix_requests_status_type", "status", "type"),
)

steps = sa.Table(
    "steps", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=False),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("key", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # approval | inform | queue
    sa.Column("required", sa.Integer, nullable=False),  # approvals needed; 0 = all of them
    # bumped when a send-back to an earlier step starts this step again; the decisions of earlier cycles stay
    # as they were (history), and only the assignments of the current cycle count
    sa.Column("cycle", sa.Integer, nullable=False),
    # waiting | active | approved | rejected | sent_back | informed | claimed | resolved | cancelled
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("activated_at", UTCDateTime, nullable=True),
    sa.Column("due_at", UTCDateTime, nullable=True),
    sa.Column("completed_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("request_id", "round", "position", name="uq_steps_request_round_position"),
)

assignments = sa.Table(
    "assignments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=False, index=True),
    sa.Column("step_id", sa.Integer, sa.ForeignKey("steps.id"), nullable=False, index=True),
    sa.Column("approver_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False, index=True),
    sa.Column("cycle", sa.Integer, nullable=False),  # the step's cycle this assignment belongs to
    # waiting | pending | approved | rejected | sent_back | informed | claimed | resolved | superseded | cancelled
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("acted_by_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=True),  # a delegate, or the approver
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("decided_at", UTCDateTime, nullable=True),
)

UNDECIDED = ("waiting", "pending", "claimed")


@dataclass(frozen=True)
class Request:
    id: int
    number: str
    type: str
    fiscal_year: int
    requester_id: int
    payload: dict[str, Any]
    warnings: list[dict[str, Any]] | None
    status: str
    version: int
    round: int
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None


@dataclass(frozen=True)
class Step:
    id: int
    request_id: int
    round: int
    position: int
    key: str
    kind: str
    required: int
    cycle: int
    status: str
    activated_at: datetime | None
    due_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True)
class Assignment:
    id: int
    request_id: int
    step_id: int
    approver_id: int
    cycle: int
    status: str
    acted_by_id: int | None
    comment: str | None
    decided_at: datetime | None

    @property
    def undecided(self) -> bool:
        return self.status in UNDECIDED


_T = TypeVar("_T", Request, Step, Assignment)
_OfRequest = TypeVar("_OfRequest", Step, Assignment)  # rows that belong to a request


def _row_builder(cls: type[_T], table: sa.Table) -> Callable[[Sequence[Any]], _T]:
    """`row -> cls` for rows of all of `table`'s columns, by position. The dataclass's __dict__ is filled
    directly: these are frozen dataclasses of plain fields (no __post_init__, no defaults), and their generated
    __init__ sets each field through object.__setattr__ (a Step: 1.3 us against 0.7; a decision builds a dozen).
    Their fields must be the table's columns, in order: checked once, here."""
    names, columns = tuple(f.name for f in fields(cls)), [c.key for c in table.c]
    if list(names) != columns:
        raise TypeError(f"{cls.__name__}'s fields {names} are not the columns of {table.name}: {columns}")
    new = object.__new__

    def build(row: Sequence[Any]) -> _T:
        built = new(cls)
        built.__dict__.update(zip(names, row, strict=True))
        return built
    return build


_REQUEST = _row_builder(Request, requests)
_STEP = _row_builder(Step, steps)
_ASSIGNMENT = _row_builder(Assignment, assignments)


# One statement that both SQLite and PostgreSQL speak. Written as text because SQLAlchemy cannot cache the
# compiled form of its ON CONFLICT construct (measured: 150 us a call, against 4 us for the SQL itself). Its
# values are a string and an int, so on SQLite it runs on the driver's cursor too (models.statements).
_NEXT_NUMBER = sa.text(
    "INSERT INTO request_counters (type, fiscal_year, last) VALUES (:t, :fy, 1) "
    "ON CONFLICT (type, fiscal_year) DO UPDATE SET last = request_counters.last + 1 RETURNING last"
)


def next_number(conn: Connection, type_key: str, fiscal_year: int) -> int:
    """The next sequence number for a type and fiscal year; an upsert, so concurrent submits never share one."""
    return int(run(conn, _NEXT_NUMBER, {"t": type_key, "fy": fiscal_year}).scalar_one())


def insert_request(conn: Connection, **values: Any) -> Request:
    stmt = prepared(("insert_request",), lambda: requests.insert().returning(*requests.c))
    return _REQUEST(run(conn, stmt, values).one())


def get_request(conn: Connection, request_id: int, *, lock: bool = False) -> Request | None:
    """Read a request; with lock=True the row stays locked to this transaction (PostgreSQL FOR NO KEY UPDATE:
    use cases on one request take turns, while rows that merely point at it, such as the tick's new reminder
    rows, do not wait; a plain FOR UPDATE deadlocked a decision against a tick holding that request's nudges)."""
    lock = lock and conn.dialect.name == "postgresql"

    def build() -> Any:
        query = sa.select(requests).where(requests.c.id == sa.bindparam("id"))
        return query.with_for_update(key_share=True) if lock else query

    row = run(conn, prepared(("get_request", lock), build), {"id": request_id}).first()
    return _REQUEST(row) if row else None


def version_of(conn: Connection, request_id: int) -> int | None:
    """The request's version alone (every change bumps it): whether something read earlier is still current."""
    stmt = prepared(("version_of",), lambda: sa.select(requests.c.version).where(requests.c.id == sa.bindparam("id")))
    row = run(conn, stmt, {"id": request_id}).first()
    return int(row[0]) if row else None


def versions_of(conn: Connection, request_ids: Iterable[int]) -> dict[int, int]:
    """`version_of` for several requests, in one statement; a request that does not exist is left out."""
    ids = sorted(set(request_ids))
    if not ids:
        return {}
    stmt = prepared(("versions_of",), lambda: sa.select(requests.c.id, requests.c.version)
                    .where(requests.c.id.in_(sa.bindparam("ids", expanding=True))))
    return {int(r[0]): int(r[1]) for r in run(conn, stmt, {"ids": ids})}


def get_requests(conn: Connection, request_ids: Iterable[int]) -> dict[int, Request]:
    """Several requests by id, in one statement (no lock); a request that does not exist is left out."""
    ids = sorted(set(request_ids))
    if not ids:
        return {}
    stmt = prepared(("get_requests",), lambda: sa.select(requests)
                    .where(requests.c.id.in_(sa.bindparam("ids", expanding=True))))
    return {r.id: r for r in map(_REQUEST, run(conn, stmt, {"ids": ids}))}


def requests_of(conn: Connection, requester_id: int, limit: int = 50) -> list[Request]:
    rows = conn.execute(sa.select(requests).where(requests.c.requester_id == requester_id)
                        .order_by(requests.c.id.desc()).limit(limit))
    return [Request(**r._mapping) for r in rows]


def update_request(conn: Connection, request_id: int, expected_version: int, **values: Any) -> Request | None:
    """Conditional update: applies only if nobody changed the request since `expected_version` was read.
    Returns the request as it now is, or None if it had changed."""
    keys = tuple(sorted(values))

    def build() -> Any:
        return (requests.update()
                .where(requests.c.id == sa.bindparam("_id"), requests.c.version == sa.bindparam("_v"))
                .values(version=sa.bindparam("_v") + 1, **{k: sa.bindparam(k) for k in keys})
                .returning(*requests.c))

    row = run(conn, prepared(("update_request", keys), build),
                       {"_id": request_id, "_v": expected_version, **values}).first()
    return _REQUEST(row) if row else None


def bump_request(conn: Connection, current: Request, **values: Any) -> Request | None:
    """`update_request` for a request this transaction holds: `current` is the request as the transaction last
    read or wrote it (under the request's lock). Only the columns changed are read back; the others are
    `current`'s, since the version still being `current.version` means nothing else changed (every change bumps
    it). Reading the whole row back decoded the payload's JSON once more on every decision."""
    keys = tuple(sorted(values))

    def build() -> Any:
        return (requests.update()
                .where(requests.c.id == sa.bindparam("_id"), requests.c.version == sa.bindparam("_v"))
                .values(version=sa.bindparam("_v") + 1, **{k: sa.bindparam(k) for k in keys})
                .returning(requests.c.version, *(requests.c[k] for k in keys)))

    row = run(conn, prepared(("bump_request", keys), build),
              {"_id": current.id, "_v": current.version, **values}).first()
    if row is None:
        return None
    bumped = object.__new__(Request)  # as _row_builder builds one: current's fields, then those read back
    bumped.__dict__.update(current.__dict__)
    bumped.__dict__.update(zip(("version", *keys), row, strict=True))
    return bumped


def insert_steps(conn: Connection, rows: list[dict[str, Any]]) -> list[Step]:
    """Insert steps (one statement for all of them) and return them, in the order given."""
    if not rows:
        return []
    stmt = prepared(("insert_steps",), lambda: steps.insert().returning(*steps.c, sort_by_parameter_order=True))
    return list(map(_STEP, run(conn, stmt, rows)))


def steps_of(conn: Connection, request_id: int, round_: int | None = None) -> list[Step]:
    def build() -> Any:
        query = sa.select(steps).where(steps.c.request_id == sa.bindparam("rid"))
        if round_ is not None:
            query = query.where(steps.c.round == sa.bindparam("round"))
        return query.order_by(steps.c.round, steps.c.position)

    rows = run(conn, prepared(("steps_of", round_ is not None), build), {"rid": request_id, "round": round_})
    return list(map(_STEP, rows))


def steps_of_requests(conn: Connection, request_ids: Iterable[int]) -> dict[int, list[Step]]:
    """`steps_of` (every round, in round and position order) for several requests, in one statement."""
    return _per_request(conn, steps, _STEP, request_ids, steps.c.round, steps.c.position)


def _per_request(conn: Connection, table: sa.Table, row: Callable[[Any], _OfRequest],
                 request_ids: Iterable[int], *order: Any) -> dict[int, list[_OfRequest]]:
    """The rows of `table` belonging to each of these requests (every one of them a key), in one statement, each
    request's in `order`."""
    ids = sorted(set(request_ids))
    found: dict[int, list[_OfRequest]] = {i: [] for i in ids}
    if ids:
        stmt = prepared(("per_request", table.name), lambda: sa.select(table)
                        .where(table.c.request_id.in_(sa.bindparam("ids", expanding=True)))
                        .order_by(table.c.request_id, *order))
        for item in map(row, run(conn, stmt, {"ids": ids})):
            found[item.request_id].append(item)
    return found


def update_step(conn: Connection, step_id: int, **values: Any) -> None:
    keys = tuple(sorted(values))
    stmt = prepared(("update_step", keys), lambda: steps.update().where(steps.c.id == sa.bindparam("_id"))
                    .values(**{k: sa.bindparam(k) for k in keys}))
    run(conn, stmt, {"_id": step_id, **values})


def insert_assignments(conn: Connection, rows: list[dict[str, Any]]) -> list[Assignment]:
    """Insert assignments (one statement) and return them in the order given."""
    if not rows:
        return []
    stmt = prepared(("insert_assignments",),
                    lambda: assignments.insert().returning(*assignments.c, sort_by_parameter_order=True))
    return list(map(_ASSIGNMENT, run(conn, stmt, rows)))


def assignments_of(conn: Connection, request_id: int) -> list[Assignment]:
    stmt = prepared(("assignments_of",), lambda: sa.select(assignments)
                    .where(assignments.c.request_id == sa.bindparam("rid")).order_by(assignments.c.id))
    return list(map(_ASSIGNMENT, run(conn, stmt, {"rid": request_id})))


def assignments_of_requests(conn: Connection, request_ids: Iterable[int]) -> dict[int, list[Assignment]]:
    """`assignments_of` (in id order) for several requests, in one statement."""
    return _per_request(conn, assignments, _ASSIGNMENT, request_ids, assignments.c.id)


def get_assignment(conn: Connection, assignment_id: int) -> Assignment | None:
    stmt = prepared(("get_assignment",), lambda: sa.select(assignments)
                    .where(assignments.c.id == sa.bindparam("id")))
    row = run(conn, stmt, {"id": assignment_id}).first()
    return _ASSIGNMENT(row) if row else None


def decide_assignment(conn: Connection, assignment_id: int, from_statuses: tuple[str, ...], **values: Any) -> bool:
    """Conditional update: only an assignment still in one of `from_statuses` changes; False if it had moved on."""
    keys = tuple(sorted(values))
    stmt = prepared(("decide_assignment", keys), lambda: assignments.update().where(
        assignments.c.id == sa.bindparam("_id"), assignments.c.status.in_(sa.bindparam("_from", expanding=True)),
    ).values(**{k: sa.bindparam(k) for k in keys}))
    result = run(conn, stmt, {"_id": assignment_id, "_from": list(from_statuses), **values})
    return result.rowcount == 1


def set_assignments_status(conn: Connection, ids: list[int], from_statuses: tuple[str, ...], status: str) -> None:
    if not ids:
        return
    stmt = prepared(("set_assignments_status",), lambda: assignments.update().where(
        assignments.c.id.in_(sa.bindparam("_ids", expanding=True)),
        assignments.c.status.in_(sa.bindparam("_from", expanding=True)),
    ).values(status=sa.bindparam("_status")))
    run(conn, stmt, {"_ids": ids, "_from": list(from_statuses), "_status": status})


def pending_for(conn: Connection, approver_ids: list[int]) -> list[tuple[Assignment, Request]]:
    """Undecided, active assignments of these approvers with their requests, oldest first (the inbox)."""
    if not approver_ids:
        return []
    return _open_assignments(conn, assignments.c.approver_id.in_(approver_ids))


def open_assignments(conn: Connection, assignment_ids: list[int]) -> list[tuple[Assignment, Request]]:
    """These assignments with their requests, those still open (undecided, request pending) only, oldest first."""
    if not assignment_ids:
        return []
    return _open_assignments(conn, assignments.c.id.in_(sorted(set(assignment_ids))))


def _open_assignments(conn: Connection, which: sa.ColumnElement[bool]) -> list[tuple[Assignment, Request]]:
    rows = conn.execute(
        sa.select(assignments, *[c.label(f"r_{c.name}") for c in requests.c])
        .join(requests, requests.c.id == assignments.c.request_id)
        .where(which, assignments.c.status.in_(("pending", "claimed")), requests.c.status == "pending")
        .order_by(assignments.c.id)
    )
    out = []
    for r in rows:
        m = r._mapping
        a = Assignment(**{c.name: m[c.name] for c in assignments.c})
        req = Request(**{c.name: m[f"r_{c.name}"] for c in requests.c})
        out.append((a, req))
    return out


def route_of_assignment(conn: Connection, assignment_id: int, *,
                        lock: bool = False) -> tuple[Request | None, list[Assignment], list[Step]]:
    """What a decision on an assignment reads first: its request (locked, as `request_of_assignment`), the request's
    assignments (every round, `assignments_of`) and the steps of its current round (`steps_of`); nothing if there is
    no such assignment. Three queries that name only the assignment, so that on PostgreSQL they go out together and
    are answered after one wait for the server instead of three (`statements.run_later`). The two after the lock
    read as of their own start, once the lock is held, as when they were sent after its answer."""
    later = run_later(conn, _request_of_assignment(conn, lock), {"id": assignment_id})
    assigns = run_later(conn, prepared(("assignments_of_assignment",), lambda: sa.select(assignments).where(
        assignments.c.request_id == _request_id_of(sa.bindparam("id"))).order_by(assignments.c.id)),
        {"id": assignment_id})
    current = run_later(conn, prepared(("steps_of_assignment",), lambda: sa.select(steps).where(
        steps.c.request_id == _request_id_of(sa.bindparam("id")),
        steps.c.round == sa.select(requests.c.round).where(requests.c.id == _request_id_of(sa.bindparam("id")))
        .scalar_subquery()).order_by(steps.c.round, steps.c.position)), {"id": assignment_id})
    row = later.result().first()
    return (_REQUEST(row) if row else None, list(map(_ASSIGNMENT, assigns.result())),
            list(map(_STEP, current.result())))


def _request_id_of(assignment_id: Any) -> Any:
    """The request of an assignment, as a scalar subquery (an assignment never moves to another request)."""
    mine = assignments.alias("mine")
    return sa.select(mine.c.request_id).where(mine.c.id == assignment_id).scalar_subquery()


def _request_of_assignment(conn: Connection, lock: bool) -> Any:
    lock = lock and conn.dialect.name == "postgresql"

    def build() -> Any:
        query = (sa.select(requests).join(assignments, assignments.c.request_id == requests.c.id)
                 .where(assignments.c.id == sa.bindparam("id")))
        return query.with_for_update(of=requests, key_share=True) if lock else query  # see get_request

    return prepared(("request_of_assignment", lock), build)


def request_of_assignment(conn: Connection, assignment_id: int, *, lock: bool = False) -> Request | None:
    """The request an assignment belongs to, in one statement; with lock=True the request row stays locked to
    this transaction on PostgreSQL (an assignment never moves to another request, so the join is stable)."""
    row = run(conn, _request_of_assignment(conn, lock), {"id": assignment_id}).first()
    return _REQUEST(row) if row else None
