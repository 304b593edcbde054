"""The compose-equivalent deployment (issue 10): two replicas, two real `madoguchi serve` processes, on one PostgreSQL
database holding 1,000 due reminders for 1,000 approvers, delivering through one stub Slack Web API on loopback that
records every chat.postMessage. Both tick at start (claims are SKIP LOCKED row locks, so they share the rows) and
both deliver (outbox claims with a lease). Each reminder reaches its approver exactly once: one digest DM per
person, naming their one request. Both answer /readyz 200, their /metrics add up to the 1,000 deliveries, and a
SIGTERM ends each with exit 0.

The approvers live in a fixed-offset zone where it is midday now, and the test's workflows.yaml makes today a
working day there (open_dates), so the digests go out now whatever the day or hour the test runs (reminders wait
for the recipient's working hours)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import sqlalchemy as sa
import yaml
from prometheus_client.parser import text_string_to_metric_families

from config.settings import DEFAULT_WORKFLOWS
from models import messaging, people
from models import requests as rq
from models.db import Database
from models.messaging import outbox
from tests.e2e.test_delivery_crash import Server
from tests.stubs.slack_api import SlackApiStub
from workflow.nudges import DIGEST_KIND

APPROVERS = 1000
REPLICAS = 2
DEADLINE = 120.0


def midday_zone(now: datetime) -> str:
    """A fixed-offset zone where `now` is between 12:00 and 13:00 (Etc/GMT signs are inverted: GMT-9 is UTC+9)."""
    offset = 12 - now.hour  # -11 .. 12
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def workflows_open_today(path: Path, zone: str, now: datetime) -> Path:
    """The shipped workflows.yaml, with the days around today open and no closures (a holiday or a weekend must not
    hold the reminders back)."""
    policy = yaml.safe_load(DEFAULT_WORKFLOWS.read_text(encoding="utf-8"))
    today = now.astimezone(ZoneInfo(zone)).date()
    policy["company"]["closures"] = []
    policy["company"]["open_dates"] = [str(today + timedelta(days=d)) for d in (-1, 0, 1)]
    path.write_text(yaml.safe_dump(policy, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def seed(db: Database, n: int, zone: str, now: datetime) -> dict[int, str]:
    """n approvers (Slack U<id>, no hire date: no 年5日 reminders), each with one pending expense request of one
    requester, one active step, one pending assignment and one reminder due an hour ago; returns approver id ->
    the request's number."""
    with db.unit_of_work() as conn:
        requester = people.insert_employee(conn, roles=frozenset(), email="requester@example.jp", name_ja="申請者",
                                           name_en="Requester", locale="ja", timezone=zone, active=True)
        conn.execute(people.employees.insert(), [
            {"email": f"a{i}@example.jp", "name_ja": f"承認者{i}", "name_en": f"Approver {i}", "locale": "ja",
             "timezone": zone, "active": True, "work_days_per_week": 5, "created_at": now, "updated_at": now}
            for i in range(n)])
        approvers = [e for e in conn.execute(sa.select(people.employees.c.id).order_by(people.employees.c.id))
                     .scalars() if e != requester]
        conn.execute(people.chat_identities.insert(), [
            {"employee_id": e, "platform": "slack", "workspace": "T1", "user_id": f"U{e}"} for e in approvers])
        due = now - timedelta(hours=1)
        numbers = {a: f"EXP-2026-R{i:05d}" for i, a in enumerate(approvers, start=1)}
        conn.execute(rq.requests.insert(), [
            {"id": i, "number": numbers[a], "type": "expense", "fiscal_year": 2026, "requester_id": requester,
             "payload": {"purpose": f"seed {i}"}, "warnings": None, "status": "pending", "version": 1, "round": 1,
             "created_at": due, "updated_at": due, "decided_at": None} for i, a in enumerate(approvers, start=1)])
        conn.execute(rq.steps.insert(), [
            {"id": i, "request_id": i, "round": 1, "position": 0, "key": "manager", "kind": "approval",
             "required": 0, "cycle": 1, "status": "active", "activated_at": due, "due_at": due,
             "completed_at": None} for i in range(1, n + 1)])
        conn.execute(rq.assignments.insert(), [
            {"id": i, "request_id": i, "step_id": i, "approver_id": a, "cycle": 1, "status": "pending",
             "acted_by_id": None, "comment": None, "decided_at": None} for i, a in enumerate(approvers, start=1)])
        conn.execute(messaging.nudges.insert(), [
            {"id": i, "request_id": i, "assignment_id": i, "target_id": a, "kind": "due", "due_at": due,
             "state": "pending"} for i, a in enumerate(approvers, start=1)])
        for table in (rq.requests, rq.steps, rq.assignments, messaging.nudges):
            if db.dialect == "postgresql":  # ids were given: the sequences move past them (SQLite's follow max)
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), :n)"), {"n": n})
    return numbers


def digests(db: Database) -> list[messaging.OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        return [messaging.OutboxMessage(**r._mapping)
                for r in conn.execute(sa.select(outbox).where(outbox.c.kind == DIGEST_KIND))]


def sent_digests(db: Database) -> int:
    with db.unit_of_work(write=False) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                .where(outbox.c.kind == DIGEST_KIND, outbox.c.state == "sent")).scalar_one())


def sent_metric(text: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "madoguchi_deliveries_total" and s.labels == {"result": "sent"})


async def test_two_replicas_deliver_each_of_1000_due_reminders_once(db: Database, tmp_path: Path) -> None:
    if db.dialect != "postgresql":
        pytest.skip("replicas share a PostgreSQL database (SQLite is one process's)")
    now = datetime.now(UTC)
    zone = midday_zone(now)
    numbers = seed(db, APPROVERS, zone, now)
    workflows = workflows_open_today(tmp_path / "workflows.yaml", zone, now)
    api = SlackApiStub()
    await api.start()
    replicas = []
    for name in ("a", "b")[:REPLICAS]:
        (tmp_path / name).mkdir()
        replica = Server(db, api.api_url, tmp_path / name)
        replica.env.update({"MADOGUCHI_WORKFLOWS": str(workflows), "MADOGUCHI_SLACK_RATE": "500",
                            "MADOGUCHI_LOG_FORMAT": "json"})
        replica.env.pop("MADOGUCHI_OUTBOX_LEASE_SECONDS")  # the default lease (the crash test's is short)
        replicas.append(replica)
    started = time.monotonic()
    try:
        for replica in replicas:
            replica.start()
        while sent_digests(db) < APPROVERS:  # (a short COUNT: the stub shares this event loop)
            for replica in replicas:
                replica.alive()
            assert time.monotonic() - started < DEADLINE, (
                f"{Counter(d.state for d in digests(db))}\n" + "\n".join(r.output() for r in replicas))
            await asyncio.sleep(0.25)
        took = time.monotonic() - started
        async with aiohttp.ClientSession() as session:
            for replica in replicas:
                async with session.get(f"http://127.0.0.1:{replica.port}/readyz") as response:
                    assert response.status == 200, await response.text()
            scraped = []
            for replica in replicas:
                async with session.get(f"http://127.0.0.1:{replica.port}/metrics") as response:
                    scraped.append(sent_metric(await response.text()))
        await asyncio.sleep(1.0)  # anything a replica would still (wrongly) send has time to show up at the stub
        for replica in replicas:
            assert replica.process is not None
            replica.process.terminate()
        for replica in replicas:
            assert replica.process is not None
            while replica.process.poll() is None:
                assert time.monotonic() - started < DEADLINE
                await asyncio.sleep(0.02)
            assert replica.process.returncode == 0, replica.output()
    finally:
        for replica in replicas:
            await replica.stop()
        await api.close()

    posts = api.called("chat.postMessage")
    per_channel = Counter(str(p["channel"]) for p in posts)
    assert len(posts) == APPROVERS and set(per_channel.values()) == {1}  # one DM each, nobody twice
    written = digests(db)
    assert len(written) == APPROVERS and {d.state for d in written} == {"sent"}
    assert sorted(d.recipient_id for d in written) == sorted(numbers)
    with db.unit_of_work(write=False) as conn:
        nudge_states = Counter(conn.execute(sa.select(messaging.nudges.c.state)
                                            .where(messaging.nudges.c.id <= APPROVERS)).scalars())
    assert nudge_states == Counter({"sent": APPROVERS})
    for digest in written:  # each digest names its approver's one request
        items = digest.payload["items"]
        assert [int(i["assignment_id"]) for i in items] == [list(numbers).index(digest.recipient_id) + 1]
    by_user = {f"U{a}": n for a, n in numbers.items()}
    for channel in per_channel:
        user = channel[1:] if channel.startswith("D") else channel
        post = next(p for p in posts if p["channel"] == channel)
        assert by_user[user] in str(post.get("text", "")) + str(post.get("blocks", ""))
    assert sum(scraped) == APPROVERS
    for log in sorted(tmp_path.glob("*/serve-*.log")):  # one JSON object a line, and nothing went wrong
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == [], log
        assert any(str(line["message"]).startswith("======== Running on") for line in lines)
    print(f"\n{APPROVERS} reminders, {REPLICAS} replicas: all delivered once in {took:.1f} s "
          f"(deliveries per replica: {[int(s) for s in scraped]})")
