"""What the bot will say and when: the outbox (messages to deliver) and nudge rows (reminders falling due)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import JSONType, UTCDateTime, metadata, prepared
from models.statements import run

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
    sa.Index("ix_outbox_state_next", "state", "next_attempt_at"),
)

nudges = sa.Table(
    "nudges", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=False, index=True),
    sa.Column("assignment_id", sa.Integer, sa.ForeignKey("assignments.id"), nullable=False, index=True),
    sa.Column("target_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # before_due | due | overdue | escalation
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # pending | claimed | sent | cancelled
    sa.Column("claimed_by", sa.String(100), nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Index("ix_nudges_state_due", "state", "due_at"),
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
    """Add messages to the outbox in the caller's transaction."""
    if rows:
        run(conn, prepared(("enqueue",), outbox.insert), rows)


def outbox_for(conn: Connection, request_id: int) -> list[OutboxMessage]:
    rows = conn.execute(sa.select(outbox).where(outbox.c.request_id == request_id).order_by(outbox.c.id))
    return [OutboxMessage(**r._mapping) for r in rows]


def schedule_nudges(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        run(conn, prepared(("schedule_nudges",), nudges.insert), rows)


def cancel_nudges(conn: Connection, assignment_ids: list[int]) -> int:
    """Cancel the pending reminders of decided assignments (same transaction as the decision)."""
    if not assignment_ids:
        return 0
    stmt = prepared(("cancel_nudges",), lambda: nudges.update().where(
        nudges.c.assignment_id.in_(sa.bindparam("ids", expanding=True)), nudges.c.state == "pending",
    ).values(state="cancelled"))
    result = run(conn, stmt, {"ids": assignment_ids})
    return result.rowcount


def nudges_for(conn: Connection, request_id: int) -> list[Nudge]:
    rows = conn.execute(sa.select(nudges).where(nudges.c.request_id == request_id).order_by(nudges.c.id))
    return [Nudge(**r._mapping) for r in rows]
