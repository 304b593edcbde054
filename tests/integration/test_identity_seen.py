"""Recognising a known chat identity is a read: "last seen" is written at most once per SEEN_EVERY, a new
identity, a changed platform language or someone who left still take the write path. On both backends."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from config.policy import Policy
from handlers.conversation import Conversation
from handlers.events import Who
from models import people
from models.db import Database
from tests.conftest import Clock, Org
from workflow.engine import Engine
from workflow.identity import SEEN_EVERY, recognised

ALICE = Who("slack", "T1", "U-alice", email="alice@example.jp", locale="ja-JP")


def last_seen(db: Database) -> datetime | None:
    with db.unit_of_work(write=False) as conn:
        return conn.execute(sa.select(people.chat_identities.c.last_used_at)
                            .where(people.chat_identities.c.user_id == ALICE.user_id)).scalar_one()


def test_a_known_identity_is_recognised_without_writing(db: Database, org: Org, policy: Policy,
                                                        clock: Clock) -> None:
    talk = Conversation(Engine(db, policy, clock=clock))
    first = talk.identify(ALICE)
    assert first is not None and first.id == org.alice
    written = last_seen(db)
    assert written == clock()

    clock.advance(minutes=30)
    assert talk.identify(ALICE) == first
    assert last_seen(db) == written  # nothing written within the hour

    clock.advance(seconds=SEEN_EVERY.total_seconds())
    assert talk.identify(ALICE) == first
    assert last_seen(db) == clock()  # a stale "last seen" is brought up to date


def test_recognised_leaves_the_writes_to_identify(db: Database, org: Org, clock: Clock) -> None:
    now = clock()
    with db.unit_of_work(write=False) as conn:
        assert recognised(conn, "slack", "T1", "U-new", now) is None  # a new identity: match by email first
    talk_now = clock()
    with db.unit_of_work() as conn:
        people.remember_identity(conn, org.alice, "slack", "T1", "U-alice", talk_now)
    with db.unit_of_work(write=False) as conn:
        assert recognised(conn, "slack", "T1", "U-alice", now + timedelta(minutes=1)) is not None
        # Slack now says English: the new language must be recorded, so not recognised by the read alone
        assert recognised(conn, "slack", "T1", "U-alice", now + timedelta(minutes=1), "en-US") is None
    with db.unit_of_work() as conn:
        people.update_employee(conn, org.alice, active=False)
    with db.unit_of_work(write=False) as conn:
        assert recognised(conn, "slack", "T1", "U-alice", now + timedelta(minutes=1)) is None  # has left


def test_a_new_identity_s_last_seen_is_stored_as_every_instant(sqlite_db: Database, clock: Clock) -> None:
    """The text() insert of a new identity binds its instant as UTCDateTime: the same stored form as an update's
    (the driver's own "+00:00" form sorted apart from it)."""
    with sqlite_db.unit_of_work() as conn:
        emp = people.insert_employee(conn, email="b@example.jp", name_ja="び", name_en="B", active=True)
        people.remember_identity(conn, emp, "slack", "T1", "U-b", clock())
        inserted = conn.exec_driver_sql("SELECT last_used_at FROM chat_identities").scalar_one()
        people.touch_identity(conn, "slack", "T1", "U-b", clock())
        touched = conn.exec_driver_sql("SELECT last_used_at FROM chat_identities").scalar_one()
    assert inserted == touched and "+" not in inserted and "T" not in inserted
