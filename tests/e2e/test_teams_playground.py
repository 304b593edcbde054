"""madoguchi's real server through Microsoft's Agents Playground (npm @microsoft/m365agentsplayground), a real Teams
client that we did not write: each person has a Playground of their own (it sends every message as its current
user), pointed at the server's /api/messages, with the company's people as its tenant's users. The server runs
its own delivery loop, so approver cards and updates reach people proactively through each Playground's
connector. Both backends.

Skipped when node or the npm package is missing, unless MADOGUCHI_REQUIRE_TEAMS_PLAYGROUND=1 (CI): then failed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from bot.playground import demo
from bot.playground.demo import PLAYGROUND_USERS
from bot.playground.workspace import Workspace
from bot.server import make_app
from config.policy import Policy
from config.settings import Settings
from models import people
from models.db import Database
from models.requests import requests
from tests.conftest import Clock, Org
from tests.e2e.test_teams_edge import executes
from tests.stubs.agents_playground import (
    BOT_ID,
    DEFAULT_USERS,
    TENANT_ID,
    AgentsPlayground,
    PlaygroundUser,
    Reply,
    missing,
)
from tests.unit.test_adaptive_cards import validate
from workflow import broadcasts as bc
from workflow.audiences import Audience

REQUIRE = os.environ.get("MADOGUCHI_REQUIRE_TEAMS_PLAYGROUND") == "1"


def _person(key: str, name: str, email: str) -> PlaygroundUser:
    given, surname = name.split(" ")
    return PlaygroundUser(id=f"29:{key}", name=name, email=email, aad_object_id=f"aad-{key}",
                          user_principal_name=email, given_name=given, surname=surname)


# the test company's people (tests.conftest.make_org) as the Playground tenant's six users
PEOPLE = (
    _person("alice", "Alice Ito", "alice@example.jp"),
    _person("manager", "Kenji Sato", "mgr@example.jp"),
    _person("bob", "Bob Kato", "bob@example.jp"),
    _person("head", "Hanako Sato", "head@example.jp"),
    _person("fin1", "Fumi Kimura", "fin1@example.jp"),
    _person("it1", "Rin Okada", "it1@example.jp"),
)
LEAVE = {"unit": "full", "period.start": "2026-06-08", "period.end": "2026-06-08"}


@pytest.fixture(autouse=True)
def playground_available() -> None:
    reason = missing()
    if reason:
        if REQUIRE:
            pytest.fail(f"MADOGUCHI_REQUIRE_TEAMS_PLAYGROUND=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture
async def server(db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[str]:
    """The real server (anonymous Teams, as for local use) with its delivery loop; its /api/messages URL."""
    app = make_app(Settings.model_validate({}), database=db, policy=policy, clock=clock, deliver=True, tick=False)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield str(test_server.make_url("/api/messages"))
    await test_server.close()


def bot_card(predicate: Callable[[dict[str, Any]], bool], *, update: bool | None = None) -> Callable[[Reply], bool]:
    def matches(r: Reply) -> bool:
        if r.from_id != BOT_ID and not r.is_update:
            return False
        if update is not None and r.is_update != update:
            return False
        return any(predicate(c) for c in r.cards)
    return matches


def shows(*words: str) -> Callable[[dict[str, Any]], bool]:
    return lambda card: all(w in json.dumps(card, ensure_ascii=False) for w in words)


def execute(card: dict[str, Any], verb: str) -> dict[str, Any]:
    """The card's Action.Execute with this verb (its title is what the person presses)."""
    found = execute_or_none(card, verb)
    assert found is not None, f"no {verb} button on {json.dumps(card, ensure_ascii=False)[:500]}"
    return found


def execute_or_none(card: dict[str, Any], verb: str) -> dict[str, Any] | None:
    return next((a for a in executes(card) if a.get("verb") == verb), None)


def statuses(db: Database) -> list[tuple[str, str]]:
    with db.unit_of_work(write=False) as conn:
        return [tuple(r) for r in conn.execute(sa.select(requests.c.number, requests.c.status))]


async def test_leave_filed_in_teams_is_approved_by_the_manager_in_his_own_teams(server: str, db: Database) -> None:
    async with (AgentsPlayground(server, users=PEOPLE, current_user="29:alice") as alice,
                AgentsPlayground(server, users=PEOPLE, current_user="29:manager") as manager):
        await manager.install()  # the manager has the app: the bot greets him and can reach him from now on
        await manager.wait_for(bot_card(shows("help")), what="the manager's welcome")
        await alice.send_text("leave")
        form_reply = await alice.wait_for(bot_card(lambda c: "period.start" in json.dumps(c)), what="the leave form")
        form = form_reply.cards[0]
        submit = execute(form, "submit_request")
        # left empty, the form comes back with the errors under its inputs; nothing is stored
        answer = await alice.click(form_reply, title=submit["title"])
        assert "attention" in json.dumps(answer) and statuses(db) == []
        await alice.click(form_reply, title=submit["title"], inputs=LEAVE)
        assert statuses(db) == [("LV-2026-0001", "pending")]
        # the approver's card arrives proactively in the manager's Teams, and he approves from it
        card_reply = await manager.wait_for(bot_card(shows("LV-2026-0001")), what="the approver's card")
        approve = execute(card_reply.cards[0], "approve")
        answer = await manager.click(card_reply, title=approve["title"])
        assert "LV-2026-0001" in json.dumps(answer, ensure_ascii=False)
        assert statuses(db) == [("LV-2026-0001", "approved")]
        # every copy is updated: his card loses its buttons, Alice's status card shows the outcome
        updated = await manager.wait_for(
            lambda r: r.is_update and r.message_id == card_reply.message_id
            and not any(execute_or_none(c, "approve") for c in r.cards), what="the approver's card updated")
        status = await alice.wait_for(bot_card(shows("LV-2026-0001", "Approved"), update=True),
                                      what="Alice's status card updated", timeout=15)
        # a second click on the old card changes nothing and says who decided
        again = await manager.click(card_reply, title=approve["title"])
        assert "already" in json.dumps(again, ensure_ascii=False).lower()
        assert statuses(db) == [("LV-2026-0001", "approved")]
        await asyncio.gather(alice.settle(), manager.settle())
        assert alice.outbound == [] and manager.outbound == []  # nothing left this machine
    verdicts = validate([form, card_reply.cards[0], *updated.cards, *status.cards])
    assert [v["events"] for v in verdicts if not v["ok"]] == []



async def test_the_demo_company_knows_the_playgrounds_own_test_users(db: Database, policy: Policy,
                                                                     clock: Clock) -> None:
    """`madoguchi demo` maps the Playground's built-in users to demo employees (bot/playground/demo.py): its
    default person, Alex Wilber, is 高橋 由紀 of sales, with a leave request waiting on her manager (Megan Bowen,
    who is 佐藤 健二 and finds it in his inbox with its buttons)."""
    demo.seed(db, policy, Workspace(team_id="T-demo"), now=clock())
    app = make_app(Settings.model_validate({}), database=db, policy=policy, clock=clock, deliver=True, tick=False)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    url = str(test_server.make_url("/api/messages"))
    try:
        async with (AgentsPlayground(url) as alex,
                    AgentsPlayground(url, current_user=DEFAULT_USERS[1].id) as megan):
            await alex.send_text("status")
            mine = await alex.wait_for(bot_card(shows("LV-2026-")), what="高橋 由紀's requests")
            assert "not registered" not in json.dumps(mine.cards, ensure_ascii=False).lower()
            await megan.send_text("inbox")
            inbox = await megan.wait_for(bot_card(lambda c: execute_or_none(c, "approve") is not None),
                                         what="佐藤 健二's inbox with Approve")
            assert inbox.cards
            await asyncio.gather(alex.settle(), megan.settle())
    finally:
        await test_server.close()
    with db.unit_of_work(write=False) as conn:
        known = {str(r.user_id) for r in conn.execute(
            sa.select(people.chat_identities.c.user_id, people.chat_identities.c.address)
            .where(people.chat_identities.c.platform == "teams")) if r.address}
    assert {DEFAULT_USERS[0].aad_object_id, DEFAULT_USERS[1].aad_object_id} <= known
    assert [u for u, _aad, _code in PLAYGROUND_USERS] == [u.name for u in DEFAULT_USERS]
    assert [aad for _u, aad, _code in PLAYGROUND_USERS] == [u.aad_object_id for u in DEFAULT_USERS]
    assert demo.PLAYGROUND_TENANT == TENANT_ID


EXPENSE = {"purpose": "大阪出張", "items[0].date": "2026-06-01", "items[0].payee": "JR東海",
           "items[0].amount": "14170", "items[0].tax_rate": "10", "items[0].category": "travel"}


async def test_an_expense_rejected_with_a_reason_and_a_broadcast_acknowledged_in_teams(
        server: str, db: Database, org: Org, policy: Policy, clock: Clock) -> None:
    async with (AgentsPlayground(server, users=PEOPLE, current_user="29:alice") as alice,
                AgentsPlayground(server, users=PEOPLE, current_user="29:manager") as manager):
        await manager.install()
        await manager.wait_for(bot_card(shows("help")), what="the manager's welcome")
        await alice.send_text("expense")
        form_reply = await alice.wait_for(bot_card(lambda c: "items[0].payee" in json.dumps(c)), what="the form")
        await alice.click(form_reply, title=execute(form_reply.cards[0], "submit_request")["title"], inputs=EXPENSE)
        assert statuses(db) == [("EXP-2026-0001", "pending")]
        card_reply = await manager.wait_for(bot_card(shows("EXP-2026-0001")), what="the approver's card")
        # Reject asks for a reason: the form arrives below; its submit rejects and replaces it with the outcome
        await manager.click(card_reply, title=execute(card_reply.cards[0], "reject")["title"])
        reason = await manager.wait_for(bot_card(lambda c: "comment" in json.dumps(c), update=False),
                                        what="the reason form")
        answer = await manager.click(reason, title=execute(reason.cards[0], "decide_with_reason")["title"],
                                     inputs={"comment": "領収書が足りません"})
        assert "EXP-2026-0001" in json.dumps(answer, ensure_ascii=False)
        assert statuses(db) == [("EXP-2026-0001", "rejected")]
        status = await alice.wait_for(bot_card(shows("EXP-2026-0001", "領収書が足りません"), update=True),
                                      what="Alice's status card with the reason", timeout=15)
        # HR's broadcast reaches both in Teams; each acknowledges there, twice, and it counts once each
        result = bc.create(db, policy, bc.Draft(org.hr, Audience("people", ("alice@example.jp", "mgr@example.jp")),
                                                "年末調整の書類を提出してください", "Please hand in your year-end tax forms",
                                                True), clock.now)
        assert result.ok and result.broadcast_id is not None
        for person in (alice, manager):
            notice = await person.wait_for(bot_card(shows("year-end")), what="the broadcast", timeout=15)
            ack = executes(notice.cards[0])[0]
            for _ in range(2):
                await person.click(notice, title=ack["title"])
        with db.unit_of_work(write=False) as conn:
            report = bc.report(conn, result.broadcast_id)
        assert report is not None and (report.delivered, report.acknowledged, report.outstanding) == (2, 2, 0)
        await asyncio.gather(alice.settle(), manager.settle())
        assert alice.outbound == [] and manager.outbound == []
    verdicts = validate([form_reply.cards[0], card_reply.cards[0], reason.cards[0], *status.cards])
    assert [v["events"] for v in verdicts if not v["ok"]] == []
