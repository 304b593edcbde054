"""Registering a queue's Teams channel (`channel it` typed in it): who may, which queue a word means, the latest
registration wins and is audited, and nothing is stored on a refusal. On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from config.policy import Policy
from models import people
from models.audit import audit_events
from models.channels import queue_channel, queue_channels
from models.db import Database
from tests.conftest import Clock, Org
from workflow.queue_channels import Refused, Registered, register

ADDRESS = {"conversation": {"id": "19:it-help@thread.tacv2"}, "serviceUrl": "https://smba.example/"}


def attempt(db: Database, policy: Policy, who: int, type_key: str | None, clock: Clock,
            address: dict = ADDRESS) -> Registered | Refused:
    with db.unit_of_work() as conn:
        person = people.get_employee(conn, who)
        assert person is not None
        return register(conn, policy, person, type_key, "teams", address, "IT help", clock())


def stored(db: Database) -> list[tuple[str, str, str]]:
    with db.unit_of_work(write=False) as conn:
        return [(r.platform, r.channel, r.address["conversation"]["id"]) for r in conn.execute(sa.select(queue_channels))]


def test_someone_of_it_registers_the_it_queues_channel_and_a_second_one_moves_it(
        db: Database, org: Org, policy: Policy, clock: Clock) -> None:
    done = attempt(db, policy, org.it1, "it", clock)
    assert isinstance(done, Registered) and done.channels == ("#it-help",)
    assert stored(db) == [("teams", "#it-help", "19:it-help@thread.tacv2")]
    moved = attempt(db, policy, org.it2, None, clock, {"conversation": {"id": "19:other@thread.tacv2"}})
    assert isinstance(moved, Registered)  # the only type with a queue channel, when none is named
    with db.unit_of_work(write=False) as conn:
        now = queue_channel(conn, "teams", "#it-help")
        kinds = [r.kind for r in conn.execute(sa.select(audit_events.c.kind))]
    assert now is not None and now.address["conversation"]["id"] == "19:other@thread.tacv2"
    assert now.registered_by == org.it2
    assert kinds.count("queue.channel_registered") == 2


def test_people_outside_the_queue_and_types_without_one_are_refused_and_nothing_is_stored(
        db: Database, org: Org, policy: Policy, clock: Clock) -> None:
    assert attempt(db, policy, org.alice, "it", clock) == Refused("not_holder", "it")
    assert attempt(db, policy, org.it1, "leave", clock) == Refused("no_queue", "leave")
    assert attempt(db, policy, org.it1, "nonsense", clock) == Refused("no_type")
    assert stored(db) == []
    # an admin may, though not of IT
    assert isinstance(attempt(db, policy, org.admin, "it", clock), Registered)
