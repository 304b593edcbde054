"""HR broadcasts: the broadcast itself, its occurrences (one row per time it fires), its recipients per
occurrence with their acknowledgement, and campaign claims (one row per thing a campaign sent per period).

Claims are unique rows: an occurrence row (UNIQUE broadcast_id, occurs_at) or a campaign claim (primary key)
is inserted with ON CONFLICT DO NOTHING, and only the inserter goes on to write the messages. So any number
of replicas ticking at once fire each occurrence once. No business rules here (see workflow/broadcasts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import JSONType, UTCDateTime, metadata
from models.messaging import outbox, stamped

broadcasts = sa.Table(
    "broadcasts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False),
    # {"kind": everyone | departments | roles | people | query, "values": [...]}
    sa.Column("audience", JSONType, nullable=False),
    sa.Column("message_ja", sa.Text, nullable=False),
    sa.Column("message_en", sa.Text, nullable=False),
    sa.Column("ack_required", sa.Boolean, nullable=False),
    sa.Column("send_at", UTCDateTime, nullable=False),  # the first occurrence
    sa.Column("repeat", JSONType, nullable=True),  # CronTrigger fields, e.g. {"day_of_week": "mon", ...}
    sa.Column("repeat_until", sa.Date, nullable=True),  # inclusive, in the company's zone
    sa.Column("next_at", UTCDateTime, nullable=True),  # the next occurrence to fire; NULL when none is left
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("cancelled_at", UTCDateTime, nullable=True),
    sa.Column("cancelled_by", sa.Integer, sa.ForeignKey("employees.id"), nullable=True),
    sa.Index("ix_broadcasts_next_at", "next_at"),
)

occurrences = sa.Table(
    "broadcast_occurrences", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("broadcast_id", sa.Integer, sa.ForeignKey("broadcasts.id"), nullable=False),
    sa.Column("occurs_at", UTCDateTime, nullable=False),
    sa.Column("fired_at", UTCDateTime, nullable=False),
    sa.Column("recipients", sa.Integer, nullable=False),
    sa.UniqueConstraint("broadcast_id", "occurs_at", name="uq_broadcast_occurrences_broadcast_time"),
)

recipients = sa.Table(
    "broadcast_recipients", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("occurrence_id", sa.Integer, sa.ForeignKey("broadcast_occurrences.id"), nullable=False),
    sa.Column("employee_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False),
    # the first DM's outbox row: delivered / failed and where the message is live there
    sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id"), nullable=True),
    sa.Column("acknowledged_at", UTCDateTime, nullable=True),
    sa.Column("reminders", sa.Integer, nullable=False),
    sa.UniqueConstraint("occurrence_id", "employee_id", name="uq_broadcast_recipients_occurrence_employee"),
)

# One row per thing a campaign did once per period (e.g. "five_day:worker:12:2026-06"): the claim.
campaign_claims = sa.Table(
    "campaign_claims", metadata,
    sa.Column("claim_key", sa.String(200), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Broadcast:
    id: int
    author_id: int
    audience: dict[str, Any]
    message_ja: str
    message_en: str
    ack_required: bool
    send_at: datetime
    repeat: dict[str, Any] | None
    repeat_until: date | None
    next_at: datetime | None
    created_at: datetime
    cancelled_at: datetime | None
    cancelled_by: int | None


@dataclass(frozen=True)
class Occurrence:
    id: int
    broadcast_id: int
    occurs_at: datetime
    fired_at: datetime
    recipients: int


@dataclass(frozen=True)
class Recipient:
    """One person's copy of one occurrence, with how its delivery went (from the outbox row)."""

    id: int
    occurrence_id: int
    employee_id: int
    outbox_id: int | None
    acknowledged_at: datetime | None
    reminders: int
    state: str | None  # the outbox row's: pending | sending | sent | failed | dead
    sent_at: datetime | None
    last_error: str | None


def insert_broadcast(conn: Connection, **values: Any) -> int:
    return int(conn.execute(broadcasts.insert().values(**values).returning(broadcasts.c.id)).scalar_one())


def get_broadcast(conn: Connection, broadcast_id: int) -> Broadcast | None:
    row = conn.execute(sa.select(broadcasts).where(broadcasts.c.id == broadcast_id)).first()
    return Broadcast(**row._mapping) if row else None


def recent_broadcasts(conn: Connection, limit: int, author_id: int | None = None) -> list[Broadcast]:
    query = sa.select(broadcasts).order_by(broadcasts.c.id.desc()).limit(limit)
    if author_id is not None:
        query = query.where(broadcasts.c.author_id == author_id)
    return [Broadcast(**r._mapping) for r in conn.execute(query)]


def due_broadcasts(conn: Connection, now: datetime) -> list[Broadcast]:
    """Broadcasts whose next occurrence has come (not cancelled), by next occurrence."""
    rows = conn.execute(sa.select(broadcasts).where(
        broadcasts.c.next_at <= now, broadcasts.c.cancelled_at.is_(None)).order_by(broadcasts.c.next_at))
    return [Broadcast(**r._mapping) for r in rows]


def set_next_at(conn: Connection, broadcast_id: int, next_at: datetime | None) -> None:
    conn.execute(broadcasts.update().where(broadcasts.c.id == broadcast_id).values(next_at=next_at))


def cancel_broadcast(conn: Connection, broadcast_id: int, by: int, now: datetime) -> bool:
    """Conditional: True only for the call that cancelled it."""
    result = conn.execute(broadcasts.update()
                          .where(broadcasts.c.id == broadcast_id, broadcasts.c.cancelled_at.is_(None))
                          .values(cancelled_at=now, cancelled_by=by, next_at=None))
    return result.rowcount == 1


_CLAIM_OCCURRENCE = sa.text(
    "INSERT INTO broadcast_occurrences (broadcast_id, occurs_at, fired_at, recipients) "
    "VALUES (:broadcast_id, :occurs_at, :fired_at, 0) "
    "ON CONFLICT (broadcast_id, occurs_at) DO NOTHING RETURNING id"
).bindparams(sa.bindparam("occurs_at", type_=UTCDateTime()), sa.bindparam("fired_at", type_=UTCDateTime()))


def claim_occurrence(conn: Connection, broadcast_id: int, occurs_at: datetime, now: datetime) -> int | None:
    """Insert the occurrence row; its id for the one caller that inserted it, None for everyone else."""
    row = conn.execute(_CLAIM_OCCURRENCE, {"broadcast_id": broadcast_id, "occurs_at": occurs_at,
                                           "fired_at": now}).first()
    return int(row[0]) if row else None


def set_occurrence_size(conn: Connection, occurrence_id: int, count: int) -> None:
    conn.execute(occurrences.update().where(occurrences.c.id == occurrence_id).values(recipients=count))


def occurrences_of(conn: Connection, broadcast_id: int) -> list[Occurrence]:
    rows = conn.execute(sa.select(occurrences).where(occurrences.c.broadcast_id == broadcast_id)
                        .order_by(occurrences.c.occurs_at))
    return [Occurrence(**r._mapping) for r in rows]


def get_occurrence(conn: Connection, occurrence_id: int) -> Occurrence | None:
    row = conn.execute(sa.select(occurrences).where(occurrences.c.id == occurrence_id)).first()
    return Occurrence(**row._mapping) if row else None


def insert_recipients(conn: Connection, rows: list[dict[str, Any]]) -> dict[int, int]:
    """Add recipients of one occurrence; returns employee id -> recipient row id."""
    if not rows:
        return {}
    result = conn.execute(recipients.insert().returning(recipients.c.id, recipients.c.employee_id), rows)
    return {int(r.employee_id): int(r.id) for r in result}


def link_outbox(conn: Connection, links: list[dict[str, int]]) -> None:
    """Point recipients at their first DM's outbox row ({"rid", "oid"} each)."""
    if links:
        conn.execute(recipients.update().where(recipients.c.id == sa.bindparam("rid"))
                     .values(outbox_id=sa.bindparam("oid")), links)


_RECIPIENT_COLUMNS = (*recipients.c, outbox.c.state, outbox.c.sent_at, outbox.c.last_error)


def recipients_of(conn: Connection, occurrence_id: int) -> list[Recipient]:
    rows = conn.execute(sa.select(*_RECIPIENT_COLUMNS)
                        .select_from(recipients.outerjoin(outbox, outbox.c.id == recipients.c.outbox_id))
                        .where(recipients.c.occurrence_id == occurrence_id).order_by(recipients.c.id))
    return [Recipient(**r._mapping) for r in rows]


def get_recipient(conn: Connection, recipient_id: int) -> Recipient | None:
    row = conn.execute(sa.select(*_RECIPIENT_COLUMNS)
                       .select_from(recipients.outerjoin(outbox, outbox.c.id == recipients.c.outbox_id))
                       .where(recipients.c.id == recipient_id)).first()
    return Recipient(**row._mapping) if row else None


def acknowledge(conn: Connection, recipient_id: int, now: datetime) -> bool:
    """Conditional: True only for the first acknowledgement; a repeated or concurrent click changes nothing."""
    result = conn.execute(recipients.update()
                          .where(recipients.c.id == recipient_id, recipients.c.acknowledged_at.is_(None))
                          .values(acknowledged_at=now))
    return result.rowcount == 1


def count_reminder(conn: Connection, recipient_ids: list[int]) -> None:
    if recipient_ids:
        conn.execute(recipients.update().where(recipients.c.id.in_(recipient_ids))
                     .values(reminders=recipients.c.reminders + 1))


def copies_of(conn: Connection, recipient_id: int) -> list[tuple[int, str]]:
    """(outbox id, state) of every DM sent for this recipient (the first and each reminder), oldest first."""
    rows = conn.execute(sa.select(outbox.c.id, outbox.c.state, outbox.c.payload)
                        .where(outbox.c.recipient_id == sa.select(recipients.c.employee_id)
                               .where(recipients.c.id == recipient_id).scalar_subquery(),
                               outbox.c.request_id.is_(None),
                               outbox.c.kind.in_(("broadcast", "broadcast_reminder")))
                        .order_by(outbox.c.id))
    return [(int(r.id), str(r.state)) for r in rows if r.payload.get("recipient") == recipient_id]


_CLAIM = sa.text("INSERT INTO campaign_claims (claim_key, created_at) VALUES (:key, :now) "
                 "ON CONFLICT (claim_key) DO NOTHING").bindparams(sa.bindparam("now", type_=UTCDateTime()))


def claim(conn: Connection, key: str, now: datetime) -> bool:
    """True for the one caller that inserted the claim `key`."""
    return conn.execute(_CLAIM, {"key": key, "now": now}).rowcount == 1


def message_ref(conn: Connection, outbox_id: int) -> dict[str, Any] | None:
    """Where an outbox row's message was posted, or None if it has not been (yet)."""
    row = conn.execute(sa.select(outbox.c.message_ref, outbox.c.state).where(outbox.c.id == outbox_id)).first()
    return dict(row.message_ref) if row and row.state == "sent" and row.message_ref else None


def enqueue_returning(conn: Connection, messages: list[dict[str, Any]]) -> dict[int, int]:
    """Add outbox messages (at most one per recipient) in the caller's transaction; recipient id -> outbox id."""
    if not messages:
        return {}
    result = conn.execute(outbox.insert().returning(outbox.c.id, outbox.c.recipient_id), stamped(messages))
    return {int(r.recipient_id): int(r.id) for r in result}
