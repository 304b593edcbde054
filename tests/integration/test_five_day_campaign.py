"""The 年5日 campaign with a controllable clock, on both backends: monthly nudges, weekly ones in the last months
of the window, a manager digest, once per period per person, nothing outside business days and hours, and
the policy section validated."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from config.policy import Policy, PolicyError, parse_policy
from models import people
from models.db import Database
from models.messaging import outbox
from tests.conftest import Org
from workflow import five_day_campaign as campaign


def messages(db: Database) -> list[tuple[str, int, dict]]:  # type: ignore[type-arg]
    with db.unit_of_work(write=False) as conn:
        return [(r.kind, r.recipient_id, r.payload) for r in conn.execute(
            sa.select(outbox.c.kind, outbox.c.recipient_id, outbox.c.payload).order_by(outbox.c.id))]


def jst(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC) - timedelta(hours=9)


@pytest.fixture
def sales_only(db: Database, org: Org) -> Org:
    """Only Alice and Bob (reporting to the manager) carry the obligation: everyone else has no hire date."""
    with db.unit_of_work() as conn:
        for person in people.all_employees(conn):
            if person.id not in (org.alice, org.bob):
                people.update_employee(conn, person.id, hire_date=None)
        # Alice: first grant 2025-10-01 (window to 2026-09-30); Bob: grant 2025-08-01 (window to 2026-07-31)
        people.update_employee(conn, org.alice, hire_date=date(2025, 4, 1))
        people.update_employee(conn, org.bob, hire_date=date(2025, 2, 1))
    return org


def test_monthly_then_weekly_nudges_and_a_manager_digest(db: Database, sales_only: Org, policy: Policy) -> None:
    org = sales_only
    assert campaign.run(db, policy, jst(2026, 6, 1)) == 3  # Monday June 1st: Alice, Bob, their manager
    sent = messages(db)
    nudges = {r: p for k, r, p in sent if k == campaign.NUDGE_KIND}
    assert set(nudges) == {org.alice, org.bob}
    assert nudges[org.alice] == {"kind": "five_day_nudge", "taken": "0", "required": "5", "shortfall": "5",
                                  "deadline": "2026-09-30", "days_left": 122, "leave_type": "leave"}
    digest = [(r, p) for k, r, p in sent if k == campaign.DIGEST_KIND]
    assert [r for r, _ in digest] == [org.manager]
    assert [t["employee"] for t in digest[0][1]["team"]] == [org.bob, org.alice]  # the most urgent first

    # the rest of June: Alice stays monthly (nothing more); Bob's window ends 07-31, so from 05-01 he is in
    # its last three months: weekly, on Mondays
    for day in range(2, 31):
        campaign.run(db, policy, jst(2026, 6, day))
    weekly_bob = [p for k, r, p in messages(db) if k == campaign.NUDGE_KIND and r == org.bob]
    assert len(weekly_bob) == 5  # June 1, 8, 15, 22, 29
    assert len([1 for k, r, _ in messages(db) if k == campaign.NUDGE_KIND and r == org.alice]) == 1
    assert len([1 for k, _, _ in messages(db) if k == campaign.DIGEST_KIND]) == 5  # one per day Bob was nudged


def test_once_per_period_even_if_ticked_often(db: Database, sales_only: Org, policy: Policy) -> None:
    for minutes in range(0, 600, 7):
        campaign.run(db, policy, jst(2026, 6, 1) + timedelta(minutes=minutes))
    assert len(messages(db)) == 3


def test_waits_for_business_days_and_hours(db: Database, sales_only: Org, policy: Policy) -> None:
    assert campaign.run(db, policy, jst(2026, 7, 1, 9)) == 0  # before 10:00
    assert campaign.run(db, policy, jst(2026, 8, 1, 11)) == 0  # a Saturday
    # Monday: Alice's August, Bob's new grant (2026-08-01) opens a new window, and their manager's digest
    assert campaign.run(db, policy, jst(2026, 8, 3, 11)) == 3


def test_taken_leave_counts(db: Database, sales_only: Org, policy: Policy) -> None:
    from models import leave as leave_rows
    from workflow import leave

    org = sales_only
    now = jst(2026, 6, 1)
    with db.unit_of_work() as conn:
        alice = people.get_employee(conn, org.alice)
        assert alice is not None
        leave.sync_grants(conn, alice, now.date(), now)
        grant = leave_rows.grants_of(conn, org.alice)[0]
        from decimal import Decimal
        leave_rows.insert_taken(conn, [{"employee_id": org.alice, "grant_id": grant.id, "request_id": None,
                                        "taken_on": date(2025, 12, d), "unit": "full", "hours": None,
                                        "days": Decimal(1), "created_at": now} for d in (1, 2, 3, 4, 5)])
    campaign.run(db, policy, now)
    assert {r for k, r, _ in messages(db) if k == campaign.NUDGE_KIND} == {org.bob}


def test_disabled_and_bad_settings(policy: Policy) -> None:
    base = policy.model_dump(mode="json", by_alias=True)
    with pytest.raises(PolicyError) as caught:
        parse_policy({**base, "campaigns": {"five_day": {"monthly_day": 31, "weekly_day": "someday"}}})
    text = str(caught.value)
    assert "campaigns.five_day.monthly_day" in text and "campaigns.five_day.weekly_day" in text
    off = parse_policy({**base, "campaigns": {"five_day": {"enabled": False}}})
    assert off.campaigns.five_day.enabled is False


def test_disabled_sends_nothing(db: Database, sales_only: Org, policy: Policy) -> None:
    off = policy.model_copy(update={"campaigns": policy.campaigns.model_copy(update={
        "five_day": policy.campaigns.five_day.model_copy(update={"enabled": False})})})
    assert campaign.run(db, off, jst(2026, 6, 1)) == 0
