"""What `madoguchi export` reads: requests, decisions and audit events in a time window, streamed.

A company of 30,000 people has millions of rows, so nothing here builds a list: each function runs ONE
statement with `yield_per` (a server-side cursor on PostgreSQL, the driver's own stepping on SQLite) and yields
one record at a time; one statement also means one consistent snapshot, even while the server writes.
The window is half-open, [start, end), in UTC instants; calendar dates are the caller's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.audit import audit_events
from models.people import employees
from models.requests import assignments, requests, steps

BATCH = 1000  # rows per fetch: enough to amortise the round trip, small enough to stay a few MB


@dataclass(frozen=True)
class RequestRecord:
    number: str
    type: str
    status: str
    requester_code: str | None
    requester_email: str
    requester_name: str
    round: int
    submitted_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class DecisionRecord:
    """One person's decision on one assignment. `approver_*` is who decided; `acting_for_*` whose card it was,
    when someone else decided in their place (代理: a delegate, or the manager an overdue step escalated to)."""

    request_number: str
    request_type: str
    round: int
    step: str
    decision: str  # approved | rejected | sent_back | claimed | resolved
    approver_email: str
    approver_name: str
    acting_for_email: str | None
    acting_for_name: str | None
    comment: str | None
    decided_at: datetime


@dataclass(frozen=True)
class AuditRecord:
    """An audit event as stored (`data` is the very text that was hashed), with the actor and request named."""

    seq: int
    at: datetime
    actor_id: int | None
    actor_email: str | None
    actor_name: str | None
    kind: str
    request_id: int | None
    request_number: str | None
    data: str
    prev_hash: str
    hash: str


def _stream(conn: Connection, query: sa.Select[Any]) -> Iterator[sa.RowMapping]:
    # on the statement, not the connection: Connection.execution_options() would change the connection itself
    result = conn.execute(query.execution_options(yield_per=BATCH))
    try:
        for row in result:
            yield row._mapping
    finally:
        result.close()  # an abandoned export (a broken pipe) releases its cursor at once


def _window(column: Any, start: datetime | None, end: datetime | None) -> list[sa.ColumnElement[bool]]:
    return [c for c in ((column >= start) if start else None, (column < end) if end else None) if c is not None]


def requests_submitted(conn: Connection, start: datetime | None, end: datetime | None) -> Iterator[RequestRecord]:
    """Requests submitted in [start, end), in the order they were submitted."""
    who = employees.alias("requester")
    query = (sa.select(requests.c.number, requests.c.type, requests.c.status, who.c.code, who.c.email,
                       who.c.name_ja, requests.c.round, requests.c.created_at, requests.c.updated_at,
                       requests.c.decided_at, requests.c.payload)
             .join(who, who.c.id == requests.c.requester_id)
             .where(*_window(requests.c.created_at, start, end))
             .order_by(requests.c.created_at, requests.c.id))
    for m in _stream(conn, query):
        yield RequestRecord(m["number"], m["type"], m["status"], m["code"], m["email"], m["name_ja"], m["round"],
                            m["created_at"], m["updated_at"], m["decided_at"], m["payload"])


def decisions_made(conn: Connection, start: datetime | None, end: datetime | None) -> Iterator[DecisionRecord]:
    """Decisions people made in [start, end), oldest first. An FYI step's "informed" and assignments that were
    cancelled or superseded before anyone acted are not decisions (nobody acted), so they are not here."""
    approver, holder = employees.alias("approver"), employees.alias("holder")
    query = (sa.select(requests.c.number, requests.c.type, steps.c.round, steps.c.key, assignments.c.status,
                       approver.c.email.label("approver_email"), approver.c.name_ja.label("approver_name"),
                       holder.c.id.label("holder_id"), holder.c.email.label("holder_email"),
                       holder.c.name_ja.label("holder_name"), assignments.c.acted_by_id,
                       assignments.c.comment, assignments.c.decided_at)
             .select_from(assignments)
             .join(requests, requests.c.id == assignments.c.request_id)
             .join(steps, steps.c.id == assignments.c.step_id)
             .join(approver, approver.c.id == assignments.c.acted_by_id)
             .join(holder, holder.c.id == assignments.c.approver_id)
             .where(assignments.c.acted_by_id.is_not(None), assignments.c.decided_at.is_not(None),
                    *_window(assignments.c.decided_at, start, end))
             .order_by(assignments.c.decided_at, assignments.c.id))
    for m in _stream(conn, query):
        deputy = m["acted_by_id"] != m["holder_id"]
        yield DecisionRecord(m["number"], m["type"], m["round"], m["key"], m["status"], m["approver_email"],
                             m["approver_name"], m["holder_email"] if deputy else None,
                             m["holder_name"] if deputy else None, m["comment"], m["decided_at"])


def audit_trail(conn: Connection, start: datetime | None, end: datetime | None) -> Iterator[AuditRecord]:
    """Audit events recorded in [start, end), in chain order."""
    actor = employees.alias("actor")
    query = (sa.select(audit_events, actor.c.email.label("actor_email"), actor.c.name_ja.label("actor_name"),
                       requests.c.number.label("request_number"))
             .select_from(audit_events)
             .outerjoin(actor, actor.c.id == audit_events.c.actor_id)
             .outerjoin(requests, requests.c.id == audit_events.c.request_id)
             .where(*_window(audit_events.c.at, start, end))
             .order_by(audit_events.c.seq))
    for m in _stream(conn, query):
        yield AuditRecord(m["seq"], m["at"], m["actor_id"], m["actor_email"], m["actor_name"], m["kind"],
                          m["request_id"], m["request_number"], m["data"], m["prev_hash"], m["hash"])
