"""Delivery results written several to a transaction (bot/delivery_records.py), on the database's real writer:
results that come in together share one, each caller still learns its own outcome, and a caller that gives up
takes its result back. Both backends."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from bot.delivery_records import Records
from bot.writer import on_writer
from models.db import Database
from models.messaging import OutboxMessage, outbox
from tests.conftest import Clock, Org
from workflow import delivery


def claimed_rows(db: Database, org: Org, now: datetime, count: int) -> list[int]:
    """`count` outbox rows as the delivery loop holds them once claimed (state sending)."""
    with db.unit_of_work() as conn:
        conn.execute(outbox.insert(), [
            {"idempotency_key": f"records-{i}", "recipient_id": org.alice, "kind": "submitted", "request_id": None,
             "payload": {"kind": "submitted"}, "state": "sending", "attempts": 1, "next_attempt_at": now,
             "created_at": now, "priority": 1} for i in range(count)])
        return [r.id for r in conn.execute(sa.select(outbox.c.id).order_by(outbox.c.id))]


def rows(db: Database) -> dict[int, OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        return {r.id: OutboxMessage(**r._mapping) for r in conn.execute(sa.select(outbox))}


def counted(db: Database) -> tuple[Records, list[int]]:
    """Records on the database's writer, and how many shared transactions each hand-over to it carried."""
    carried: list[int] = []

    async def write(fn: Callable[..., Any], shared: list[Any]) -> Any:
        carried.append(len(shared))
        # the loop runs at least once while a transaction is written, as it does whenever the write waits (on
        # PostgreSQL a quick server may have answered before its unit asks, and then the unit never waits)
        await asyncio.sleep(0)
        return await on_writer(db, fn, shared, first=False)

    return Records(db, write), carried


def ref(row_id: int) -> dict[str, str]:
    return {"channel": "D1", "ts": f"{row_id}.000100"}


async def test_results_coming_in_together_share_a_transaction(db: Database, org: Org, clock: Clock) -> None:
    ids = claimed_rows(db, org, clock.now, 30)
    records, carried = counted(db)
    await asyncio.gather(*[records.record(delivery.mark_sent, i, ref(i), "slack", clock.now) for i in ids])
    # the first goes at once, alone; the 29 that came in while it was written go together
    assert carried == [1, 29]
    stored = rows(db)
    assert all(stored[i].state == "sent" and stored[i].message_ref == ref(i) for i in ids)


async def test_a_result_alone_goes_at_once(db: Database, org: Org, clock: Clock) -> None:
    row_id, = claimed_rows(db, org, clock.now, 1)
    records, carried = counted(db)
    await records.record(delivery.mark_dead, row_id, "channel_not_found")
    assert carried == [1]
    assert rows(db)[row_id].state == "dead" and rows(db)[row_id].last_error == "channel_not_found"


async def test_one_rows_error_is_its_own(db: Database, org: Org, clock: Clock) -> None:
    """A result the database refuses (here: no time for the next attempt, which may not be empty) fails its own
    caller; the results that shared its transaction are written again without it."""
    ids = claimed_rows(db, org, clock.now, 5)
    records, carried = counted(db)
    bad = ids[3]
    outcomes = await asyncio.gather(
        *[records.record(delivery.mark_retry, i, "timeout", None) if i == bad
          else records.record(delivery.mark_sent, i, ref(i), "slack", clock.now) for i in ids],
        return_exceptions=True)
    # (SQLAlchemy's error on PostgreSQL; sqlite3's own where the statement runs on the driver's cursor)
    assert isinstance(outcomes[3], sa.exc.IntegrityError | sqlite3.IntegrityError)
    assert "next_attempt_at" in str(outcomes[3])
    assert [o for i, o in enumerate(outcomes) if i != 3] == [None] * 4
    assert carried == [1, 4, 1, 1, 1, 1]  # the shared one failed: each of its four again alone
    stored = rows(db)
    assert stored[bad].state == "sending" and stored[bad].last_error is None  # unchanged
    assert all(stored[i].state == "sent" for i in ids if i != bad)


async def test_a_caller_that_gives_up_before_its_result_is_written_takes_it_back(db: Database, org: Org,
                                                                                clock: Clock) -> None:
    """As a unit of work cancelled before it runs: the row stays claimed (the delivery loop releases it at its
    shutdown). The results waiting beside it still go."""
    first, given_up, later = claimed_rows(db, org, clock.now, 3)
    records, carried = counted(db)
    writing = asyncio.ensure_future(records.record(delivery.mark_sent, first, ref(first), "slack", clock.now))
    waiting = asyncio.ensure_future(records.record(delivery.mark_sent, given_up, ref(given_up), "slack", clock.now))
    await asyncio.sleep(0)  # the first is being written; the second waits for its turn
    assert carried == [1] and not writing.done()
    waiting.cancel()
    await writing
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await records.record(delivery.mark_sent, later, ref(later), "slack", clock.now)
    assert carried == [1, 1]
    stored = rows(db)
    assert stored[first].state == stored[later].state == "sent"
    assert stored[given_up].state == "sending" and stored[given_up].message_ref is None
