"""What the bot will say and when: the outbox (messages to deliver) and nudge rows (reminders falling due)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import JSONType, UTCDateTime, metadata, prepared, unindexed
from models.statements import run

# The request id of whatever is writing messages now (an HTTP request, a tick), set by the edges (bot/); `enqueue`
# stamps it into each message's payload as "trace", so delivery's log lines carry the id of the request that caused
# them (no column: the payload is the message's own JSON). Copied into the writer thread by bot/writer.py.
TRACE: ContextVar[str | None] = ContextVar("madoguchi_trace", default=None)
TRACE_KEY = "trace"

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # the same logical message is enqueued once, however often a use case is retried
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("recipient_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=True, index=True),
    sa.Column("payload", JSONType, nullable=False),  # a neutral message; edges render it
    sa.Column("state", sa.String(20), nullable=False),  # pending | sending | sent | failed | dead
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("platform", sa.String(20), nullable=True),
    sa.Column("message_ref", JSONType, nullable=True),  # channel + ts / activity id, to update the card later
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    # which due rows a claim takes first, lower first (workflow/delivery.py says which kinds); on the server's
    # side only, so an insert that does not say stays on the fast path (models/statements.py)
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default=sa.text("1")),
    sa.Index("ix_outbox_state_next", "state", "next_attempt_at"),
)

nudges = sa.Table(
    "nudges", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=False, index=True),
    sa.Column("assignment_id", sa.Integer, sa.ForeignKey("assignments.id"), nullable=False, index=True),
    sa.Column("target_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # before_due | due | overdue | snoozed | escalation | final
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # pending | claimed | sent | cancelled
    sa.Column("claimed_by", sa.String(100), nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Index("ix_nudges_state_due", "state", "due_at"),
    # a person's reminders and escalations (snooze, the inbox's escalated items)
    sa.Index("ix_nudges_target_kind", "target_id", "kind"),
)
# a reminder still pending, checked beside its id or its assignment, not through ix_nudges_state_due (see `unindexed`)
_PENDING = unindexed(nudges.c.state) == "pending"

# which digest (an outbox row of kind nudge_digest) shows which request: a decision updates every posted digest
# that shows its request, found by request in one indexed lookup
digest_requests = sa.Table(
    "digest_requests", metadata,
    sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id"), primary_key=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), primary_key=True, index=True),
)


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    idempotency_key: str
    recipient_id: int
    kind: str
    request_id: int | None
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: datetime
    platform: str | None
    message_ref: dict[str, Any] | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    priority: int = 1


@dataclass(frozen=True)
class Nudge:
    id: int
    request_id: int
    assignment_id: int
    target_id: int
    kind: str
    due_at: datetime
    state: str
    claimed_by: str | None
    claimed_at: datetime | None
    sent_at: datetime | None


def enqueue(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add messages to the outbox in the caller's transaction (each stamped with the current trace, if any)."""
    if rows:
        run(conn, prepared(("enqueue",), outbox.insert), stamped(rows))


def stamped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Outbox rows with the current trace (`TRACE`) in their payloads; the rows themselves when there is none."""
    trace = TRACE.get()
    if trace is None:
        return rows
    return [{**row, "payload": {**row["payload"], TRACE_KEY: trace}} for row in rows]


def link_digests(conn: Connection, keys: dict[str, list[int]]) -> None:
    """Record which requests the digests just enqueued show (by their idempotency keys), in the caller's
    transaction. A digest enqueued before (a repeated tick) keeps its links: the insert skips what exists."""
    if not keys:
        return
    ids = {str(row[0]): int(row[1]) for row in conn.execute(
        sa.select(outbox.c.idempotency_key, outbox.c.id).where(outbox.c.idempotency_key.in_(sorted(keys))))}
    known = {(int(row[0]), int(row[1])) for row in conn.execute(
        sa.select(digest_requests.c.outbox_id, digest_requests.c.request_id)
        .where(digest_requests.c.outbox_id.in_(sorted(ids.values()))))} if ids else set()
    rows = [{"outbox_id": ids[key], "request_id": r} for key, requests in keys.items() if key in ids
            for r in sorted(set(requests)) if (ids[key], r) not in known]
    if rows:
        conn.execute(digest_requests.insert(), rows)


def sent_digests(conn: Connection, request_id: int) -> list[OutboxMessage]:
    """The digests showing a request that were posted (they have a message to update)."""
    # Asked for every row delivery sends about a request: built once, run on the fast path. From the request's
    # links to their digests, by primary key; the state is checked here: with it in the query, PostgreSQL (a
    # prepared statement first planned while the table was small) walked every message ever sent
    # (ix_outbox_state_next) and looked each one up in the links. A request is in a few digests at most.
    rows = run(conn, prepared(("sent_digests",), lambda: sa.select(outbox)
                              .select_from(digest_requests)
                              .join(outbox, outbox.c.id == digest_requests.c.outbox_id)
                              .where(digest_requests.c.request_id == sa.bindparam("request"))
                              .order_by(outbox.c.id)), {"request": request_id})
    return [OutboxMessage(**r._mapping) for r in rows if posted(r)]


def posted(row: Any) -> bool:
    """An outbox row that was sent and has a message to update. Lookups by request check this on the rows they
    found, not in their query (see `unindexed`); a JSON column's "no value" is stored differently by each backend."""
    return bool(row.state == "sent" and row.message_ref)


def outbox_for(conn: Connection, request_id: int) -> list[OutboxMessage]:
    rows = conn.execute(sa.select(outbox).where(outbox.c.request_id == request_id).order_by(outbox.c.id))
    return [OutboxMessage(**r._mapping) for r in rows]


def schedule_nudges(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        run(conn, prepared(("schedule_nudges",), nudges.insert), rows)


def cancel_nudges(conn: Connection, assignment_ids: list[int]) -> None:
    """Cancel the pending reminders of decided assignments (same transaction as the decision). Returns nothing: on
    PostgreSQL the count would be one more wait for the server in every decision (models/postgres_path.py)."""
    if not assignment_ids:
        return
    # by assignment, the state checked beside it (`_PENDING`): with `state = 'pending'` SQLite (for two
    # assignments or more) and PostgreSQL (a prepared statement first planned while the table was small) walked every
    # pending reminder of the company through ix_nudges_state_due
    stmt = prepared(("cancel_nudges",), lambda: nudges.update().where(
        nudges.c.assignment_id.in_(sa.bindparam("ids", expanding=True)), _PENDING,
    ).values(state="cancelled"))
    run(conn, stmt, {"ids": assignment_ids})


def nudges_for(conn: Connection, request_id: int) -> list[Nudge]:
    rows = conn.execute(sa.select(nudges).where(nudges.c.request_id == request_id).order_by(nudges.c.id))
    return [Nudge(**r._mapping) for r in rows]


# ---------------------------------------------------------------------------------------------- the tick's side
def due_nudges(conn: Connection, now: datetime, limit: int) -> list[Nudge]:
    """Pending rows due by `now` (oldest due first), through the index on (state, due_at). On PostgreSQL the rows stay locked to this transaction and rows
    another ticker holds are skipped, so replicas ticking at once take different rows."""
    query = due_query(now, limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [Nudge(**r._mapping) for r in conn.execute(query)]


def due_query(now: datetime, limit: int) -> sa.Select[Any]:
    """The due rows' SELECT (tests check its plan uses the index on (state, due_at))."""
    return (sa.select(nudges).where(nudges.c.state == "pending", nudges.c.due_at <= now)
            .order_by(nudges.c.due_at, nudges.c.id).limit(limit))


def close_query(conn: Connection, ids: list[int], state: str, now: datetime) -> Any:
    """The conditional UPDATE that moves pending rows on (tests check its plan looks the ids up)."""
    return (nudges.update().where(nudges.c.id.in_(ids), _PENDING)
            .values(state=state, sent_at=now if state == "sent" else None).returning(nudges.c.id))


def close_nudges(conn: Connection, ids: list[int], state: str, now: datetime) -> list[int]:
    """Pending rows -> `state` (sent | cancelled); returns the ids this call moved (a row someone else moved in
    between is not among them)."""
    if not ids:
        return []
    return [int(i) for i in conn.execute(close_query(conn, ids, state, now)).scalars()]


def defer_nudges(conn: Connection, moves: list[tuple[int, datetime]]) -> None:
    """Pending rows wait until a later time (the recipient's next working hours, a snooze)."""
    for nudge_id, until in moves:
        conn.execute(nudges.update().where(nudges.c.id == nudge_id, _PENDING).values(due_at=until))


def pending_kinds(conn: Connection, assignment_ids: list[int]) -> dict[int, set[str]]:
    """The kinds of the pending rows of each assignment (through the index on assignment_id)."""
    if not assignment_ids:
        return {}
    found: dict[int, set[str]] = {}
    for assignment_id, kind in conn.execute(sa.select(nudges.c.assignment_id, nudges.c.kind).where(
            nudges.c.assignment_id.in_(sorted(set(assignment_ids))), _PENDING)):  # see cancel_nudges
        found.setdefault(int(assignment_id), set()).add(kind)
    return found


def relabel_nudges(conn: Connection, kinds: dict[int, str]) -> None:
    """Record what taken rows said, where it was more than their kind (a reminder taken late)."""
    for nudge_id, kind in kinds.items():
        conn.execute(nudges.update().where(nudges.c.id == nudge_id).values(kind=kind))


def set_target(conn: Connection, nudge_id: int, target_id: int) -> None:
    """Record who an escalation went to (resolved when it fires: the org may have changed since)."""
    conn.execute(nudges.update().where(nudges.c.id == nudge_id).values(target_id=target_id))


def sent_counts(conn: Connection, assignment_ids: list[int], kind: str) -> dict[int, int]:
    """How many nudges of `kind` were sent per assignment (the back-off's position)."""
    if not assignment_ids:
        return {}
    rows = conn.execute(sa.select(nudges.c.assignment_id, sa.func.count())
                        .where(nudges.c.assignment_id.in_(assignment_ids), nudges.c.kind == kind,
                               nudges.c.state == "sent")
                        .group_by(nudges.c.assignment_id))
    return {int(a): int(n) for a, n in rows}


def escalated_to(conn: Connection, assignment_id: int, person_id: int) -> bool:
    """Whether this assignment was escalated to this person (who may then act for its approver)."""
    stmt = prepared(("escalated_to",), lambda: sa.select(nudges.c.id).where(
        nudges.c.assignment_id == sa.bindparam("a"), nudges.c.target_id == sa.bindparam("p"),
        nudges.c.kind == "escalation", nudges.c.state == "sent").limit(1))
    return run(conn, stmt, {"a": assignment_id, "p": person_id}).first() is not None


def escalated_assignments(conn: Connection, person_id: int) -> list[int]:
    """The assignments escalated to this person (they may act for the approver while it stays open)."""
    stmt = prepared(("escalated_assignments",), lambda: sa.select(nudges.c.assignment_id).distinct().where(
        nudges.c.target_id == sa.bindparam("p"), nudges.c.kind == "escalation", nudges.c.state == "sent"))
    return [int(row[0]) for row in run(conn, stmt, {"p": person_id})]


def pending_reminders_of(conn: Connection, target_id: int, before: datetime) -> list[Nudge]:
    """A person's pending reminders due before `before` (what a snooze pushes back); escalations and final
    deadlines are not theirs to postpone."""
    rows = conn.execute(sa.select(nudges).where(
        nudges.c.target_id == target_id, nudges.c.state == "pending", nudges.c.due_at < before,
        nudges.c.kind.not_in(("escalation", "final"))))
    return [Nudge(**r._mapping) for r in rows]


def get_outbox(conn: Connection, message_id: int) -> OutboxMessage | None:
    row = conn.execute(sa.select(outbox).where(outbox.c.id == message_id)).first()
    return OutboxMessage(**row._mapping) if row else None
