"""HR broadcasts on both backends: audiences, permissions, acknowledgement (a double click counts once), remind
the outstanding, repeated broadcasts firing once per occurrence (even with two tickers at once), the report and
its CSV, and bad input refused with nothing stored."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from config.policy import Policy
from models import broadcasts as rows
from models import people
from models.audit import iter_events as audit_events
from models.db import Database
from models.messaging import outbox
from tests.conftest import Clock, Org
from workflow import broadcasts as bc
from workflow import delivery
from workflow.audiences import Audience

EVERYONE = Audience("everyone")


def draft(author: int, audience: Audience = EVERYONE, **extra: Any) -> bc.Draft:
    values: dict[str, Any] = {"message_ja": "健康診断の予約をしてください", "message_en": "Please book your health check",
                              "ack_required": True}
    values.update(extra)
    return bc.Draft(author, audience, **values)


def sent_to(db: Database, kind: str = bc.KIND) -> list[int]:
    with db.unit_of_work(write=False) as conn:
        return list(conn.execute(sa.select(outbox.c.recipient_id).where(outbox.c.kind == kind)
                                 .order_by(outbox.c.recipient_id)).scalars())


def count(db: Database, table: sa.Table) -> int:
    with db.unit_of_work(write=False) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def deliver_all(db: Database, now: datetime) -> None:
    """What the delivery loop records for every due row: sent, with a message ref."""
    with db.unit_of_work() as conn:
        for i, row in enumerate(delivery.claim_due(conn, now, 100_000)):
            delivery.mark_sent(conn, row.id, {"channel": f"D{row.recipient_id}", "ts": f"{i}.0"}, "slack", now)


def all_ids(org: Org) -> list[int]:
    return sorted([org.ceo, org.sales_head, org.manager, org.alice, org.bob, org.finance1, org.finance2, org.legal,
                   org.seal_keeper, org.it1, org.it2, org.hr, org.admin])


# ---------------------------------------------------------------------------------------------- audiences


def test_audiences_resolve_to_active_people(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    with db.unit_of_work() as conn:
        people.update_employee(conn, org.it2, active=False)
    cases = [
        (Audience("everyone"), [i for i in all_ids(org) if i != org.it2]),
        (Audience("departments", ("SALES",)), [org.sales_head, org.manager, org.alice, org.bob]),
        (Audience("departments", ("EXEC",)), [i for i in all_ids(org) if i != org.it2]),  # and its sub-departments
        (Audience("roles", ("finance", "legal")), [org.finance1, org.finance2, org.legal]),
        (Audience("people", ("alice@example.jp", "BOB@example.jp")), [org.alice, org.bob]),
    ]
    for audience, expected in cases:
        result = bc.create(db, policy, draft(org.hr, audience), clock.now)
        assert result.ok, result.message
        assert result.count == len(expected)
        with db.unit_of_work(write=False) as conn:
            found = bc.report(conn, result.broadcast_id or 0)
        assert found is not None
        assert sorted(r.employee_id for r, _ in found.recipients) == sorted(expected), audience


def test_five_day_shortfall_query(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    # hired 2020-04-01: a 10+ day grant on 2025-10-01 opens a window containing 2026-06-02; nobody took leave
    with db.unit_of_work() as conn:
        people.update_employee(conn, org.bob, hire_date=None)
        people.update_employee(conn, org.it1, hire_date=date(2026, 5, 1))  # no grant yet
    result = bc.create(db, policy, draft(org.hr, Audience("query", ("five_day_shortfall",))), clock.now)
    assert result.ok
    expected = [i for i in all_ids(org) if i not in (org.bob, org.it1)]
    assert sent_to(db) == expected


# ---------------------------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("who", ["alice", "manager", "finance1"])
def test_only_hr_and_admins_may_broadcast(db: Database, org: Org, clock: Clock, policy: Policy, who: str) -> None:
    result = bc.create(db, policy, draft(getattr(org, who)), clock.now)
    assert not result.ok and result.message == bc.NOT_ALLOWED
    assert count(db, rows.broadcasts) == 0 and sent_to(db) == []
    assert bc.create(db, policy, draft(org.admin), clock.now).ok
    assert bc.create(db, policy, draft(org.ceo), clock.now).ok  # the CEO holds admin in this org


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("audience", "extra", "field"), [
    (Audience("departments", ("NOPE", "SALES")), {}, "targets"),
    (Audience("roles", ("astronaut",)), {}, "targets"),
    (Audience("people", ("ghost@example.jp",)), {}, "targets"),
    (Audience("departments", ()), {}, "targets"),
    (Audience("query", ("nobody_knows",)), {}, "targets"),
    (EVERYONE, {"message_ja": " ", "message_en": ""}, "message_ja"),
    (EVERYONE, {"send_at": datetime(2026, 6, 1, 1, 0, tzinfo=UTC)}, "send_at"),
    (EVERYONE, {"send_at": datetime(2026, 6, 8, 0, 0, tzinfo=UTC), "repeat": {"day_of_week": "mon", "hour": 9},
                "repeat_until": date(2026, 6, 7)}, "repeat_until"),
])
def test_bad_input_is_refused_under_its_field_and_nothing_is_stored(
        db: Database, org: Org, clock: Clock, policy: Policy, audience: Audience, extra: dict[str, Any],
        field: str) -> None:
    result = bc.create(db, policy, draft(org.hr, audience, **extra), clock.now)
    assert not result.ok
    assert list(result.errors) == [field]
    assert result.errors[field].ja and result.errors[field].en
    assert count(db, rows.broadcasts) == 0 and count(db, outbox) == 0
    with db.unit_of_work(write=False) as conn:
        assert list(audit_events(conn)) == []


def test_unknown_names_are_listed(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    result = bc.create(db, policy, draft(org.hr, Audience("departments", ("NOPE", "SALES", "GONE"))), clock.now)
    assert "NOPE, GONE" in result.errors["targets"].en and "NOPE、GONE" in result.errors["targets"].ja


# ---------------------------------------------------------------------------------------------- acknowledgement


def test_acknowledge_once_and_update_every_copy(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    result = bc.create(db, policy, draft(org.hr, Audience("people", ("alice@example.jp", "bob@example.jp"))),
                       clock.now)
    deliver_all(db, clock.now)
    with db.unit_of_work(write=False) as conn:
        found = bc.report(conn, result.broadcast_id or 0)
    assert found is not None and (found.delivered, found.acknowledged, found.outstanding) == (2, 0, 2)
    alice = next(r for r, _ in found.recipients if r.employee_id == org.alice)

    assert not bc.acknowledge(db, alice.id, org.bob, clock.now).ok  # not Bob's to acknowledge
    first = bc.acknowledge(db, alice.id, org.alice, clock.now)
    clock.advance(seconds=1)
    second = bc.acknowledge(db, alice.id, org.alice, clock.now)  # the double click
    assert first.ok and not second.ok and "2026-06-02 10:00" in second.message.en
    assert sent_to(db, bc.UPDATE_KIND) == [org.alice]  # one update, of the one copy posted
    with db.unit_of_work(write=False) as conn:
        found = bc.report(conn, result.broadcast_id or 0)
        acks = [e for e in audit_events(conn) if e.kind == bc.ACKNOWLEDGED]
    assert found is not None and (found.delivered, found.acknowledged, found.outstanding) == (2, 1, 1)
    assert len(acks) == 1


def test_concurrent_acknowledgements_count_once(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    result = bc.create(db, policy, draft(org.hr, Audience("people", ("alice@example.jp",))), clock.now)
    with db.unit_of_work(write=False) as conn:
        found = bc.report(conn, result.broadcast_id or 0)
    assert found is not None
    rid = found.recipients[0][0].id
    outcomes: list[bool] = []
    barrier = threading.Barrier(4)

    def click() -> None:
        barrier.wait()
        outcomes.append(bc.acknowledge(db, rid, org.alice, clock.now).ok)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False, False, False, True]


def test_remind_the_outstanding(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    result = bc.create(db, policy, draft(org.hr, Audience("departments", ("SALES",))), clock.now)
    deliver_all(db, clock.now)
    with db.unit_of_work(write=False) as conn:
        found = bc.report(conn, result.broadcast_id or 0)
    assert found is not None
    by_person = {r.employee_id: r.id for r, _ in found.recipients}
    bc.acknowledge(db, by_person[org.alice], org.alice, clock.now)
    bc.acknowledge(db, by_person[org.manager], org.manager, clock.now)

    assert not bc.remind_outstanding(db, result.broadcast_id or 0, org.alice, clock.now).ok  # not HR
    reminded = bc.remind_outstanding(db, result.broadcast_id or 0, org.hr, clock.now)
    assert reminded.ok and reminded.count == 2
    assert sent_to(db, bc.REMINDER_KIND) == sorted([org.sales_head, org.bob])
    again = bc.remind_outstanding(db, result.broadcast_id or 0, org.hr, clock.now)
    assert again.ok and again.count == 2  # a second reminder is a new message, to the same two
    bc.acknowledge(db, by_person[org.bob], org.bob, clock.now)
    bc.acknowledge(db, by_person[org.sales_head], org.sales_head, clock.now)
    assert not bc.remind_outstanding(db, result.broadcast_id or 0, org.hr, clock.now).ok
    with db.unit_of_work(write=False) as conn:
        kinds = [e.kind for e in audit_events(conn)]
    assert kinds.count(bc.REMINDED) == 2 and kinds.count(bc.CREATED) == 1


# ---------------------------------------------------------------------------------------------- repeats


MONDAY_9 = {"day_of_week": "mon", "hour": 9, "minute": 0}


def test_a_weekly_broadcast_fires_once_per_occurrence_until_its_end(
        db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    start = datetime(2026, 6, 3, 0, 0, tzinfo=UTC)  # Wednesday 09:00 JST: the first Monday is 06-08
    result = bc.create(db, policy, draft(org.hr, Audience("people", ("alice@example.jp",)), send_at=start,
                                         repeat=MONDAY_9, repeat_until=date(2026, 6, 22)), clock.now)
    assert result.ok and "2026-06-08 09:00" in result.message.en
    fired = []
    moment = clock.now
    while moment < datetime(2026, 7, 1, tzinfo=UTC):
        moment += timedelta(hours=1)
        if bc.fire_due(db, policy, moment):
            fired.append(moment)
        bc.fire_due(db, policy, moment)  # the same tick again: nothing more
    assert [f.date() for f in fired] == [date(2026, 6, 8), date(2026, 6, 15), date(2026, 6, 22)]
    assert len(sent_to(db)) == 3


def test_missed_occurrences_fire_once_after_downtime(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    bc.create(db, policy, draft(org.hr, Audience("people", ("alice@example.jp",)), repeat=MONDAY_9,
                                send_at=clock.now + timedelta(minutes=5)), clock.now)
    assert bc.fire_due(db, policy, datetime(2026, 6, 30, tzinfo=UTC)) == 1  # three Mondays missed: one message
    assert bc.fire_due(db, policy, datetime(2026, 6, 30, tzinfo=UTC)) == 0
    assert bc.fire_due(db, policy, datetime(2026, 7, 6, 0, 0, tzinfo=UTC)) == 1


def test_two_tickers_at_once_fire_each_occurrence_once(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    for _ in range(3):
        bc.create(db, policy, draft(org.hr, repeat=MONDAY_9, send_at=clock.now + timedelta(minutes=5)), clock.now)
    mondays = [datetime(2026, 6, 8, 0, 0, tzinfo=UTC) + timedelta(weeks=w) for w in range(3)]
    errors: list[BaseException] = []

    def tick(at: datetime, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            bc.fire_due(db, policy, at)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for monday in mondays:
        barrier = threading.Barrier(3)
        threads = [threading.Thread(target=tick, args=(monday, barrier)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert count(db, rows.occurrences) == 9
    assert len(sent_to(db)) == 9 * 13  # 3 broadcasts x 3 Mondays x 13 people, no duplicates
    with db.unit_of_work(write=False) as conn:
        keys = list(conn.execute(sa.select(outbox.c.idempotency_key)).scalars())
    assert len(keys) == len(set(keys))


def test_cancel_stops_future_occurrences(db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    result = bc.create(db, policy, draft(org.hr, Audience("people", ("alice@example.jp",)), repeat=MONDAY_9,
                                         send_at=clock.now + timedelta(minutes=5)), clock.now)
    assert bc.fire_due(db, policy, datetime(2026, 6, 8, 0, 0, tzinfo=UTC)) == 1
    assert not bc.cancel(db, result.broadcast_id or 0, org.alice, clock.now).ok
    assert bc.cancel(db, result.broadcast_id or 0, org.hr, clock.now).ok
    assert not bc.cancel(db, result.broadcast_id or 0, org.hr, clock.now).ok
    assert bc.fire_due(db, policy, datetime(2026, 6, 15, 0, 0, tzinfo=UTC)) == 0


# ---------------------------------------------------------------------------------------------- report


def test_report_lists_unreachable_and_failed_and_csv_is_for_excel(
        db: Database, org: Org, clock: Clock, policy: Policy) -> None:
    result = bc.create(db, policy, draft(org.hr, Audience("departments", ("SALES",))), clock.now)
    with db.unit_of_work() as conn:
        claimed = {r.recipient_id: r for r in delivery.claim_due(conn, clock.now, 100)}
        delivery.mark_sent(conn, claimed[org.alice].id, {"channel": "D1", "ts": "1.0"}, "slack", clock.now)
        delivery.mark_sent(conn, claimed[org.bob].id, {"channel": "D2", "ts": "2.0"}, "slack", clock.now)
        delivery.mark_dead(conn, claimed[org.manager].id, "not reachable on Slack (no identity)")
        delivery.mark_dead(conn, claimed[org.sales_head].id, "account_inactive")
    with db.unit_of_work(write=False) as conn:
        found = bc.report(conn, result.broadcast_id or 0)
    assert found is not None
    bc.acknowledge(db, next(r.id for r, _ in found.recipients if r.employee_id == org.bob), org.bob, clock.now)
    with db.unit_of_work(write=False) as conn:
        found = bc.report(conn, result.broadcast_id or 0)
    assert found is not None
    assert (found.delivered, found.acknowledged, found.outstanding, found.failed, found.unreachable) == (2, 1, 1, 2, 1)
    text = bc.report_csv(found, policy.company.timezone)
    lines = text.split("\r\n")
    assert lines[0].split(",") == bc.CSV_HEADER
    assert any("高橋 愛" in line and "未確認" in line and "2026-06-02 10:00" in line for line in lines)
    assert any("田中 健" in line and "確認済み" in line for line in lines)
    assert any("鈴木 一郎" in line and "連絡先なし" in line and "no identity" in line for line in lines)
    assert any("佐藤 花子" in line and "送信失敗" in line and "account_inactive" in line for line in lines)
    assert text.encode("utf-8-sig").startswith(b"\xef\xbb\xbf")
