"""Socket Mode end to end on loopback: the real aiohttp application (make_app) with its Bolt app connected by
`SocketModeConnection` to a stub Slack (tests/stubs/socket_mode.py) that hands out a ws:// URL from
apps.connections.open on SLACK_API_URL, says hello and sends real Socket Mode envelopes; every other Web API
call goes to the same stub as the HTTP tests'. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from slack_sdk.models.views import View

from bot.server import make_app
from bot.slack.app import build_slack_app
from bot.slack.socket_mode import SlackAppTokenError, SocketModeConnection, SocketModeError
from config.policy import Policy
from config.settings import Settings
from handlers.conversation import Conversation
from models.db import Database
from tests.conftest import Clock, Org
from tests.e2e.test_slack_edge import EXPENSE, LEAVE, SECRET, USERS, counts, state_values, statuses
from tests.e2e.test_slack_home import home_opened
from tests.stubs.slack_api import TEAM, SlackApiStub
from tests.stubs.socket_mode import APP_TOKEN, SocketModeStub, until
from workflow.engine import Engine


class Link:
    """What Slack sends over the socket (envelopes, each awaited until acked) and what it saw (`stub`)."""

    def __init__(self, stub: SocketModeStub) -> None:
        self.stub = stub
        self.seq = itertools.count(1)

    async def envelope(self, kind: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """Send one envelope; the app's ack frame."""
        envelope_id = f"env-{next(self.seq)}"
        await self.stub.send({"envelope_id": envelope_id, "type": kind, "payload": payload,
                              "accepts_response_payload": kind != "events_api", **extra})
        return await self.stub.ack(envelope_id)

    async def command(self, user: str, text: str) -> dict[str, Any]:
        n = next(self.seq)
        # the slash command's fields, as Slack puts them in a Socket Mode payload (strings, like the form post)
        return await self.envelope("slash_commands", {
            "token": "legacy", "team_id": TEAM, "team_domain": "acme", "channel_id": "C1",
            "channel_name": "general", "user_id": user, "user_name": user, "command": "/madoguchi", "text": text,
            "api_app_id": "A1", "is_enterprise_install": "false",
            "response_url": self.stub.api.response_url(f"cmd{n}"), "trigger_id": f"{n}.1.trigger"})

    async def click(self, user: str, action_id: str, value: str) -> dict[str, Any]:
        n = next(self.seq)
        return await self.envelope("interactive", {
            "type": "block_actions", "user": {"id": user, "username": user, "name": user, "team_id": TEAM},
            "api_app_id": "A1", "token": "legacy", "trigger_id": f"{n}.2.trigger",
            "container": {"type": "message", "message_ts": "1780000000.000100", "channel_id": "C1",
                          "is_ephemeral": True},
            "team": {"id": TEAM, "domain": "acme"}, "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": "C1", "name": "general"}, "state": {"values": {}},
            "response_url": self.stub.api.response_url(f"click{n}"),
            "actions": [{"action_id": action_id, "block_id": "b1", "type": "button", "value": value,
                         "text": {"type": "plain_text", "text": "承認"}, "action_ts": "1780000001.000200"}]})

    async def submit(self, user: str, view: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
        n = next(self.seq)
        submitted = {**view, "id": "V1", "team_id": TEAM, "app_id": "A1", "bot_id": "B1", "hash": "h",
                     "state": {"values": state_values(view, answers)}}
        return await self.envelope("interactive", {
            "type": "view_submission", "team": {"id": TEAM, "domain": "acme"},
            "user": {"id": user, "username": user, "name": user, "team_id": TEAM}, "api_app_id": "A1",
            "token": "legacy", "trigger_id": f"{n}.3.trigger", "view": submitted, "response_urls": [],
            "is_enterprise_install": False, "enterprise": None})

    async def open_form(self, user: str, text: str) -> dict[str, Any]:
        await self.command(user, text)
        view = self.stub.api.called("views.open")[-1]["view"]
        View(**view).validate_json()
        return dict(view)

    async def reply(self, count: int) -> dict[str, Any]:
        """The `count`th ephemeral reply through response_url (sent after the ack: waited for, bounded)."""
        await until(lambda: len(self.stub.api.called("response_url")) >= count, "a reply through response_url")
        return self.stub.api.called("response_url")[count - 1]


@pytest.fixture
async def stub() -> AsyncIterator[SocketModeStub]:
    slack = SocketModeStub(SlackApiStub(users=dict(USERS)))
    await slack.start()
    yield slack
    await slack.close()


@pytest.fixture
async def link(stub: SocketModeStub, db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[Link]:
    # SLACK_APP_TOKEN set: make_app connects over Socket Mode beside /slack/events
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                        "SLACK_API_URL": stub.api_url, "SLACK_APP_TOKEN": APP_TOKEN})
    app = make_app(settings, database=db, policy=policy, clock=clock)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    await stub.connected()
    yield Link(stub)
    await server.close()


def engine_app(db: Database, policy: Policy, clock: Clock, api_url: str) -> Any:
    return build_slack_app(Conversation(Engine(db, policy, clock=clock)), token="xoxb-test", signing_secret="",
                           api_url=api_url)


def ours(tasks: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """The tasks that are not the stub servers' own (aiohttp runs one per incoming connection)."""
    return {t for t in tasks if not getattr(t.get_coro(), "__qualname__", "").startswith("RequestHandler.")}


# ------------------------------------------------------------------------------------------------ tests


async def test_the_command_is_acked_and_opens_the_modal(link: Link) -> None:
    ack = await link.command("U-alice", "経費")
    assert ack == {"envelope_id": "env-2"}  # an empty ack: the envelope id alone
    opened = link.stub.api.called("views.open")
    assert len(opened) == 1 and opened[0]["trigger_id"] == "1.1.trigger"
    View(**opened[0]["view"]).validate_json()
    assert opened[0]["view"]["title"]["text"] == "経費精算"
    # one URL, asked for with the app-level token on SLACK_API_URL; the bot token is for everything else
    assert link.stub.opened == [f"Bearer {APP_TOKEN}"]


async def test_a_bad_amount_comes_back_in_the_ack_payload(link: Link, db: Database) -> None:
    view = await link.open_form("U-alice", "経費")
    before = counts(db)
    ack = await link.submit("U-alice", view, {**EXPENSE, "items[0].amount": "たくさん"})
    assert ack["payload"]["response_action"] == "errors"
    assert list(ack["payload"]["errors"]) == ["items[0].amount"]
    assert counts(db) == before


async def test_file_then_approve_by_click_decides_the_request(link: Link, db: Database) -> None:
    view = await link.open_form("U-alice", "休暇")
    assert set(await link.submit("U-alice", view, LEAVE)) == {"envelope_id"}
    assert statuses(db) == ["pending"]
    await link.command("U-manager", "承認")
    inbox = await link.reply(1)
    buttons = [e for b in inbox["blocks"] if b["type"] == "actions" for e in b["elements"]]
    approve = next(b for b in buttons if b["action_id"].startswith("approve"))
    ack = await link.click("U-manager", approve["action_id"], approve["value"])
    assert set(ack) == {"envelope_id"}
    assert statuses(db) == ["approved"]  # decided before the ack went out
    assert "承認しました" in str(await link.reply(2))


async def test_a_first_event_delivery_is_handled_and_a_retry_is_not(link: Link) -> None:
    # Slack marks a first delivery "retry_attempt": 0; it must not be mistaken for a retry
    payload = json.loads(home_opened("U-alice", 1))
    await link.envelope("events_api", payload, retry_attempt=0, retry_reason="")
    await until(lambda: len(link.stub.api.called("views.publish")) == 1, "views.publish")
    await link.envelope("events_api", payload, retry_attempt=1, retry_reason="timeout")
    await asyncio.sleep(0.1)
    assert len(link.stub.api.called("views.publish")) == 1


async def test_a_disconnect_frame_reconnects_and_is_logged_without_the_token(
        link: Link, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await link.stub.disconnect("refresh_requested")
    await link.stub.connected(2)
    assert len(link.stub.opened) == 2
    await until(lambda: "reconnected to Slack" in caplog.text, "the reconnect log")
    assert "refresh_requested" in caplog.text
    ack = await link.command("U-alice", "経費")  # the new connection carries the envelopes
    assert ack["envelope_id"].startswith("env-") and link.stub.api.called("views.open")
    assert APP_TOKEN not in caplog.text and "stubtoken" not in caplog.text


async def test_a_refused_app_token_is_a_clear_error_and_nothing_retries(
        stub: SocketModeStub, db: Database, policy: Policy, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    before = asyncio.all_tasks()
    connection = SocketModeConnection(engine_app(db, policy, clock, stub.api_url), "xapp-1-A1-revoked",
                                      stub.api_url)
    with pytest.raises(SlackAppTokenError) as refused:
        await connection.start()
    assert "SLACK_APP_TOKEN" in str(refused.value) and "invalid_auth" in str(refused.value)
    assert "revoked" not in str(refused.value) and "revoked" not in caplog.text
    await asyncio.sleep(0.2)
    assert len(stub.opened) == 1 and not stub.sockets
    assert ours(asyncio.all_tasks() - before) == set()
    await connection.close()  # harmless after a failed start


async def test_a_bot_token_in_place_of_the_app_token_is_refused_before_asking_slack(
        stub: SocketModeStub, db: Database, policy: Policy, clock: Clock) -> None:
    connection = SocketModeConnection(engine_app(db, policy, clock, stub.api_url), "xoxb-123-456", stub.api_url)
    with pytest.raises(SlackAppTokenError, match="SLACK_APP_TOKEN.*starts with xoxb-"):
        await connection.start()
    assert not stub.opened


async def test_close_leaves_no_task_running(stub: SocketModeStub, db: Database, org: Org, policy: Policy,
                                            clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    before = asyncio.all_tasks()
    connection = SocketModeConnection(engine_app(db, policy, clock, stub.api_url), APP_TOKEN, stub.api_url)
    await connection.start()
    await stub.connected()
    await Link(stub).command("U-alice", "経費")
    assert connection.connections == 1
    await connection.close()
    assert stub.sockets[0].closed  # closed with the handshake, not dropped
    assert ours(asyncio.all_tasks() - before) == set()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_websocket_that_never_opens_fails_the_start_in_bounded_time(
        stub: SocketModeStub, db: Database, policy: Policy, clock: Clock) -> None:
    stub.refuse_links = True
    before = asyncio.all_tasks()
    connection = SocketModeConnection(engine_app(db, policy, clock, stub.api_url), APP_TOKEN, stub.api_url,
                                      ping_interval=0.05, connect_timeout=0.5)
    with pytest.raises(SocketModeError, match="did not open within 0.5 s"):
        await connection.start()
    assert ours(asyncio.all_tasks() - before) == set()
