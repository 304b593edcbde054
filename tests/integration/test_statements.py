"""The SQLite fast path stores and reads exactly what SQLAlchemy's own execution does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from models import leave, messaging, people
from models import requests as rq
from models.base import UTCDateTime, prepared
from models.db import Database
from models.statements import FastResult, _utc_text, _utc_value, run


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
        messaging.cancel_nudges(conn, [])  # nothing to do, no error
        rq.set_assignments_status(conn, [], ("pending",), "cancelled")  # nothing to do, no error


def test_python_side_defaults_fall_back_to_sqlalchemy(sqlite_db: Database) -> None:
    with sqlite_db.unit_of_work() as conn:
        stmt = prepared(("test_employee_insert",), people.employees.insert)
        result = run(conn, stmt, {"email": "b@example.jp", "name_ja": "い", "name_en": "B"})
        assert not isinstance(result, FastResult)  # created_at, locale... come from Python defaults
        row = conn.execute(sa.select(people.employees).where(people.employees.c.email == "b@example.jp")).one()
        assert row.locale == "ja" and row.active is True and row.created_at is not None


def test_instants_bind_and_read_as_sqlalchemys_own_processors() -> None:
    """The one-step UTCDateTime processors of the fast path give exactly what SQLAlchemy's two layers give."""
    dialect = sa.create_engine("sqlite://").dialect
    impl = UTCDateTime().dialect_impl(dialect)
    sa_bind, sa_read = impl.bind_processor(dialect), impl.result_processor(dialect, None)
    assert sa_bind is not None and sa_read is not None
    tokyo, new_york = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    instants = [
        datetime(2026, 6, 2, 1, 2, 3, 456789, tzinfo=UTC), datetime(2026, 6, 2, 1, 2, 3, tzinfo=UTC),
        datetime(2026, 6, 2, 9, 2, 3, 1, tzinfo=tokyo), datetime(2027, 1, 1, 0, 0, tzinfo=tokyo),
        datetime(2026, 11, 1, 1, 30, tzinfo=new_york), datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=new_york),
        datetime(2026, 3, 8, 2, 30, tzinfo=new_york),  # a wall time the clock skips
        datetime(1, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5))), datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None,
    ]
    for value in instants + instants[::-1]:  # twice, the second time after other values (the memo)
        text = _utc_text(value)
        assert text == sa_bind(value), value
        assert _utc_value(text) == sa_read(text) and (text is None or _utc_value(text).tzinfo is UTC)
    # the same instant in another zone, then a naive value equal to the last one's UTC wall time
    assert _utc_text(datetime(2026, 6, 2, 10, 2, 3, 456789, tzinfo=tokyo)) == "2026-06-02 01:02:03.456789"
    assert _utc_text(datetime(2026, 6, 2, 1, 2, 3, 456789, tzinfo=UTC)) == "2026-06-02 01:02:03.456789"
    for naive in (datetime(2026, 6, 2, 1, 2, 3, 456789), datetime(2026, 6, 2)):
        with pytest.raises(ValueError, match="naive datetime"):
            _utc_text(naive)
        with pytest.raises(ValueError, match="naive datetime"):
            sa_bind(naive)
    for stored in ("2026-06-02 01:02:03", "2026-06-02 01:02:03.5", "2026-06-02T01:02:03+09:00"):
        assert _utc_value(stored) == sa_read(stored)


def test_steps_assignments_and_people_read_as_sqlalchemy_reads_them(sqlite_db: Database) -> None:
    """Rows become dataclasses by position on the fast path: the same values as SQLAlchemy's rows by name."""
    emp = _employee(sqlite_db)
    at = datetime(2026, 6, 2, 1, 2, 3, 456789, tzinfo=UTC)
    with sqlite_db.unit_of_work() as conn:
        people.set_roles(conn, emp, {"finance", "admin"})
        req = rq.insert_request(conn, number="X-2026-0003", type="x", fiscal_year=2026, requester_id=emp,
                                payload={"a": 1}, warnings=[{"w": 1}], status="pending", version=1, round=1,
                                created_at=at, updated_at=at, decided_at=None)
        steps = rq.insert_steps(conn, [{"request_id": req.id, "round": 1, "position": i, "key": f"s{i}",
                                        "kind": "approval", "required": 0, "cycle": 1, "status": "waiting",
                                        "activated_at": at if i else None, "due_at": None, "completed_at": None}
                                       for i in range(2)])
        assigns = rq.insert_assignments(conn, [{"request_id": req.id, "step_id": s.id, "approver_id": emp,
                                                "cycle": 1, "status": "waiting", "acted_by_id": None,
                                                "comment": "c", "decided_at": at} for s in steps])
        for table, rows in ((rq.steps, rq.steps_of(conn, req.id, 1)), (rq.assignments, rq.assignments_of(conn, req.id))):
            slow = conn.execute(sa.select(table).where(table.c.request_id == req.id).order_by(table.c.id)).all()
            assert [dict(r._mapping) for r in slow] == [r.__dict__ for r in rows]
        assert rq.steps_of(conn, req.id, 1) == steps and rq.assignments_of(conn, req.id) == assigns
        assert rq.get_request(conn, req.id) == req
        fast = people.get_employee(conn, emp)
        assert fast == people.all_employees(conn)[0]  # all_employees goes through SQLAlchemy's rows
        assert fast is not None and fast.roles == ("admin", "finance") and fast.email == "a@example.jp"


def test_text_statements_run_fast_only_with_plain_values(sqlite_db: Database) -> None:
    """A text() statement runs on the cursor when its values need no processor; anything else (a datetime, which
    SQLAlchemy would format) goes through SQLAlchemy, so it is stored the same either way."""
    emp = _employee(sqlite_db)
    at = datetime(2026, 6, 2, 1, 2, 3, 456789, tzinfo=UTC)
    with sqlite_db.unit_of_work() as conn:
        assert [rq.next_number(conn, "x", 2026) for _ in range(3)] == [1, 2, 3]
        stmt = sa.text("UPDATE employees SET name_en = :n WHERE id = :i RETURNING id, name_en")
        result = run(conn, stmt, {"n": "Z", "i": emp})
        assert isinstance(result, FastResult)
        row = result.one()
        assert (row.id, row.name_en, row[1], row._mapping) == (emp, "Z", "Z", {"id": emp, "name_en": "Z"})
        touch = sa.text("UPDATE chat_identities SET last_used_at = :at WHERE employee_id = :e")
        people.remember_identity(conn, emp, "slack", "T1", "U1", at)
        later = at + timedelta(seconds=1)
        assert not isinstance(run(conn, touch, {"at": later, "e": emp}), FastResult)
        stored = conn.exec_driver_sql("SELECT last_used_at FROM chat_identities").scalar_one()
        conn.execute(touch, {"at": later, "e": emp})
        assert conn.exec_driver_sql("SELECT last_used_at FROM chat_identities").scalar_one() == stored


def test_a_column_named_like_a_tuple_method_goes_through_sqlalchemy(sqlite_db: Database) -> None:
    _employee(sqlite_db)
    with sqlite_db.unit_of_work() as conn:
        stmt = prepared(("test_count",), lambda: sa.select(sa.func.count().label("count"))
                        .select_from(people.employees).where(people.employees.c.id > sa.bindparam("i")))
        result = run(conn, stmt, {"i": 0})
        assert not isinstance(result, FastResult) and result.one()._mapping["count"] == 1


def test_in_lists_of_every_length_share_one_plan(sqlite_db: Database) -> None:
    """An expanding bind's SQL is rendered per list length (an empty list matches nothing); values bound inside
    the list go through the column's processor like any other."""
    emp = _employee(sqlite_db)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    with sqlite_db.unit_of_work() as conn:
        people.set_roles(conn, emp, {"x"})
        others = [people.insert_employee(conn, email=f"{i}@example.jp", name_ja="う", name_en="C", active=True)
                  for i in range(3)]
        stmt = prepared(("test_in",), lambda: sa.select(people.employees.c.id).where(
            people.employees.c.id.in_(sa.bindparam("ids", expanding=True)),
            people.employees.c.name_en.in_(sa.bindparam("names", expanding=True)),
            people.employees.c.created_at < sa.bindparam("before")).order_by(people.employees.c.id))
        for ids, names in (([emp, *others], ["A", "C"]), ([], ["A"]), ([others[0]], ["C"]), ([emp, others[1]], []),
                           ([emp, others[2]], ["A", "C"])):
            values = {"ids": ids, "names": names, "before": datetime(2999, 1, 1, tzinfo=UTC)}
            fast = [row[0] for row in run(conn, stmt, values)]
            assert fast == [row[0] for row in conn.execute(stmt, values)], (ids, names)
        created = conn.execute(sa.select(people.employees.c.created_at)
                               .where(people.employees.c.id == emp)).scalar_one()
        stmt = prepared(("test_in_instants",), lambda: sa.select(people.employees.c.id).where(
            people.employees.c.created_at.in_(sa.bindparam("ats", expanding=True))))
        assert [row[0] for row in run(conn, stmt, {"ats": [at, created]})] == [emp]
        assert [d.id for d in people.delegations_from(conn, {emp, others[0]}, at)] == []
        messaging.cancel_nudges(conn, [1, 2, 3])  # an IN list of three on the cursor: no such reminders
        assert conn.execute(sa.select(sa.func.count()).select_from(messaging.nudges)
                            .where(messaging.nudges.c.state == "cancelled")).scalar_one() == 0


def test_a_bumped_request_is_the_request_as_stored(sqlite_db: Database) -> None:
    """bump_request reads back only what it changed: the request it answers is the row as a read gives it."""
    emp = _employee(sqlite_db)
    at = datetime(2026, 6, 2, 1, 2, 3, 456789, tzinfo=UTC)
    later = datetime(2026, 6, 2, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    with sqlite_db.unit_of_work() as conn:
        req = rq.insert_request(conn, number="X-2026-0004", type="x", fiscal_year=2026, requester_id=emp,
                                payload={"a": [1, 2]}, warnings=None, status="pending", version=1, round=1,
                                created_at=at, updated_at=at, decided_at=None)
        bumped = rq.bump_request(conn, req, updated_at=later)
        assert bumped is not None and bumped == rq.get_request(conn, req.id)
        assert bumped.version == 2 and bumped.updated_at.tzinfo is UTC  # read back, as stored
        again = rq.bump_request(conn, bumped, status="sent_back", payload={"b": (1, 2)}, warnings=[{"w": 1}],
                                round=2, updated_at=later)
        assert again is not None and again == rq.get_request(conn, req.id) and again.payload == {"b": [1, 2]}
        assert rq.bump_request(conn, bumped, status="approved", updated_at=later) is None  # version 2 is gone
        assert rq.get_request(conn, req.id) == again


def test_a_literal_in_list_runs_on_the_fast_path(sqlite_db: Database) -> None:
    """`in_((...))` with the values in the statement: an expanding bind with an anonymous key, matched by the name
    the compiled SQL gives it."""
    emp = _employee(sqlite_db)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    stmt = prepared(("test_literal_in",), lambda: sa.select(rq.requests.c.number)
                    .where(rq.requests.c.status.in_(("pending", "approved"))).order_by(rq.requests.c.number))
    with sqlite_db.unit_of_work() as conn:
        for i, status in enumerate(("pending", "rejected", "approved"), 1):
            rq.insert_request(conn, number=f"L-2026-{i:04d}", type="x", fiscal_year=2026, requester_id=emp,
                              payload={}, warnings=None, status=status, version=1, round=1, created_at=at,
                              updated_at=at, decided_at=None)
        found = run(conn, stmt)
        assert isinstance(found, FastResult)
        assert [r.number for r in found] == ["L-2026-0001", "L-2026-0003"]
