"""A queue step with a `channel` (the shipped IT queue: #it-help) posts ONE shared card there, and each holder's own
card is sent only where the channel cannot reach them; without one, each holder gets their card. On SQLite and
PostgreSQL."""

from __future__ import annotations

from config.policy import Policy
from models import messaging
from models.db import Database
from tests.conftest import Clock, Org
from workflow.engine import Engine

IT_HELP = {"category": "device", "subject": "PCが起動しない", "details": "電源ランプが点きません", "urgency": "high"}


def queue_rows(db: Database, request_id: int) -> list[messaging.OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        return [r for r in messaging.outbox_for(conn, request_id) if r.kind == "queue_posted"]


def test_a_queue_with_a_channel_posts_one_shared_card(db: Database, org: Org, policy: Policy, clock: Clock) -> None:
    assert policy.types["it"].route[0].channel == "#it-help"
    out = Engine(db, policy, clock=clock).submit(org.alice, "it", IT_HELP)
    assert out.ok and out.request is not None
    rows = queue_rows(db, out.request.id)
    shared = [r for r in rows if r.payload.get("channel")]
    assert len(shared) == 1 and shared[0].payload["channel"] == "#it-help"
    assert shared[0].recipient_id in (org.it1, org.it2)
    # each holder's own card too, for delivery to send only where the channel cannot reach them (Teams)
    own = [r for r in rows if not r.payload.get("channel")]
    assert sorted(r.recipient_id for r in own) == sorted([org.it1, org.it2])
    assert {r.payload["covered_by_channel"] for r in own} == {"#it-help"}


def test_a_queue_without_a_channel_tells_each_holder(db: Database, org: Org, policy: Policy,
                                                     clock: Clock) -> None:
    it = policy.types["it"]
    no_channel = policy.model_copy(update={"types": {**policy.types, "it": it.model_copy(update={
        "route": [it.route[0].model_copy(update={"channel": None})]})}})
    out = Engine(db, no_channel, clock=clock).submit(org.alice, "it", IT_HELP)
    assert out.ok and out.request is not None
    rows = queue_rows(db, out.request.id)
    assert sorted(r.recipient_id for r in rows) == sorted([org.it1, org.it2])
    assert not any("channel" in r.payload for r in rows)
