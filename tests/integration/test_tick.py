"""The tick runs every kind of due work: a scheduled HR broadcast goes out when `madoguchi tick` (or the
scheduler) reaches its time, once however often the tick runs. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from bot.scheduler import DUE_WORK, tick
from config.policy import Policy
from models.db import Database
from models.messaging import outbox
from tests.conftest import Clock, Org
from tests.integration.test_broadcasts import draft
from workflow import broadcasts as bc


def broadcast_rows(db: Database) -> int:
    with db.unit_of_work(write=False) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                .where(outbox.c.kind.like("broadcast%"))).scalar_one())


def test_every_kind_of_due_work_is_on_the_tick() -> None:
    assert [name for name, _ in DUE_WORK] == ["nudges", "broadcasts", "five_day_campaign"]


def test_a_scheduled_broadcast_goes_out_on_the_tick_once(db: Database, org: Org, policy: Policy,
                                                         clock: Clock) -> None:
    later = clock.now + timedelta(hours=2)
    assert bc.create(db, policy, draft(org.hr, send_at=later), clock.now).ok
    assert tick(db, policy, clock.now)["broadcasts"] == 0 and broadcast_rows(db) == 0
    done = tick(db, policy, later)
    assert done["broadcasts"] > 0 and broadcast_rows(db) == done["broadcasts"]
    assert tick(db, policy, later + timedelta(minutes=1))["broadcasts"] == 0  # once, however often it ticks
