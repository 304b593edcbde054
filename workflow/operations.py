"""What operators watch, read from the database: where the schema stands (readiness) and the backlog that
`/metrics` shows (requests by type and status, the outbox's depth and oldest message, how late the oldest due
reminder is, the progress of recent broadcasts). Each is one short read-only unit of work, cheap enough for a
scrape every few seconds: every query goes through an index (requests by status and type, the outbox and nudges
by state), or over the few broadcast occurrences of the last day."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from models.broadcasts import occurrences, recipients
from models.db import Database
from models.messaging import nudges, outbox
from models.requests import requests
from models.schema import current_revision

WAITING = ("pending", "sending")  # outbox rows not delivered yet (`sending`: claimed, under way)
DEPTH_STATES = (*WAITING, "dead")  # counted; `sent` rows pile up for ever and are not
RECENT_BROADCASTS = timedelta(days=1)  # broadcast occurrences fired this recently are reported


def schema_revision(db: Database) -> str | None:
    """The Alembic revision the database is at (None: never migrated). Raises if the database is unreachable."""
    return current_revision(db.engine)


@dataclass(frozen=True)
class Backlog:
    """The figures of one scrape; ages and lags in seconds (0 when nothing waits)."""

    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (type, status) -> how many
    outbox: dict[str, int] = field(default_factory=dict)  # state -> how many (pending, sending, dead)
    outbox_oldest_age: float = 0.0  # the oldest undelivered message, since it was written
    nudge_lag: float = 0.0  # now - due time of the oldest due reminder not sent yet
    # (broadcast id, occurrence id) -> outbox state -> how many of its messages
    broadcasts: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)


def backlog(db: Database, now: datetime) -> Backlog:
    """The backlog as of `now`, in one read-only transaction."""
    with db.unit_of_work(write=False) as conn:
        by_type = {(str(t), str(s)): int(n) for s, t, n in conn.execute(
            sa.select(requests.c.status, requests.c.type, sa.func.count()).group_by(requests.c.status,
                                                                                     requests.c.type))}
        depth = {str(s): int(n) for s, n in conn.execute(
            sa.select(outbox.c.state, sa.func.count()).where(outbox.c.state.in_(DEPTH_STATES))
            .group_by(outbox.c.state))}
        oldest = conn.execute(sa.select(sa.func.min(outbox.c.created_at))
                              .where(outbox.c.state.in_(WAITING))).scalar()
        # through the index on (state, due_at); a reminder deferred to working hours is due then, not late now
        due = conn.execute(sa.select(sa.func.min(nudges.c.due_at))
                           .where(nudges.c.state == "pending", nudges.c.due_at <= now)).scalar()
        progress: dict[tuple[int, int], dict[str, int]] = {}
        for b, o, state, n in conn.execute(
                sa.select(occurrences.c.broadcast_id, occurrences.c.id, outbox.c.state, sa.func.count())
                .join(recipients, recipients.c.occurrence_id == occurrences.c.id)
                .join(outbox, outbox.c.id == recipients.c.outbox_id)
                .where(occurrences.c.fired_at >= now - RECENT_BROADCASTS)
                .group_by(occurrences.c.broadcast_id, occurrences.c.id, outbox.c.state)):
            progress.setdefault((int(b), int(o)), {})[str(state)] = int(n)
    return Backlog(by_type, depth, _age(now, oldest), _age(now, due), progress)


def _age(now: datetime, since: datetime | None) -> float:
    # the column types hand back aware UTC datetimes on both backends
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
