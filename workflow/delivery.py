"""Claiming outbox rows for delivery, and recording how each attempt ended.

A claim moves due rows to `sending` with a lease: `next_attempt_at` becomes the moment the claim expires. A
worker that dies between sending and recording leaves its rows in `sending`; once the lease has run out they are
due again and another worker re-sends them (at most those in-flight messages are sent twice; none is lost).
Claims are conditional updates; on PostgreSQL the candidates are also locked with `FOR UPDATE SKIP LOCKED`, so
replicas claiming at the same moment take different rows instead of waiting for each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from config.i18n import LocalText
from models import requests as rq
from models.base import UTCDateTime, prepared, unindexed
from models.messaging import OutboxMessage, outbox, posted
from models.people import chat_identities, employees
from models.requests import requests
from models.statements import run

LEASE = timedelta(minutes=2)  # longer than a Slack call with its own retries can take
CLAIMABLE = ("pending", "sending")  # `sending` is claimable only once its lease has expired
CARD_KINDS = ("approval_requested", "queue_posted")
STATUS_KIND = "submitted"

# Which due rows a claim takes first (the outbox's `priority`, lower first). At once: news about what a person just
# did, shown on a message they are looking at: their card turning to 承認済み (the requester's news refreshes every
# approver card of the request), the requester's status message, a card closed by someone else, a broadcast DM
# after 確認しました. In turn: new messages for others (an approver's new card, an FYI, a reminder, a broadcast's
# thousands of DMs). Claimed in the order they were enqueued, a click's card waited behind every row due before it:
# behind the cards of a burst of decisions (about a second, bench/slack_latency.py), or a broadcast's backlog at
# Slack's pace (minutes). Within a request the order may change (its new approver's card after the requester's
# news of the same decision): every card is rendered from a fresh read when it leaves (handlers/notifications.py),
# and a card that was not posted yet is not updated, it is posted as things stand then.
AT_ONCE, IN_TURN = 0, 1
AT_ONCE_KINDS = frozenset({"submitted", "step_decided", "request_sent_back", "request_completed", "card_update",
                           "broadcast_update"})  # the last: workflow.broadcasts.UPDATE_KIND (it imports this module)


def priority_of(kind: str) -> int:
    """The outbox priority of a message of this kind (see AT_ONCE_KINDS)."""
    return AT_ONCE if kind in AT_ONCE_KINDS else IN_TURN


def claim_due(conn: Connection, now: datetime, limit: int, lease: timedelta = LEASE) -> list[OutboxMessage]:
    """Move up to `limit` due rows to `sending` (attempts + 1, leased until now + `lease`): those to send at once
    first (`priority`), then the oldest first; returned in that order."""
    postgres = conn.dialect.name == "postgresql"
    ids = [r.id for r in run(conn, prepared(("claim_candidates", postgres), lambda: _candidates(postgres)),
                             {"now": now, "limit": limit, "claimable": CLAIMABLE})]
    if not ids:
        return []
    # Conditional: on SQLite the write transaction already serialises claims, but the WHERE keeps a row that
    # someone else claimed in between from being taken twice on any backend.
    claimed = run(conn, prepared(("claim_rows",), _claim), {"ids": ids, "now": now, "until": now + lease,
                                                           "claimable": CLAIMABLE})
    return sorted((OutboxMessage(**r._mapping) for r in claimed), key=lambda m: (m.priority, m.id))


# Delivery runs these for every row it sends (the plan, the record) and every batch (the claim): each is built once
# (`models.base.prepared`) and, on SQLite, run on the driver's cursor (`models.statements.run`). Built per call, they
# cost the writer thread about half of its time in the Slack latency bench.
def _candidates(postgres: bool) -> Any:
    due = (sa.select(outbox.c.id)
           .where(outbox.c.state.in_(sa.bindparam("claimable", expanding=True)),
                  outbox.c.next_attempt_at <= sa.bindparam("now", type_=UTCDateTime()))
           .order_by(outbox.c.priority, outbox.c.next_attempt_at, outbox.c.id)
           .limit(sa.bindparam("limit", type_=sa.Integer())))
    return due.with_for_update(skip_locked=True) if postgres else due


def _claim() -> Any:
    # the rows by id, their state checked beside (`unindexed`): with `state IN (...)` PostgreSQL combined
    # ix_outbox_state_next with the ids' index and walked every due row for each claim (337 buffers for 20 rows)
    return (outbox.update()
            .where(outbox.c.id.in_(sa.bindparam("ids", expanding=True)),
                   unindexed(outbox.c.state).in_(sa.bindparam("claimable", expanding=True)),
                   outbox.c.next_attempt_at <= sa.bindparam("now", type_=UTCDateTime()))
            .values(state="sending", attempts=outbox.c.attempts + 1,
                    next_attempt_at=sa.bindparam("until", type_=UTCDateTime()))
            .returning(*outbox.c))


def release(conn: Connection, claims: dict[int, datetime], now: datetime) -> int:
    """Give back rows this worker claimed and never tried to send (it is shutting down): each is due again at
    `now` for any worker, its attempt not counted. `claims`: outbox id -> the lease's end the claim set; a row
    whose lease ran out and that another worker claimed since (a new lease end) or that was recorded meanwhile is
    left alone. Returns how many rows were released."""
    stmt = (outbox.update()
            .where(outbox.c.id == sa.bindparam("row"), outbox.c.state == "sending",
                   outbox.c.next_attempt_at == sa.bindparam("leased_until"))
            .values(state="pending", attempts=sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0),
                    next_attempt_at=now))
    # one statement per row (a shutdown releases a batch or two): each rowcount says whether that row was ours
    return sum(conn.execute(stmt, {"row": row, "leased_until": until}).rowcount
               for row, until in sorted(claims.items()))


def mark_sent(conn: Connection, message_id: int, message_ref: dict[str, Any] | None, platform: str,
              now: datetime) -> None:
    """Delivered: remember where, so the message can be updated later."""
    run(conn, prepared(("mark_sent",), lambda: outbox.update().where(outbox.c.id == sa.bindparam("row")).values(
        state="sent", message_ref=sa.bindparam("ref", type_=outbox.c.message_ref.type),
        platform=sa.bindparam("platform", type_=outbox.c.platform.type),
        sent_at=sa.bindparam("now", type_=UTCDateTime()), last_error=None)),
        {"row": message_id, "ref": message_ref, "platform": platform, "now": now})


def mark_retry(conn: Connection, message_id: int, error: str, next_attempt_at: datetime) -> None:
    """A passing failure: try again at `next_attempt_at`."""
    run(conn, prepared(("mark_retry",), lambda: outbox.update().where(outbox.c.id == sa.bindparam("row")).values(
        state="pending", last_error=sa.bindparam("error", type_=outbox.c.last_error.type),
        next_attempt_at=sa.bindparam("at", type_=UTCDateTime()))),
        {"row": message_id, "error": error, "at": next_attempt_at})


def mark_dead(conn: Connection, message_id: int, error: str) -> None:
    """A failure that retrying cannot fix: kept with its error for an admin to see, never sent."""
    run(conn, prepared(("mark_dead",), lambda: outbox.update().where(outbox.c.id == sa.bindparam("row")).values(
        state="dead", last_error=sa.bindparam("error", type_=outbox.c.last_error.type))),
        {"row": message_id, "error": error})


def card_ref(conn: Connection, assignment_id: int) -> dict[str, Any] | None:
    """Where the approver's card for this assignment was posted, or None if it never was."""
    assignment = rq.get_assignment(conn, assignment_id)
    if assignment is None:
        return None
    return next((ref for aid, _, ref in sent_cards(conn, assignment.request_id) if aid == assignment_id), None)


def sent_cards(conn: Connection, request_id: int) -> list[tuple[int, int, dict[str, Any]]]:
    """(assignment id, recipient id, message ref) of every approver card of the request that was posted. A
    queue's shared channel card has `"shared": True` in its ref (it is rendered for the step, not a person)."""
    rows = run(conn, prepared(("sent_cards",), lambda: sa.select(
        outbox.c.recipient_id, outbox.c.payload, outbox.c.message_ref, outbox.c.state)
        .where(outbox.c.request_id == sa.bindparam("request"), outbox.c.kind.in_(sa.bindparam("kinds", expanding=True)))
        .order_by(outbox.c.id)), {"request": request_id, "kinds": CARD_KINDS})
    return [(int(r.payload["assignment_id"]), r.recipient_id,
             {**r.message_ref, "shared": True} if r.payload.get("channel") else r.message_ref)
            for r in rows if posted(r) and r.payload.get("assignment_id") is not None]


def requester_ref(conn: Connection, request_id: int) -> dict[str, Any] | None:
    """Where the requester's status message is: the first `submitted` message of the request that was sent."""
    rows = run(conn, prepared(("requester_ref",), lambda: sa.select(outbox.c.message_ref, outbox.c.state)
                              .where(outbox.c.request_id == sa.bindparam("request"), outbox.c.kind == STATUS_KIND)
                              .order_by(outbox.c.id)), {"request": request_id})
    return next((dict(r.message_ref) for r in rows if posted(r)), None)


@dataclass(frozen=True)
class Reach:
    """Where a person is reached: the platform, their user id there, and (Teams) the address to post to. `workspace`:
    the Slack workspace (team id) or Teams tenant the identity belongs to (a Slack user id is one workspace's)."""

    platform: str
    user_id: str
    address: dict[str, Any] | None = None
    workspace: str = ""


REACHABLE_BY_ID = ("slack",)  # platforms where a user id is enough to message a person


def reach(conn: Connection, employee_id: int) -> Reach | None:
    """The platform the person chose for their messages (`employees.notify_platform`), when it can reach them,
    else the one they last used that can reach them unprompted: Slack by user id, Teams by a stored
    conversation reference. A Teams identity with no reference (the app was never installed, or it was only
    seen in a team channel) counts only when there is nothing else: then the row is dead, saying why. None: the
    person was never seen on chat."""
    # one statement: the person's choice and identities (delivery asks this for every row it sends)
    rows = run(conn, prepared(("reach",), _identities), {"employee": employee_id}).all()
    found = [Reach(str(r.platform), str(r.user_id), dict(r.address) if r.address else None, str(r.workspace))
             for r in rows if r.platform is not None]
    usable = [r for r in found if r.platform in REACHABLE_BY_ID or r.address is not None]
    chosen = rows[0].notify_platform if rows else None
    # the person's (or an admin's) choice wins where it can reach them; else where they were last seen
    preferred = [r for r in usable if r.platform == chosen] if chosen else []
    candidates = preferred or usable or found
    return candidates[0] if candidates else None


def _identities() -> Any:
    """The employee's chosen platform beside each of their chat identities, the last used first (one row with no
    identity when they have none)."""
    return (sa.select(chat_identities.c.platform, chat_identities.c.user_id, chat_identities.c.address,
                      chat_identities.c.workspace, employees.c.notify_platform)
            .select_from(employees.outerjoin(chat_identities, chat_identities.c.employee_id == employees.c.id))
            .where(employees.c.id == sa.bindparam("employee"))
            .order_by(chat_identities.c.last_used_at.desc().nulls_last(), chat_identities.c.id.desc()))


def slack_workspace(conn: Connection, employee_id: int, request_id: int | None = None) -> str | None:
    """The Slack workspace the person was last seen in, else the one the request's requester was last seen in (None:
    neither was ever on Slack): where a queue's shared channel card enqueued for them goes, when the app is
    installed in several workspaces."""
    people = [employee_id]
    if request_id is not None:
        requester = conn.execute(sa.select(requests.c.requester_id)
                                 .where(requests.c.id == request_id)).scalar_one_or_none()
        people += [requester] if requester is not None else []
    for person in people:
        found = conn.execute(
            sa.select(chat_identities.c.workspace)
            .where(chat_identities.c.employee_id == person, chat_identities.c.platform == "slack")
            .order_by(chat_identities.c.last_used_at.desc().nulls_last(), chat_identities.c.id.desc())
            .limit(1)).scalar_one_or_none()
        if found is not None:
            return str(found)
    return None


@dataclass(frozen=True)
class Undelivered:
    """A message that will never be sent as it is (the person or channel is gone, the token lacks a scope...):
    what an admin needs to put it right."""

    id: int
    kind: str
    recipient_name: LocalText
    number: str | None  # the request's number, when it is about one
    error: str
    created_at: datetime


def undelivered(conn: Connection, limit: int = 20) -> tuple[int, list[Undelivered]]:
    """How many messages are dead, and the most recent `limit` of them."""
    count = int(conn.execute(sa.select(sa.func.count()).select_from(outbox)
                             .where(outbox.c.state == "dead")).scalar_one())
    rows = conn.execute(
        sa.select(outbox.c.id, outbox.c.kind, outbox.c.last_error, outbox.c.created_at, employees.c.name_ja,
                  employees.c.name_en, requests.c.number)
        .join(employees, employees.c.id == outbox.c.recipient_id)
        .outerjoin(requests, requests.c.id == outbox.c.request_id)
        .where(outbox.c.state == "dead").order_by(outbox.c.id.desc()).limit(limit))
    return count, [Undelivered(r.id, r.kind, LocalText(ja=r.name_ja, en=r.name_en), r.number,
                               r.last_error or "", r.created_at) for r in rows]


def retry_dead(conn: Connection, message_id: int, now: datetime) -> bool:
    """Send a dead message again (an admin fixed the cause, e.g. invited the bot to the channel): it becomes
    due now with a fresh count of attempts. False if it is not dead."""
    done = conn.execute(outbox.update().where(outbox.c.id == message_id, outbox.c.state == "dead")
                        .values(state="pending", attempts=0, next_attempt_at=now))
    return done.rowcount == 1
