"""The audit trail's rules: how an event is hashed into the chain, and how the chain is verified.

Every change appends events whose hash covers the previous event's hash, so editing, deleting or
reordering a stored row breaks the chain at that row, and `verify` names it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from models import audit as rows
from models.audit import GENESIS


@dataclass(frozen=True)
class Entry:
    """One thing that happened, before it is chained."""

    kind: str
    actor_id: int | None
    request_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# json.dumps with these options would build a new encoder on every call; one, made once, encodes the same
# (an encoder keeps no state between calls, so threads may share it).
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_default)


def canonical_json(data: dict[str, Any]) -> str:
    return _CANONICAL.encode(data)


def event_hash(seq: int, at: datetime, actor_id: int | None, request_id: int | None, kind: str,
               data: str, prev_hash: str) -> str:
    material = "\x1f".join([
        str(seq), at.isoformat(timespec="microseconds"), str(actor_id or ""), str(request_id or ""), kind, data,
        prev_hash,
    ])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def record(conn: Connection, at: datetime, entries: list[Entry]) -> None:
    """Append entries to the chain in the caller's transaction (holding the head's lock until commit)."""
    if not entries:
        return
    seq, prev = rows.lock_head(conn)
    at = at.astimezone(UTC)  # hash exactly what will be read back: a UTC instant, to the microsecond
    out = []
    for entry in entries:
        seq += 1
        data = canonical_json(entry.data)
        digest = event_hash(seq, at, entry.actor_id, entry.request_id, entry.kind, data, prev)
        out.append({"seq": seq, "at": at, "actor_id": entry.actor_id, "request_id": entry.request_id,
                    "kind": entry.kind, "data": data, "prev_hash": prev, "hash": digest})
        prev = digest
    rows.append(conn, out, seq, prev)


@dataclass(frozen=True)
class Break:
    """Where the chain stops holding, in words an auditor can act on."""

    seq: int
    event_id: int | None
    problem: str


def verify(conn: Connection) -> tuple[int, list[Break]]:
    """Walk the chain; return (events checked, breaks found). An empty list means the trail is intact."""
    breaks: list[Break] = []
    expected_seq, prev, count = 1, GENESIS, 0
    for ev in rows.iter_events(conn):
        count += 1
        if ev.seq != expected_seq:
            breaks.append(Break(expected_seq, None, f"events {expected_seq}..{ev.seq - 1} are missing (deleted?)"))
        if ev.prev_hash != prev:
            breaks.append(Break(ev.seq, ev.id, "does not follow the event before it (deleted or reordered?)"))
        actual = event_hash(ev.seq, ev.at, ev.actor_id, ev.request_id, ev.kind, ev.data, ev.prev_hash)
        if actual != ev.hash:
            breaks.append(Break(ev.seq, ev.id, "content does not match its hash (edited?)"))
        prev, expected_seq = ev.hash, ev.seq + 1
    head_seq, head_hash = rows.read_head(conn)
    if head_seq != expected_seq - 1 or head_hash != prev:
        breaks.append(Break(head_seq, None, f"the chain ends at event {expected_seq - 1} but the head records "
                                            f"event {head_seq} (the latest events were deleted?)"))
    return count, breaks
