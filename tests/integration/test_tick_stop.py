"""A tick cut short by a shutdown (issue 10), on SQLite and PostgreSQL: the nudges' work ends after the
transaction under way, everything not reached stays due (pending) and the next tick, here or on another replica,
sends it: each reminder once. `bot.scheduler.tick` skips the due work not begun."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.scheduler import tick
from config.policy import Policy
from models import messaging
from models.db import Database
from tests.conftest import Clock, Org
from tests.integration.test_nudges import digests, file, items
from workflow.engine import Engine
from workflow.nudges import Nudger

JST = ZoneInfo("Asia/Tokyo")
REMINDED = datetime(2026, 6, 4, 10, 0, tzinfo=JST).astimezone(UTC)  # the day before the expenses are due


def pending(db: Database, request_ids: list[int]) -> int:
    with db.unit_of_work(write=False) as conn:
        return sum(1 for r in request_ids for n in messaging.nudges_for(conn, r)
                   if n.state == "pending" and n.due_at <= REMINDED)


def test_a_stopped_tick_leaves_what_it_did_not_reach_due_and_the_next_sends_it_once(
        db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    engine = Engine(db, policy, clock=clock)
    filed = [file(engine, org.alice, amount=1000 * (i + 1)) for i in range(3)]  # filed Tue 10:00, due Fri 10:00
    requests = [r for r, _ in filed]
    assert pending(db, requests) == 3
    stopped = Nudger(db, policy, batch=1).tick(REMINDED, stop=lambda: True)  # shutting down: one round only
    assert stopped.digests == 1 and pending(db, requests) == 2
    rest = Nudger(db, policy).tick(REMINDED)
    assert rest.digests == 1 and pending(db, requests) == 0
    shown = [item for d in digests(db) for item in items(d)]
    assert sorted(a for a, _ in shown) == sorted(a for _, a in filed)  # each reminder once, none lost
    assert {kind for _, kind in shown} == {"before_due"}


def test_the_tick_skips_the_due_work_not_begun_once_stopped(db: Database, policy: Policy, clock: Clock,
                                                            org: Org) -> None:
    engine = Engine(db, policy, clock=clock)
    file(engine, org.alice)
    assert tick(db, policy, REMINDED, stop=lambda: True) == {}
    assert digests(db) == []
    assert tick(db, policy, REMINDED)["nudges"] == 1
