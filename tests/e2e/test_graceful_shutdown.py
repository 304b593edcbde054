"""SIGTERM in the middle of a broadcast (issue 10), on SQLite and PostgreSQL: a real `madoguchi serve` delivers an HR
broadcast to 200 people through a slow stub Slack Web API (every chat.postMessage answered after a pause); once a
third of them have their DM, the stub posts the next one and SIGTERMs the process before answering it.

Asserted:
- the process exits 0 within 10 s;
- it left nothing claimed: no row in `sending`, the rows it had claimed and not sent are `pending`, due at once, their
  attempt not counted, and its log says how many it released (at least one: it had claimed ahead);
- the calls under way at SIGTERM (the one the stub was answering among them) were answered and recorded as sent;
- a second `madoguchi serve` finishes the broadcast: every recipient has the message, at most one duplicate in all;
- both processes' JSON logs (MADOGUCHI_LOG_FORMAT=json, DEBUG) are one JSON object a line, with no token, signing
  secret or database password, and no word of the broadcast.

And SIGTERM in the middle of a long tick (1,500 due reminders, three transactions of 500): the tick stops after the
transaction under way, the process exits 0 within 10 s, the reminders it did not reach are still pending, and the
next process's tick writes them: every approver gets exactly one digest."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

from config.policy import load_policy
from config.settings import DEFAULT_WORKFLOWS
from models import messaging
from models.db import Database
from models.messaging import outbox
from tests.e2e.test_delivery_crash import Server, dms, seed, states
from tests.e2e.test_two_replicas import midday_zone, workflows_open_today
from tests.e2e.test_two_replicas import seed as seed_reminders
from tests.stubs.slack_api import SlackApiStub
from workflow import broadcasts as bc
from workflow.audiences import Audience
from workflow.nudges import DIGEST_KIND

RECIPIENTS = 120  # plus the HR author
TERM_AT = 1 / 3  # SIGTERM once this share of the recipients has a DM
SLOW = 0.15  # seconds the stub takes to answer a chat.postMessage
RATE = 40  # MADOGUCHI_SLACK_RATE: many calls under way at once, so the shutdown has some to wait for
EXIT_WITHIN = 10.0
DEADLINE = 120.0
MESSAGE_JA = "年末調整の書類を今週中に提出してください。"
MESSAGE_EN = "Please hand in your year-end adjustment forms this week."


def json_lines(text: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    return lines


async def test_sigterm_mid_broadcast_exits_0_releases_its_claims_and_a_second_process_finishes(
        db: Database, tmp_path: Path) -> None:
    author = seed(db, RECIPIENTS)
    created = bc.create(db, load_policy(DEFAULT_WORKFLOWS),
                        bc.Draft(author, Audience("everyone"), MESSAGE_JA, MESSAGE_EN, True), datetime.now(UTC))
    assert created.ok, created.message
    with db.unit_of_work(write=False) as conn:
        rows = list(conn.execute(sa.select(outbox.c.id, outbox.c.recipient_id).order_by(outbox.c.id)))
    ids, users = [r.id for r in rows], [f"U{r.recipient_id}" for r in rows]

    api = SlackApiStub()
    await api.start()
    server = Server(db, api.api_url, tmp_path)
    server.env.update({"MADOGUCHI_LOG_FORMAT": "json", "MADOGUCHI_LOG_LEVEL": "DEBUG",
                       "MADOGUCHI_SLACK_RATE": str(RATE)})
    term_when = [int(len(users) * TERM_AT)]
    termed_at: list[float] = []
    answer = api.emulator.handle_api

    async def slow_then_terminating(request: web.Request) -> web.Response:
        posting = request.match_info.get("method") == "chat.postMessage"
        response = await answer(request)
        if posting:
            if term_when and sum(1 for n in dms(api, users).values() if n) >= term_when[0]:
                term_when.clear()
                assert server.process is not None
                server.process.send_signal(signal.SIGTERM)  # this post is answered only after the signal
                termed_at.append(time.monotonic())
            await asyncio.sleep(SLOW)
        return response

    api.emulator.handle_api = slow_then_terminating  # type: ignore[method-assign]
    started = time.monotonic()
    try:
        server.start()
        process = server.process
        assert process is not None
        while not termed_at:
            server.alive()
            assert time.monotonic() - started < DEADLINE, f"the broadcast never got a third through\n{server.output()}"
            await asyncio.sleep(0.01)
        while process.poll() is None:  # the stub keeps answering meanwhile: the calls under way can finish
            assert time.monotonic() - termed_at[0] < EXIT_WITHIN, f"still running 10 s after SIGTERM\n{server.output()}"
            await asyncio.sleep(0.01)
        assert process.returncode == 0, server.output()
        exited_after = time.monotonic() - termed_at[0]
        server._close()

        at_exit = dms(api, users)
        with db.unit_of_work(write=False) as conn:
            left = list(conn.execute(sa.select(outbox.c.state, outbox.c.attempts, outbox.c.next_attempt_at,
                                               outbox.c.recipient_id).where(outbox.c.id.in_(ids))))
        assert {r.state for r in left} <= {"sent", "pending"}, Counter(r.state for r in left)
        waiting = [r for r in left if r.state == "pending"]
        assert waiting, "the broadcast was over before SIGTERM: nothing was tested"
        assert all(r.attempts == 0 and r.next_attempt_at <= datetime.now(UTC) for r in waiting)
        sent = {f"U{r.recipient_id}" for r in left if r.state == "sent"}
        posted = {u for u, n in at_exit.items() if n}
        assert posted == sent  # every call made before the exit was answered and recorded; none made unrecorded
        first_log = json_lines((tmp_path / "serve-1.log").read_text())
        released = [line for line in first_log if str(line["message"]).startswith("shutdown: released")]
        assert len(released) == 1 and int(str(released[0]["message"]).split()[2]) >= 1

        server.start()  # a second process finishes the broadcast
        while states(db, ids) != Counter({"sent": len(users)}):
            server.alive()
            assert time.monotonic() - started < DEADLINE, f"not finished: {dict(states(db, ids))}\n{server.output()}"
            await asyncio.sleep(0.02)
    finally:
        await server.stop()
        await api.close()

    final = dms(api, users)
    assert [u for u in users if final[u] == 0] == []
    assert sum(n - 1 for n in final.values()) <= 1

    secrets = ["xoxb-crash", "crash-secret"]
    password = db.engine.url.password
    if password:
        secrets.append(str(password))
    for log in sorted(tmp_path.glob("serve-*.log")):
        text = log.read_text()
        lines = json_lines(text)  # every line is JSON
        assert all("request_id" in line and "level" in line for line in lines)
        assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == [], log.name
        assert [s for s in secrets + [MESSAGE_JA, MESSAGE_EN, "年末調整"] if s in text] == [], log.name
    print(f"\n{len(users)} recipients; exit 0 {exited_after:.2f} s after SIGTERM; {len(sent)} sent, {len(waiting)} left pending "
          f"({released[0]['message']}); duplicates {sum(n - 1 for n in final.values())} ({db.dialect})")


REMINDERS = 1500  # three of the tick's transactions (workflow.nudges.BATCH = 500)


def reminder_states(db: Database) -> Counter[str]:
    with db.unit_of_work(write=False) as conn:
        return Counter({r[0]: r[1] for r in conn.execute(
            sa.select(messaging.nudges.c.state, sa.func.count()).where(messaging.nudges.c.id <= REMINDERS)
            .group_by(messaging.nudges.c.state))})


async def test_sigterm_mid_tick_stops_after_the_transaction_under_way_and_the_next_tick_sends_the_rest(
        db: Database, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    zone = midday_zone(now)
    approvers = seed_reminders(db, REMINDERS, zone, now)
    server = Server(db, "http://127.0.0.1:9/api/", tmp_path)
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):  # no Slack: the digests are written, not sent
        server.env.pop(name)
    server.env.update({"MADOGUCHI_WORKFLOWS": str(workflows_open_today(tmp_path / "workflows.yaml", zone, now)),
                       "MADOGUCHI_LOG_FORMAT": "json"})
    started = time.monotonic()
    try:
        server.start()
        process = server.process
        assert process is not None
        while reminder_states(db)["sent"] == 0:  # the tick's first transaction has committed
            server.alive()
            assert time.monotonic() - started < DEADLINE, server.output()
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        while process.poll() is None:
            assert time.monotonic() - termed < EXIT_WITHIN, f"still running 10 s after SIGTERM\n{server.output()}"
            await asyncio.sleep(0.02)
        assert process.returncode == 0, server.output()
        exited_after = time.monotonic() - termed
        server._close()
        at_exit = reminder_states(db)
        assert set(at_exit) == {"sent", "pending"}, at_exit  # stopped between transactions: nothing half done
        assert at_exit["pending"] >= 1, "the tick was over before SIGTERM: nothing was tested"

        server.start()  # the next process's tick sends the rest
        while reminder_states(db) != Counter({"sent": REMINDERS}):
            server.alive()
            assert time.monotonic() - started < DEADLINE, f"{reminder_states(db)}\n{server.output()}"
            await asyncio.sleep(0.05)
    finally:
        await server.stop()
    with db.unit_of_work(write=False) as conn:
        written = Counter(conn.execute(sa.select(outbox.c.recipient_id).where(outbox.c.kind == DIGEST_KIND))
                          .scalars())
    assert written == Counter(dict.fromkeys(approvers, 1))  # every approver one digest: none twice, none lost
    print(f"\n{REMINDERS} reminders: SIGTERM after the first transaction, exit 0 {exited_after:.2f} s later, "
          f"{at_exit['sent']} sent and {at_exit['pending']} left pending; the next process sent the rest "
          f"({db.dialect})")
