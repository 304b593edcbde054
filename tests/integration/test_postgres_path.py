"""The PostgreSQL fast path (models/postgres_path.py, through `models.statements.run`) stores and reads exactly what
SQLAlchemy's own execution does, and fails the way it does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from models import leave, people, statements
from models import requests as rq
from models.base import prepared
from models.db import Database
from models.messaging import outbox
from models.statements import FastResult, run
from tests.conftest import _truncate

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_database: Database) -> Database:
    """The session's PostgreSQL database, emptied (the SQLite side has tests/integration/test_statements.py)."""
    _truncate(pg_database)
    return pg_database


def _employee(db: Database, email: str = "a@example.jp") -> int:
    with db.unit_of_work() as conn:
        return people.insert_employee(conn, email=email, name_ja="あ", name_en="A", active=True)


def _request(conn: sa.Connection, requester: int, number: str, at: datetime) -> rq.Request:
    return rq.insert_request(conn, number=number, type="x", fiscal_year=2026, requester_id=requester,
                             payload={"名前": "値", "n": [1, 2], "none": None}, warnings=None, status="pending",
                             version=1, round=1, created_at=at, updated_at=at, decided_at=None)


def test_rows_written_fast_read_the_same_through_sqlalchemy(pg: Database) -> None:
    emp = _employee(pg)
    at = datetime(2026, 6, 2, 10, 2, 3, 456789, tzinfo=timezone(timedelta(hours=9)))
    with pg.unit_of_work() as conn:
        req = _request(conn, emp, "X-2026-0001", at)
        assert req.created_at == at and req.created_at.tzinfo is not None
        slow = conn.execute(sa.select(rq.requests).where(rq.requests.c.id == req.id)).one()._mapping
        assert dict(slow) == req.__dict__
        assert slow["payload"] == {"名前": "値", "n": [1, 2], "none": None}
        stored = conn.exec_driver_sql("SELECT payload::text, created_at AT TIME ZONE 'UTC' FROM requests").one()
        assert '"名前": "値"' in stored[0] and stored[1] == datetime(2026, 6, 2, 1, 2, 3, 456789)


def test_rows_written_by_sqlalchemy_read_the_same_fast(pg: Database) -> None:
    emp = _employee(pg)
    at = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)
    with pg.unit_of_work() as conn:
        conn.execute(leave.leave_grants.insert().values(employee_id=emp, granted_on=date(2026, 4, 1),
                                                        days=Decimal("10.5"), expires_on=date(2028, 4, 1),
                                                        source="law", created_at=at))
        stmt = prepared(("test_pg_grants",), lambda: sa.select(leave.leave_grants)
                        .where(leave.leave_grants.c.employee_id == sa.bindparam("e")))
        result = run(conn, stmt, {"e": emp})
        assert isinstance(result, FastResult)  # the fast path ran, not SQLAlchemy
        row = result.one()
        assert (row.granted_on, row.days, row.created_at) == (date(2026, 4, 1), Decimal("10.5"), at)
        assert row._mapping["source"] == "law"


def test_in_lists_of_every_length_literals_and_returning(pg: Database) -> None:
    emp = _employee(pg)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    stmt = prepared(("test_pg_in",), lambda: sa.select(rq.requests.c.number)
                    .where(rq.requests.c.id.in_(sa.bindparam("ids", expanding=True)),
                           rq.requests.c.status.in_(sa.bindparam("st", expanding=True)))
                    .order_by(rq.requests.c.number))
    with pg.unit_of_work() as conn:
        ids = [_request(conn, emp, f"X-2026-{i:04d}", at).id for i in range(1, 4)]
        for chosen in ([], ids[:1], ids):
            found = run(conn, stmt, {"ids": chosen, "st": ["pending", "approved"]})
            assert [r.number for r in found] == [f"X-2026-{i:04d}" for i in range(1, len(chosen) + 1)]
            slow = conn.execute(stmt, {"ids": chosen, "st": ["pending", "approved"]}).scalars().all()
            assert [r.number for r in found] == slow
        # a literal inside the statement (version + 1) and a conditional update that misses
        bumped = rq.update_request(conn, ids[0], 1, status="approved", updated_at=at)
        assert bumped is not None and bumped.version == 2 and bumped.status == "approved"
        assert rq.update_request(conn, ids[0], 1, status="rejected", updated_at=at) is None


def test_executemany_and_rowcounts(pg: Database) -> None:
    emp = _employee(pg)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    insert = prepared(("test_pg_outbox",), outbox.insert)
    rows = [{"idempotency_key": f"k{i}", "recipient_id": emp, "kind": "fyi", "request_id": None,
             "payload": {"i": i}, "state": "pending", "attempts": 0, "next_attempt_at": at, "created_at": at}
            for i in range(3)]
    with pg.unit_of_work() as conn:
        assert run(conn, insert, rows).rowcount == 3
        touch = prepared(("test_pg_touch",), lambda: outbox.update()
                         .where(outbox.c.state == sa.bindparam("from_")).values(state=sa.bindparam("to")))
        assert run(conn, touch, {"from_": "pending", "to": "sent"}).rowcount == 3
        payloads = conn.execute(sa.select(outbox.c.payload).order_by(outbox.c.id)).scalars().all()
        assert payloads == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_a_failure_is_sqlalchemy_s_exception_and_the_unit_rolls_back(pg: Database) -> None:
    emp = _employee(pg)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    with pytest.raises(sa.exc.IntegrityError), pg.unit_of_work() as conn:
        _request(conn, emp, "X-2026-0009", at)
        _request(conn, emp, "X-2026-0009", at)  # the number is unique
    with pg.unit_of_work(write=False) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rq.requests)).scalar_one() == 0


def test_what_the_path_leaves_to_sqlalchemy(pg: Database) -> None:
    """text() statements are SQLAlchemy's; so is an executemany with RETURNING (insertmanyvalues), in order."""
    emp = _employee(pg)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    with pg.unit_of_work() as conn:
        counted = run(conn, sa.text("SELECT 1 AS one"), {})
        assert not isinstance(counted, FastResult) and counted.scalar() == 1
        req = _request(conn, emp, "X-2026-0010", at)
        stmt = prepared(("test_pg_steps",), lambda: rq.steps.insert().returning(rq.steps.c.id, rq.steps.c.key,
                                                                               sort_by_parameter_order=True))
        rows = [{"request_id": req.id, "round": 1, "position": i, "key": f"s{i}", "kind": "approval",
                 "required": 0, "cycle": 1, "status": "waiting", "activated_at": None, "due_at": None,
                 "completed_at": None} for i in range(3)]
        returned = run(conn, stmt, rows)
        assert not isinstance(returned, FastResult)
        assert [r.key for r in returned] == ["s0", "s1", "s2"]
    assert statements._PG_PLANS  # the fast path's plans are kept per statement shape


@pytest.mark.parametrize("count", [1, 2, statements.MULTI_ROWS, statements.MULTI_ROWS + 1])
def test_a_few_rows_go_as_one_insert_and_store_what_sqlalchemy_stores(pg: Database, count: int) -> None:
    """Up to MULTI_ROWS rows are one multi-row INSERT, more an executemany; either way each row is stored exactly as
    SQLAlchemy's own executemany stores it (JSON, instants, NULLs), and the rowcount counts them all."""
    emp = _employee(pg)
    at = datetime(2026, 6, 2, 9, 30, tzinfo=timezone(timedelta(hours=9)))

    def rows(prefix: str) -> list[dict[str, object]]:
        return [{"idempotency_key": f"{prefix}{i}", "recipient_id": emp, "kind": "fyi", "request_id": None,
                 "payload": {"i": i, "名前": "山田", "none": None}, "state": "pending", "attempts": i,
                 "next_attempt_at": at + timedelta(seconds=i), "created_at": at} for i in range(count)]

    insert = prepared(("test_pg_outbox_multi",), outbox.insert)
    with pg.unit_of_work() as conn:
        assert run(conn, insert, rows("fast")).rowcount == count
        conn.execute(outbox.insert(), rows("alchemy"))
    columns = [c for c in outbox.c if c.key not in ("id", "idempotency_key")]
    with pg.unit_of_work(write=False) as conn:
        stored = {r.idempotency_key: tuple(r[1:]) for r in conn.execute(
            sa.select(outbox.c.idempotency_key, *columns))}
    assert len(stored) == 2 * count
    assert all(stored[f"fast{i}"] == stored[f"alchemy{i}"] for i in range(count))
    assert stored["fast0"][columns.index(outbox.c.next_attempt_at)] == at


def test_rows_given_with_other_keys_are_inserted_each_as_given(pg: Database) -> None:
    emp = _employee(pg)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    insert = prepared(("test_pg_outbox_keys",), outbox.insert)
    full = {"idempotency_key": "full", "recipient_id": emp, "kind": "fyi", "request_id": None, "payload": {},
            "state": "pending", "attempts": 0, "next_attempt_at": at, "created_at": at}
    reordered = dict(reversed(list({**full, "idempotency_key": "reordered"}.items())))
    with pg.unit_of_work() as conn:
        assert run(conn, insert, [full, reordered]).rowcount == 2
    with pg.unit_of_work(write=False) as conn:
        keys = conn.execute(sa.select(outbox.c.idempotency_key).order_by(outbox.c.id)).scalars().all()
    assert keys == ["full", "reordered"]


def test_an_insert_with_values_of_its_own_is_run_as_given(pg: Database) -> None:
    """Rows for an INSERT that names some values itself cannot be one multi-row statement: they go as before."""
    emp = _employee(pg)
    at = datetime(2026, 6, 2, tzinfo=UTC)
    insert = prepared(("test_pg_outbox_own_values",), lambda: outbox.insert().values(kind="fyi"))
    rows = [{"idempotency_key": f"own{i}", "recipient_id": emp, "request_id": None, "payload": {}, "state": "pending",
             "attempts": 0, "next_attempt_at": at, "created_at": at} for i in range(2)]
    with pg.unit_of_work() as conn:
        run(conn, insert, rows)
    with pg.unit_of_work(write=False) as conn:
        kinds = conn.execute(sa.select(outbox.c.kind).where(outbox.c.idempotency_key.like("own%"))).scalars().all()
    assert kinds == ["fyi", "fyi"]
