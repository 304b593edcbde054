"""A digest too long for one message ends with "…and N more" and says how to list them all, as the reader types
it: `/madoguchi 承認` on Slack, plain `承認` on Teams (where words typed to the bot are the commands), both when it
is first sent and when a decision updates it. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from config.policy import Policy
from handlers.notifications import message_for, sent_digests
from handlers.views import Context
from models import messaging
from models.db import Database
from tests.conftest import Clock, Org
from tests.integration.test_engine import expense
from workflow import delivery
from workflow.engine import Engine
from workflow.nudges import DIGEST_KIND, Nudger


def more_line(message: object) -> str:
    lines = [e.text for e in getattr(message, "blocks", ()) if isinstance(e, Context) and "ほか" in e.text]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_more_line_names_the_inbox_command_as_each_platform_types_it(db: Database, org: Org, policy: Policy,
                                                                         clock: Clock) -> None:
    engine = Engine(db, policy, clock=clock)
    ids = [engine.submit(org.alice, "expense", expense(1_000 + i)).request for i in range(14)]
    assert all(r is not None for r in ids)
    at = datetime(2026, 6, 4, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo")).astimezone(UTC)  # the day before due
    Nudger(db, policy).tick(at)
    with db.unit_of_work(write=False) as conn:
        (row,) = [messaging.OutboxMessage(**r._mapping) for r in conn.execute(
            sa.select(messaging.outbox).where(messaging.outbox.c.kind == DIGEST_KIND))]
        slack = message_for(conn, policy, "Asia/Tokyo", row, platform="slack")
        teams = message_for(conn, policy, "Asia/Tokyo", row, platform="teams")
    assert slack is not None and teams is not None
    assert "`/madoguchi 承認`" in more_line(slack[0])
    assert "`承認`" in more_line(teams[0]) and "/madoguchi" not in more_line(teams[0])
    # posted on Teams; a decision updates it, still in Teams' words
    with db.unit_of_work() as conn:
        delivery.mark_sent(conn, row.id, {"activity_id": "a1", "conversation": {"id": "c1"}}, "teams", at)
    item = row.payload["items"][0]
    assert engine.decide(int(item["assignment_id"]), org.manager, "approve").ok
    with db.unit_of_work(write=False) as conn:
        (posted,) = sent_digests(conn, policy, "Asia/Tokyo", int(item["request_id"]))
    assert "/madoguchi" not in more_line(posted[1]) and "`承認`" in more_line(posted[1])
