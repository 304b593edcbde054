"""Lock order between the tick and a decision on PostgreSQL: the tick holds a request's due reminders and then
inserts the next (back-off) reminder, whose foreign key checks the request row; a decision holds the request
row and then cancels its reminders. With the request locked FOR UPDATE the two deadlocked (found by a race
test of the final policy); FOR NO KEY UPDATE lets the tick's insert through, so both finish."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from config.policy import Policy
from models.db import Database
from models.messaging import nudges
from tests.conftest import Clock, Org
from workflow.engine import Engine

EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 5000,
                                         "tax_rate": "10", "category": "travel"}]}


def test_a_tick_holding_reminders_and_a_decision_on_the_same_request_both_finish(
        db: Database, org: Org, policy: Policy, clock: Clock) -> None:
    if db.dialect != "postgresql":
        pytest.skip("row-lock order is a PostgreSQL matter (SQLite has one writer at a time)")
    engine = Engine(db, policy, clock=clock)
    out = engine.submit(org.alice, "expense", EXPENSE)
    assert out.ok and out.request is not None and out.open_assignments
    request_id, assignment_id = out.request.id, out.open_assignments[0]
    decided: dict[str, Any] = {}

    with db.engine.connect() as tick:
        claim = tick.begin()
        # the tick's claim: the request's reminder rows, locked
        held = tick.execute(sa.select(nudges.c.id, nudges.c.target_id).where(nudges.c.request_id == request_id)
                            .with_for_update()).all()
        assert held
        worker = threading.Thread(target=lambda: decided.update(
            out=engine.decide(assignment_id, held[0].target_id, "approve")))
        worker.start()
        time.sleep(0.5)  # the decision has locked the request and now waits for the reminders the tick holds
        # the tick's back-off reminder for the same request: its foreign key looks at the request row
        tick.execute(nudges.insert().values(request_id=request_id, assignment_id=assignment_id,
                                            target_id=held[0].target_id, kind="overdue",
                                            due_at=clock.now + timedelta(days=1), state="pending"))
        claim.commit()
        worker.join(15)
    assert not worker.is_alive()
    assert decided["out"].ok, decided["out"]
