"""People first (bot/people_first.py) on the real server and the real delivery loop, with the stub Web API on
loopback: while a person's Slack request is under way, the delivery loop claims and sends nothing; once it is
answered (and `hold` has passed) the cards go out; probes do not count as people; and nothing waits longer than
`max_wait`. Also the other thing a click's answer must not wait for: a full garbage collection of the startup heap
(`settle_heap_at_start`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import SlackDelivery
from bot.people_first import PeopleFirst
from bot.server import PEOPLE_FIRST, make_app
from config.policy import Policy
from config.settings import Settings
from models import people
from models.db import Database
from tests.conftest import Clock, Org
from tests.e2e.test_slack_delivery import SMALL_EXPENSE
from tests.e2e.test_slack_edge import USERS, Slack, slack_server
from tests.stubs.slack_api import TEAM, SlackApiStub
from workflow.engine import Engine

QUIET = 0.2  # seconds a test watches for something that must not happen meanwhile


@dataclass
class World:
    slack: Slack
    gate: PeopleFirst
    server: TestServer
    session: aiohttp.ClientSession


@pytest.fixture
async def world(db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[World]:
    async with slack_server(db, policy, clock) as (app, server, slack):
        yield World(slack, app[PEOPLE_FIRST], server, slack.session)


async def until(condition: object, what: str) -> None:
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_a_slack_request_under_way_closes_the_gate_and_its_answer_opens_it(world: World) -> None:
    assert world.gate.open
    held = world.slack.api.hold("views.open")  # the form opens inline, before the answer: the request stays
    command = asyncio.ensure_future(world.slack.command("U-alice", "leave"))
    await until(lambda: not world.gate.open, "the command closed the gate")
    assert world.gate.waiting == 1
    async with world.session.get(world.server.make_url("/healthz")) as probe:  # a probe is not a person
        assert probe.status == 200
    assert world.gate.waiting == 1 and not world.gate.open
    held.set()
    assert (await command)[0] == 200
    await until(lambda: world.gate.open, "the gate opened after the answer")
    assert world.gate.waiting == 0
    assert world.slack.api.called("views.open")


async def test_delivery_waits_while_a_person_waits_and_sends_once_they_are_answered(
        db: Database, org: Org, policy: Policy, clock: Clock) -> None:
    api = SlackApiStub(users=dict(USERS))
    await api.start()
    try:
        with db.unit_of_work() as conn:
            for who, user in ((org.alice, "U-alice"), (org.manager, "U-manager")):
                people.remember_identity(conn, who, "slack", TEAM, user, clock.now)
        assert Engine(db, policy, clock=clock).submit(org.alice, "expense", SMALL_EXPENSE).ok
        gate = PeopleFirst(max_wait=60.0)
        delivery = SlackDelivery(db, policy, AsyncWebClient(token="xoxb-test", base_url=api.api_url), pace=0,
                                 clock=clock, people_first=gate)
        with gate.serving():  # as the middleware does around a person's request
            round_ = asyncio.ensure_future(delivery.run_once(clock.now))
            await asyncio.sleep(QUIET)
            assert not round_.done()
            assert not api.called("chat.postMessage") and not api.called("conversations.open")
        assert await round_ == 2  # the requester's status message and the manager's card
        assert {c["channel"] for c in api.called("chat.postMessage")} == {"DU-alice", "DU-manager"}
    finally:
        await api.close()


async def test_background_work_waits_at_most_max_wait() -> None:
    gate = PeopleFirst(hold=0.0, max_wait=0.05)
    with gate.serving():
        loop = asyncio.get_running_loop()
        started = loop.time()
        await gate.turn()  # still serving: goes on once the gate has been closed for max_wait
        assert loop.time() - started >= 0.04
        await gate.turn()  # overdue: at once from now on, until the gate opens again
    await until(lambda: gate.open, "the gate opened")


async def test_a_request_within_hold_of_the_last_answer_keeps_the_gate_closed() -> None:
    gate = PeopleFirst(hold=0.05, max_wait=60.0)
    with gate.serving():
        pass
    assert not gate.open  # answered, but another request may follow within `hold`
    with gate.serving():  # it does: the timer that would have opened the gate is cancelled
        await asyncio.sleep(0.08)
        assert not gate.open
    turn = asyncio.ensure_future(gate.turn())
    await asyncio.sleep(0)
    assert not turn.done()
    await asyncio.wait_for(turn, 5)  # opens `hold` after the last answer
    assert gate.open


async def test_a_serving_process_freezes_what_it_made_at_start(db: Database, policy: Policy, clock: Clock) -> None:
    """settle_heap_at_start (`madoguchi serve` and `demo`): once started, the startup heap is out of the
    collector's passes; the server still answers."""
    import gc

    from bot.server import settle_heap_at_start

    app = make_app(Settings.model_validate({}), database=db, policy=policy, clock=clock)
    settle_heap_at_start(app)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        assert gc.get_freeze_count() > 1000  # modules, settings, the policy, the application
        async with aiohttp.ClientSession() as session, session.get(server.make_url("/healthz")) as answer:
            assert answer.status == 200
    finally:
        await server.close()
        gc.unfreeze()  # this test process starts many more applications
