"""The SQLite fast path stores and reads exactly what SQLAlchemy's own execution does."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa

from models import leave, messaging, people
from models import requests as rq
from models.base import prepared
from models.db import Database
from models.statements import FastResult, run


def _employee(db: Database) -> int:
    with db.unit_of_work() as conn:
        return people.insert_employee(conn, email="a@example.jp", name_ja="あ", name_en="A", active=True)


def test_rows_written_fast_read_the_same_through_sqlalchemy(sqlite_db: Database) -> None:
    emp = _employee(sqlite_db)
    at = datetime(2026, 6, 2, 1, 2, 3, 456789, tzinfo=UTC)
    with sqlite_db.unit_of_work() as conn:
        req = rq.insert_request(conn, number="X-2026-0001", type="x", fiscal_year=2026, requester_id=emp,
                                payload={"名前": "値", "n": [1, 2]}, warnings=None, status="pending", version=1,
                                round=1, created_at=at, updated_at=at, decided_at=None)
        assert isinstance(req.created_at, datetime) and req.created_at == at
        slow = conn.execute(sa.select(rq.requests).where(rq.requests.c.id == req.id)).one()._mapping
        assert dict(slow) == req.__dict__
        raw = conn.exec_driver_sql("SELECT created_at, payload FROM requests").one()
        assert raw[0] == "2026-06-02 01:02:03.456789"  # SQLAlchemy's own SQLite format
        assert '"名前"' in raw[1] or "\\u540d" in raw[1]


def test_rows_written_by_sqlalchemy_read_the_same_fast(sqlite_db: Database) -> None:
    emp = _employee(sqlite_db)
    at = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)
    with sqlite_db.unit_of_work() as conn:
        conn.execute(leave.leave_grants.insert().values(employee_id=emp, granted_on=date(2026, 4, 1),
                                                        days=Decimal("10.5"), expires_on=date(2028, 4, 1),
                                                        source="law", created_at=at))
        stmt = prepared(("test_grants",), lambda: sa.select(leave.leave_grants)
                        .where(leave.leave_grants.c.employee_id == sa.bindparam("e")))
        row = run(conn, stmt, {"e": emp}).one()
        assert (row.granted_on, row.days, row.created_at) == (date(2026, 4, 1), Decimal("10.5"), at)
        assert row._mapping["source"] == "law"


def test_expanding_in_lists_and_literals(sqlite_db: Database) -> None:
    emp = _employee(sqlite_db)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    with sqlite_db.unit_of_work() as conn:
        req = rq.insert_request(conn, number="X-2026-0002", type="x", fiscal_year=2026, requester_id=emp,
                                payload={}, warnings=None, status="pending", version=1, round=1, created_at=at,
                                updated_at=at, decided_at=None)
        # a literal inside the statement (version + 1) and the conditional update's miss
        bumped = rq.update_request(conn, req.id, 1, status="approved", updated_at=at)
        assert bumped is not None and bumped.version == 2 and bumped.status == "approved"
        assert rq.update_request(conn, req.id, 1, status="rejected", updated_at=at) is None
        messaging.enqueue(conn, [{"idempotency_key": f"k{i}", "recipient_id": emp, "kind": "k", "request_id": req.id,
                                  "payload": {"i": i}, "state": "pending", "attempts": 0, "next_attempt_at": at,
                                  "created_at": at} for i in range(3)])
        assert [m.payload for m in messaging.outbox_for(conn, req.id)] == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert messaging.cancel_nudges(conn, []) == 0
        rq.set_assignments_status(conn, [], ("pending",), "cancelled")  # nothing to do, no error


def test_python_side_defaults_fall_back_to_sqlalchemy(sqlite_db: Database) -> None:
    with sqlite_db.unit_of_work() as conn:
        stmt = prepared(("test_employee_insert",), people.employees.insert)
        result = run(conn, stmt, {"email": "b@example.jp", "name_ja": "い", "name_en": "B"})
        assert not isinstance(result, FastResult)  # created_at, locale... come from Python defaults
        row = conn.execute(sa.select(people.employees).where(people.employees.c.email == "b@example.jp")).one()
        assert row.locale == "ja" and row.active is True and row.created_at is not None
