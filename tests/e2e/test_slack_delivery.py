"""The outbox delivered to Slack: requests go through the real engine, approvals are really signed clicks on the
real server, and what the bot sends is what the stub Web API on loopback received (checked by slack_sdk's
models). Both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import NO_IDENTITY, SlackDelivery
from bot.server import make_app
from config.policy import Policy
from config.settings import Settings
from models import people
from models.db import Database
from models.messaging import OutboxMessage, outbox
from tests.conftest import Clock, Org
from tests.e2e.test_slack_edge import SECRET, USERS, Slack, slack_server
from tests.stubs.slack_api import TEAM, SlackApiStub
from tests.unit.test_blockkit import valid_message
from workflow.engine import Engine

SMALL_EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 1_000,
                                                  "tax_rate": "10", "category": "travel"}]}


@dataclass
class World:
    slack: Slack
    delivery: SlackDelivery
    engine: Engine
    db: Database
    org: Org
    clock: Clock

    @property
    def api(self) -> SlackApiStub:
        return self.slack.api

    async def deliver(self, **later: float) -> int:
        """One delivery round, `later` (timedelta arguments) after the clock's time."""
        return await self.delivery.run_once(self.clock.now + timedelta(**later))

    def submit(self) -> int:
        out = self.engine.submit(self.org.alice, "expense", SMALL_EXPENSE)
        assert out.ok and out.request is not None
        return out.request.id

    def known_on_slack(self, employee_id: int, user_id: str) -> None:
        with self.db.unit_of_work() as conn:
            people.remember_identity(conn, employee_id, "slack", TEAM, user_id, self.clock.now)

    def rows(self) -> list[OutboxMessage]:
        with self.db.unit_of_work(write=False) as conn:
            return [OutboxMessage(**r._mapping) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id))]


@pytest.fixture
async def world(db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[World]:
    # the server does not deliver by itself here (it was handed its database): the test runs each round
    async with slack_server(db, policy, clock) as (_, _, slack):
        client = AsyncWebClient(token="xoxb-test", base_url=slack.api.api_url)
        delivery = SlackDelivery(db, policy, client, pace=0, clock=clock)
        yield World(slack, delivery, Engine(db, policy, clock=clock), db, org, clock)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def checked(call: dict[str, Any]) -> dict[str, Any]:
    """The message part of a chat.postMessage / chat.update call, validated by slack_sdk's models."""
    valid_message({"text": call["text"], "blocks": call["blocks"]})
    return call


# ------------------------------------------------------------------------------------------------ tests


async def test_cards_go_out_and_every_copy_is_updated_after_a_signed_approve(world: World) -> None:
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    world.submit()
    assert await world.deliver() >= 2
    assert {c["users"] for c in world.api.called("conversations.open")} == {"U-alice", "U-manager"}
    posted = {c["channel"]: checked(c) for c in world.api.called("chat.postMessage")}
    card, status = posted["DU-manager"], posted["DU-alice"]
    shown = buttons(card)
    assignment = next(r.payload["assignment_id"] for r in world.rows() if r.kind == "approval_requested")
    assert len(shown) == 3 and {b["value"] for b in shown} == {str(assignment)}  # Approve / Reject / Send back
    assert "EXP-2026-0001" in status["text"]
    assert all(r.state == "sent" and r.message_ref for r in world.rows())

    approve = next(b for b in shown if b["action_id"].startswith("approve"))
    assert await world.slack.post(world.slack.click_body("U-manager", approve["action_id"], approve["value"])) \
        == (200, "")
    await world.deliver()
    updates = world.api.called("chat.update")
    card_ref = next(r.message_ref for r in world.rows() if r.kind == "approval_requested")
    manager_updates = [checked(u) for u in updates if u["channel"] == "DU-manager"]
    assert manager_updates and all(u["ts"] == card_ref["ts"] for u in manager_updates)
    assert not buttons(manager_updates[-1])
    status_ref = next(r.message_ref for r in world.rows() if r.kind == "submitted")
    alice_updates = [checked(u) for u in updates if u["channel"] == "DU-alice"]
    assert alice_updates and all(u["ts"] == status_ref["ts"] for u in alice_updates)
    assert len([c for c in world.api.called("chat.postMessage") if c["channel"] != "DU-alice"]) == 1
    assert len([c for c in world.api.called("chat.postMessage") if c["channel"] == "DU-alice"]) == 1
    # the next step's approver never used Slack: recorded, not retried
    rows = {(r.kind, r.recipient_id): (r.state, r.last_error) for r in world.rows()}
    assert rows[("step_decided", world.org.alice)] == ("sent", None)
    assert all(v == ("dead", NO_IDENTITY) for v in rows.values() if v[0] != "sent")


async def test_a_second_round_sends_nothing_again(world: World) -> None:
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    world.submit()
    first = await world.deliver()
    calls = len(world.api.calls)
    assert first >= 2
    assert await world.deliver() == 0 and await world.deliver(minutes=10) == 0
    assert len(world.api.calls) == calls


async def test_a_rate_limited_message_is_retried_after_retry_after_and_sent_once(world: World) -> None:
    world.known_on_slack(world.org.manager, "U-manager")
    world.known_on_slack(world.org.alice, "U-alice")
    world.api.fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "7"})
    world.submit()
    await world.deliver()
    waiting = [r for r in world.rows() if r.state == "pending"]
    assert len(waiting) == 1 and "ratelimited" in (waiting[0].last_error or "")
    assert waiting[0].next_attempt_at == world.clock.now + timedelta(seconds=7)
    assert await world.deliver(seconds=6) == 0  # not before Slack said
    assert await world.deliver(seconds=7) == 1
    assert {r.state for r in world.rows()} == {"sent"}
    # two calls for that row in all (the 429 and the success), plus the other row's one: nothing sent twice
    assert len(world.api.called("chat.postMessage")) == 3
    assert await world.deliver(minutes=10) == 0


async def test_a_server_error_is_retried_with_backoff_until_it_goes_through(world: World) -> None:
    world.known_on_slack(world.org.manager, "U-manager")
    world.api.fail_next("chat.postMessage", "internal_error", status=500)
    world.submit()
    await world.deliver()
    retry = next(r for r in world.rows() if r.kind == "approval_requested")
    assert retry.state == "pending" and retry.last_error == "internal_error"
    assert world.clock.now < retry.next_attempt_at <= world.clock.now + timedelta(seconds=2)
    assert await world.deliver(seconds=2) == 1
    assert next(r for r in world.rows() if r.kind == "approval_requested").state == "sent"


async def test_a_permanent_error_is_dead_with_the_error_and_not_retried(world: World) -> None:
    world.known_on_slack(world.org.manager, "U-manager")
    world.api.fail_next("conversations.open", "user_not_found")
    world.submit()
    await world.deliver()
    card = next(r for r in world.rows() if r.kind == "approval_requested")
    assert (card.state, card.last_error) == ("dead", "user_not_found")
    calls = len(world.api.calls)
    assert await world.deliver(hours=1) == 0 and len(world.api.calls) == calls


async def test_a_recipient_without_a_slack_identity_is_dead_not_reachable(world: World) -> None:
    world.known_on_slack(world.org.manager, "U-manager")  # alice never used Slack
    world.submit()
    await world.deliver()
    mine = next(r for r in world.rows() if r.kind == "submitted")
    assert (mine.state, mine.last_error) == ("dead", NO_IDENTITY)
    assert {c["users"] for c in world.api.called("conversations.open")} == {"U-manager"}


async def test_the_server_delivers_in_the_background_and_stops_cleanly(db: Database, org: Org, policy: Policy,
                                                                       clock: Clock) -> None:
    api = SlackApiStub(users=dict(USERS))
    await api.start()
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                        "SLACK_API_URL": api.api_url})
    with db.unit_of_work() as conn:
        people.remember_identity(conn, org.manager, "slack", TEAM, "U-manager", clock.now)
    server = TestServer(make_app(settings, database=db, policy=policy, clock=clock, deliver=True),
                        host="127.0.0.1")
    await server.start_server()
    try:
        assert Engine(db, policy, clock=clock).submit(org.alice, "expense", SMALL_EXPENSE).ok
        for _ in range(100):  # the loop rests 0.5 s when idle
            if api.called("chat.postMessage"):
                break
            await asyncio.sleep(0.05)
        assert [c["channel"] for c in api.called("chat.postMessage")] == ["DU-manager"]
    finally:
        await server.close()  # cancels the loop; must not hang or raise
        await api.close()
