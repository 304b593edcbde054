"""The audit trail: append-only events, each hash covering the previous one, and the chain's head."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import UTCDateTime, metadata, prepared
from models.statements import run

audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False, unique=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=True, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    # canonical JSON text, not a JSON column: the hash must see the very bytes that were hashed
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row. Holding its lock serializes appends (one chain across replicas) and its hash detects a cut tail.
audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

GENESIS = "0" * 64
_SEED_HEAD = sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h) ON CONFLICT (id) DO NOTHING")


@dataclass(frozen=True)
class AuditEvent:
    id: int
    seq: int
    at: datetime
    actor_id: int | None
    request_id: int | None
    kind: str
    data: str
    prev_hash: str
    hash: str


def lock_head(conn: Connection) -> tuple[int, str]:
    """The chain's head (seq, hash), locked until the transaction ends; created on first use."""
    lock = conn.dialect.name == "postgresql"

    def build() -> sa.Select:
        query = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        return query.with_for_update() if lock else query

    row = run(conn, prepared(("lock_head", lock), build)).first()
    if row is None:
        # the migration seeds the head; a database made without it (metadata.create_all) gets it here, and
        # ON CONFLICT keeps two first writers from colliding
        conn.execute(_SEED_HEAD, {"h": GENESIS})
        row = run(conn, prepared(("lock_head", lock), build)).one()
    return int(row.seq), str(row.hash)


def append(conn: Connection, events: list[dict[str, object]], head_seq: int, head_hash: str) -> None:
    run(conn, prepared(("append_events",), audit_events.insert), events)
    stmt = prepared(("move_head",), lambda: audit_head.update().where(audit_head.c.id == 1)
                    .values(seq=sa.bindparam("s"), hash=sa.bindparam("h")))
    run(conn, stmt, {"s": head_seq, "h": head_hash})


def read_head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
    return (int(row.seq), str(row.hash)) if row else (0, GENESIS)


def iter_events(conn: Connection, batch: int = 5000):  # type: ignore[no-untyped-def]
    """All events in chain order, in batches so a large trail does not sit in memory."""
    last = -1
    while True:
        rows = conn.execute(sa.select(audit_events).where(audit_events.c.seq > last)
                            .order_by(audit_events.c.seq).limit(batch)).all()
        if not rows:
            return
        for r in rows:
            yield AuditEvent(**r._mapping)
        last = rows[-1].seq


def events_for(conn: Connection, request_id: int) -> list[AuditEvent]:
    rows = conn.execute(sa.select(audit_events).where(audit_events.c.request_id == request_id)
                        .order_by(audit_events.c.seq))
    return [AuditEvent(**r._mapping) for r in rows]
