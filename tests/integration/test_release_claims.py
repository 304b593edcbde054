"""Giving claimed outbox rows back at shutdown (`workflow.delivery.release`), on SQLite and PostgreSQL: a row this
worker claimed and did not send is due again at once with its attempt not counted; a row whose lease ran out and
that another worker claimed since, or that was recorded meanwhile, is left as it is."""

from __future__ import annotations

from datetime import timedelta

from models import messaging
from models.db import Database
from models.messaging import OutboxMessage
from tests.conftest import Clock, Org
from workflow import delivery

LEASE = timedelta(minutes=2)


def enqueue(db: Database, org: Org, clock: Clock, n: int) -> None:
    with db.unit_of_work() as conn:
        messaging.enqueue(conn, [
            {"idempotency_key": f"release:{i}", "recipient_id": org.alice, "kind": "fyi", "request_id": None,
             "payload": {"i": i}, "state": "pending", "attempts": 0, "next_attempt_at": clock.now,
             "created_at": clock.now} for i in range(n)])


def claim(db: Database, clock: Clock, limit: int) -> list[OutboxMessage]:
    with db.unit_of_work() as conn:
        return delivery.claim_due(conn, clock.now, limit, LEASE)


def rows(db: Database) -> dict[int, OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        return {m.id: m for m in (messaging.get_outbox(conn, i) for i in range(1, 10)) if m is not None}


def test_claimed_rows_are_given_back_due_now_with_their_attempt_uncounted(db: Database, org: Org,
                                                                         clock: Clock) -> None:
    enqueue(db, org, clock, 4)
    mine = claim(db, clock, 4)
    assert [m.state for m in mine] == ["sending"] * 4 and {m.attempts for m in mine} == {1}
    with db.unit_of_work() as conn:
        delivery.mark_sent(conn, mine[0].id, {"channel": "D1", "ts": "1.1"}, "slack", clock.now)
    clock.advance(seconds=5)
    with db.unit_of_work() as conn:
        released = delivery.release(conn, {m.id: m.next_attempt_at for m in mine}, clock.now)
    assert released == 3  # the sent one is not ours to give back any more
    after = rows(db)
    assert after[mine[0].id].state == "sent"
    for m in mine[1:]:
        assert (after[m.id].state, after[m.id].attempts, after[m.id].next_attempt_at) == ("pending", 0, clock.now)
    again = claim(db, clock, 10)  # any worker can take them at once
    assert sorted(m.id for m in again) == sorted(m.id for m in mine[1:])


def test_a_row_another_worker_claimed_after_the_lease_is_left_alone(db: Database, org: Org, clock: Clock) -> None:
    enqueue(db, org, clock, 1)
    [mine] = claim(db, clock, 1)
    clock.advance(seconds=LEASE.total_seconds() + 1)  # our lease ran out: another worker took the row
    [theirs] = claim(db, clock, 1)
    assert theirs.id == mine.id and theirs.attempts == 2
    with db.unit_of_work() as conn:
        assert delivery.release(conn, {mine.id: mine.next_attempt_at}, clock.now) == 0
    after = rows(db)[mine.id]
    assert (after.state, after.attempts, after.next_attempt_at) == ("sending", 2, theirs.next_attempt_at)


def test_nothing_to_release_changes_nothing(db: Database, org: Org, clock: Clock) -> None:
    enqueue(db, org, clock, 2)
    before = rows(db)
    with db.unit_of_work() as conn:
        assert delivery.release(conn, {}, clock.now) == 0
        assert delivery.release(conn, {1: clock.now}, clock.now) == 0  # pending, not claimed: not ours
    assert rows(db) == before
