"""The Agents Playground harness (tests/stubs/agents_playground.py) proven against a minimal botbuilder bot.

The bot is written here, not ours: an aiohttp app on 127.0.0.1 with botbuilder's CloudAdapter in anonymous
mode (no app id or password), an ActivityHandler that echoes text, answers "card" with an Adaptive Card 1.5
with an Action.Execute button, takes the `adaptiveCard/action` invoke from `on_invoke_activity` (CloudAdapter
answers 500 through `on_adaptive_card_invoke`), updates the earlier card with `update_activity` and sends a
proactive message through `continue_conversation` with the conversation reference it stored. Microsoft's
Playground is the Teams client in between; everything is checked on what the bot received and what came back
on the Playground's websocket, never on the Playground's own HTTP statuses.

Skipped when node or the npm package is missing, unless MADOGUCHI_REQUIRE_TEAMS_PLAYGROUND=1 (CI): then failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botbuilder.core import (
    ActivityHandler,
    CardFactory,
    InvokeResponse,
    MessageFactory,
    TurnContext,
)
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    AdaptiveCardInvokeResponse,
    AdaptiveCardInvokeValue,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
)

from tests.stubs.agents_playground import (
    ADAPTIVE_CARD,
    BOT_ID,
    DEFAULT_USERS,
    LOOPBACK_GUARD,
    TENANT_ID,
    AgentsPlayground,
    PlaygroundError,
    PlaygroundUser,
    Reply,
    missing,
)

REQUIRE = os.environ.get("MADOGUCHI_REQUIRE_TEAMS_PLAYGROUND") == "1"


@pytest.fixture(autouse=True)
def playground_available() -> None:
    reason = missing()
    if reason:
        if REQUIRE:
            pytest.fail(f"MADOGUCHI_REQUIRE_TEAMS_PLAYGROUND=1 but {reason}")
        pytest.skip(reason)


def card(text: str, verb: str = "approve") -> dict[str, Any]:
    return {"type": "AdaptiveCard", "version": "1.5",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "body": [{"type": "TextBlock", "text": text, "wrap": True},
                     {"type": "Input.Text", "id": "comment", "label": "Comment"}],
            "actions": [{"type": "Action.Execute", "title": "Approve", "verb": verb, "data": {"request": "EXP-1"}}]}


class AnonymousConfig:
    """ConfigurationBotFrameworkAuthentication's settings: no app id or password (the Playground's default)."""

    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


@dataclass
class MinimalBot(ActivityHandler):
    """Echo, a card, the card's Action.Execute, an update and a proactive message; it records what it got."""

    received: list[Activity] = field(default_factory=list)
    references: dict[str, ConversationReference] = field(default_factory=dict)
    card_ids: list[str] = field(default_factory=list)

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        self.received.append(activity)
        self.references[activity.conversation.id] = TurnContext.get_conversation_reference(activity)
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        text = (activity.text or "").replace(f"<at>{activity.recipient.name}</at>", "").strip()
        if text == "card":
            sent = await turn_context.send_activity(
                MessageFactory.attachment(CardFactory.adaptive_card(card("EXP-1 waits for you"))))
            self.card_ids.append(sent.id)
        else:
            await turn_context.send_activity(f"echo: {text}")

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        action = activity.value["action"]
        done = card(f"{action['verb']} by {activity.from_property.id}: {json.dumps(action['data'], sort_keys=True)}",
                    verb="again")
        update = MessageFactory.attachment(CardFactory.adaptive_card(done))
        update.id = activity.reply_to_id
        await turn_context.update_activity(update)
        return InvokeResponse(status=200, body=AdaptiveCardInvokeResponse(
            status_code=200, type=ADAPTIVE_CARD, value=done))


@dataclass
class BotServer:
    bot: MinimalBot
    adapter: CloudAdapter
    server: TestServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/api/messages"

    async def notify(self, conversation_id: str, text: str) -> None:
        """A proactive message to a conversation the bot has heard from, from its stored reference."""
        async def send(turn_context: TurnContext) -> None:
            await turn_context.send_activity(text)

        await self.adapter.continue_conversation(self.bot.references[conversation_id], send, "")


@contextlib.asynccontextmanager
async def serve(handler: MinimalBot) -> AsyncIterator[BotServer]:
    """The bot on 127.0.0.1: botbuilder's CloudAdapter behind an aiohttp route, anonymous."""
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(AnonymousConfig()))
    errors: list[BaseException] = []

    async def on_error(context: TurnContext, error: Exception) -> None:
        errors.append(error)  # raised again below: a bot failure must fail the test, not vanish into a 500

    adapter.on_turn_error = on_error

    async def messages(request: web.Request) -> web.Response:
        response: web.Response = await adapter.process(request, handler)
        return response

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield BotServer(handler, adapter, server)
    finally:
        await server.close()
    if errors:
        raise errors[0]


@pytest.fixture
async def bot() -> AsyncIterator[BotServer]:
    async with serve(MinimalBot()) as server:
        yield server


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (bounded) for something on the bot's side: the Playground shows a reply before the bot's
    send_activity has its answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def bot_text(text: str) -> Callable[[Reply], bool]:
    return lambda r: r.action == "createMessage" and r.from_id == BOT_ID and r.text == text


async def test_text_card_click_update_and_proactive(bot: BotServer) -> None:
    async with AgentsPlayground(bot.url, conversation_id="conv-harness") as playground:
        me = playground.me
        # text in -> echo out, with the activity a Teams bot expects
        await playground.send_text("hello")
        echo = await playground.wait_for(bot_text("echo: hello"), what="the echo")
        assert echo.conversation_id == "conv-harness"
        first = bot.bot.received[0]
        assert (first.channel_id, first.text, first.from_property.id, first.from_property.aad_object_id) == (
            "msteams", "hello", me.id, me.aad_object_id)
        assert first.service_url == playground.service_url
        assert first.conversation.conversation_type == "personal"
        assert first.channel_data["tenant"]["id"] == TENANT_ID

        # card out -> click -> the invoke reaches the bot with verb and data -> the updated card on the stream
        await playground.send_text("card")
        shown: Reply = await playground.wait_for(lambda r: bool(r.cards) and not r.is_update, what="the card")
        await until(lambda: bool(bot.bot.card_ids), "the bot to learn the card's activity id")
        assert shown.message_id == bot.bot.card_ids[0]  # the frame's message id is the bot's activity id
        assert shown.cards[0]["actions"][0]["verb"] == "approve"
        answer = await playground.click(shown, title="Approve", inputs={"comment": "ok"})
        invoke = next(a for a in bot.bot.received if a.type == "invoke")
        assert invoke.name == "adaptiveCard/action"
        assert invoke.value["action"]["verb"] == "approve"
        assert invoke.value["action"]["data"] == {"request": "EXP-1", "comment": "ok"}
        assert invoke.reply_to_id == shown.message_id
        assert invoke.from_property.id == me.id
        updated = await playground.wait_for(lambda r: r.is_update and r.message_id == shown.message_id,
                                            what="the updated card")
        expected = f'approve by {me.id}: {{"comment": "ok", "request": "EXP-1"}}'
        assert updated.cards[0]["body"][0]["text"] == expected
        assert answer["value"]["body"][0]["text"] == expected  # the card the Playground shows in place
        exchange = await playground.wait_for_exchange(lambda e: e.to_bot and e.activity_name == "invoke")
        assert exchange.status == 200  # the bot's own answer to the invoke (CloudAdapter's 500 bug would show)

        # a proactive message through continue_conversation with the stored reference
        await bot.notify("conv-harness", "reminder: EXP-1 is due")
        await playground.wait_for(bot_text("reminder: EXP-1 is due"), what="the proactive message")

        assert playground.outbound == []  # the Playground tried nothing off loopback
        assert playground.started_in is not None
        print(f"Agents Playground ready in {playground.started_in:.2f} s")



async def test_group_chat_mentions_the_bot_and_another_member_clicks(bot: BotServer) -> None:
    async with AgentsPlayground(bot.url) as playground:
        group = playground.group_chat_id
        await playground.send_text("card", conversation_id=group)
        shown = await playground.wait_for(lambda r: bool(r.cards) and r.conversation_id == group, what="the card")
        message = next(a for a in bot.bot.received if a.type == "message")
        assert message.conversation.conversation_type == "groupChat"
        assert [e.additional_properties.get("mentioned", {}).get("id") for e in message.entities
                if e.type == "mention"] == [BOT_ID]
        megan = DEFAULT_USERS[1]
        await playground.click(shown, title="Approve", user=megan.id)
        invoke = next(a for a in bot.bot.received if a.type == "invoke")
        assert (invoke.from_property.id, invoke.from_property.aad_object_id) == (megan.id, megan.aad_object_id)
        await playground.wait_for(lambda r: r.is_update and f"by {megan.id}" in r.cards[0]["body"][0]["text"],
                                  what="the card updated for Megan's click")


async def test_a_configured_roster_and_current_user(bot: BotServer) -> None:
    """The demo company's people in the Playground's tenant: who is at the keyboard is who the bot hears."""
    people = tuple(PlaygroundUser(id=f"29:demo-{n}", name=f"社員 {n}", email=f"e{n}@demo.example.jp",
                                  aad_object_id=f"aad-{n}", user_principal_name=f"e{n}@demo.example.jp",
                                  given_name="社員", surname=str(n)) for n in range(6))
    async with AgentsPlayground(bot.url, users=people, current_user="29:demo-3") as playground:
        assert playground.me == people[3]
        await playground.send_text("こんにちは")
        echo = await playground.wait_for(bot_text("echo: こんにちは"), what="the echo")
        heard = bot.bot.received[0]
        assert (heard.from_property.id, heard.from_property.aad_object_id) == ("29:demo-3", "aad-3")
        with pytest.raises(ValueError, match="current user"):
            await playground.send_text("hi", user="29:demo-1")
        with pytest.raises(PlaygroundError, match="-> 400"):  # the personal chat is the current user's alone
            await playground.click(echo, verb="approve", user="29:demo-1")


async def test_a_failure_names_what_was_awaited(bot: BotServer) -> None:
    async with AgentsPlayground(bot.url) as playground:
        await playground.send_text("hello")
        with pytest.raises(PlaygroundError, match="no the impossible within 1 s") as failure:
            await playground.wait_for(lambda r: False, timeout=1, what="the impossible")
        assert "echo: hello" in str(failure.value)  # what it did see, to debug from


async def test_a_bot_that_is_down_is_reported() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with AgentsPlayground(f"http://127.0.0.1:{port}/api/messages") as playground:
        await playground.send_text("hello")  # answered 200 by the Playground although the bot is not there
        with pytest.raises(PlaygroundError, match="Cannot connect to your app"):
            await playground.wait_for(lambda r: r.from_id == BOT_ID, timeout=3, what="a reply")


async def test_stopping_leaves_no_process(bot: BotServer) -> None:
    playground = AgentsPlayground(bot.url)
    async with playground:
        pid = playground.pid
        assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # neither the CLI nor anything it started is left in its process group


def own_addresses() -> set[str]:
    """This machine's addresses other than loopback (`ip -o addr`), to knock on from here."""
    try:
        listing = subprocess.run(["ip", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line.split()[3].split("/")[0] for line in listing.splitlines() if len(line.split()) > 3}


async def test_the_playground_listens_on_loopback_only(bot: BotServer) -> None:
    """Its CLI listens on every interface; the harness's guard keeps it on 127.0.0.1."""
    others = own_addresses()
    if not others:
        pytest.skip("no address other than loopback found on this machine (`ip -o addr`) to try")
    async with AgentsPlayground(bot.url) as playground:
        _, writer = await asyncio.open_connection("127.0.0.1", playground.port)  # it does listen there
        writer.close()
        for address in others:
            with pytest.raises(OSError):
                await asyncio.open_connection(address, playground.port)


def test_the_guard_refuses_connections_off_loopback() -> None:
    """The guard loaded into the Playground's node: a connection or DNS lookup off loopback is refused before
    any packet leaves, and reported. 192.0.2.1 is TEST-NET-1, which nothing answers."""
    with tempfile.TemporaryDirectory() as work:
        guard, report = Path(work) / "guard.cjs", Path(work) / "outbound.jsonl"
        guard.write_text(LOOPBACK_GUARD, encoding="utf-8")
        script = ("const net = require('net'); const dns = require('dns');"
                  "net.connect(443, '192.0.2.1').on('error', e => console.log('connect', e.code));"
                  "dns.lookup('dc.services.visualstudio.com', e => console.log('lookup', e && e.code));")
        result = subprocess.run(["node", "--require", str(guard), "-e", script], capture_output=True, text=True,
                                timeout=30, env={**os.environ, "MADOGUCHI_PLAYGROUND_OUTBOUND": str(report)})
        assert sorted(result.stdout.split("\n")) == ["", "connect ECONNREFUSED", "lookup ECONNREFUSED"], result.stderr
        refused = [json.loads(line) for line in report.read_text().splitlines()]
        assert {(r["what"], r["host"]) for r in refused} == {
            ("connection", "192.0.2.1"), ("dns lookup", "dc.services.visualstudio.com")}


@dataclass
class CardInvokeBot(MinimalBot):
    """Takes Action.Execute through `on_adaptive_card_invoke`, which CloudAdapter answers with HTTP 500."""

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        response: InvokeResponse = await ActivityHandler.on_invoke_activity(self, turn_context)
        return response

    async def on_adaptive_card_invoke(self, turn_context: TurnContext,
                                      invoke_value: AdaptiveCardInvokeValue) -> AdaptiveCardInvokeResponse:
        return AdaptiveCardInvokeResponse(status_code=200, type=ADAPTIVE_CARD, value=card("done"))


async def test_a_failed_invoke_is_reported_with_the_bots_answer() -> None:
    """Unlike a message, an invoke's failure does reach the page: the Playground answers 502 with the bot's
    status, and `click` raises with it (here botbuilder's CloudAdapter bug, DESIGN.md's "known bug")."""
    async with serve(CardInvokeBot()) as broken, AgentsPlayground(broken.url) as playground:
        await playground.send_text("card")
        shown = await playground.wait_for(lambda r: bool(r.cards), what="the card")
        with pytest.raises(PlaygroundError, match="502.*status code 500"):
            await playground.click(shown, title="Approve")
        exchange = await playground.wait_for_exchange(lambda e: e.to_bot and e.activity_name == "invoke")
        assert exchange.status == 500
        assert not any(r.is_update for r in playground.replies())


async def test_install_then_proactive_conversations(bot: BotServer) -> None:
    """Installing sends installationUpdate and conversationUpdate; create_conversation with the current user
    lands in their personal chat (on the stream); with someone else it opens a chat of theirs, which the
    stream does not show but `bot_activities` does."""
    async with AgentsPlayground(bot.url) as playground:
        await playground.install()
        await until(lambda: [a.type for a in bot.bot.received] == ["installationUpdate", "conversationUpdate"],
                    "installationUpdate and conversationUpdate")
        added = bot.bot.received[1].members_added
        assert [m.id for m in added] == [playground.me.id, BOT_ID]

        async def greet(turn_context: TurnContext) -> None:
            await turn_context.send_activity(f"hello {turn_context.activity.conversation.id}")

        for member in (playground.me.id, DEFAULT_USERS[2].id):
            parameters = ConversationParameters(
                is_group=False, bot=ChannelAccount(id=BOT_ID), members=[ChannelAccount(id=member)],
                tenant_id=TENANT_ID, channel_data={"tenant": {"id": TENANT_ID}})
            await bot.adapter.create_conversation("", greet, parameters, "msteams", playground.service_url)
        mine = await playground.wait_for(lambda r: r.text.startswith("hello "), what="the proactive DM")
        assert mine.conversation_id == playground.conversation_id
        adeles = await playground.wait_for_exchange(
            lambda e: not e.to_bot and str(e.request.get("text", "")).startswith("hello ")
            and e.conversation_id != playground.conversation_id, what="the DM to Adele")
        assert [a["text"] for a in playground.bot_activities(adeles.conversation_id)] == [
            f"hello {adeles.conversation_id}"]
        assert [r.text for r in playground.replies()] == [f"hello {playground.conversation_id}"]


async def test_each_person_has_a_playground_of_their_own(bot: BotServer) -> None:
    """Two people, two Playgrounds on one roster: the bot's proactive message to Megan's conversation comes
    through her Playground (its own serviceUrl) only, and she clicks the card there."""
    alex, megan = DEFAULT_USERS[0], DEFAULT_USERS[1]
    async with (AgentsPlayground(bot.url, current_user=alex.id) as alexs,
                AgentsPlayground(bot.url, current_user=megan.id) as megans):
        assert alexs.service_url != megans.service_url
        await megans.send_text("card")
        shown = await megans.wait_for(lambda r: bool(r.cards), what="Megan's card")
        await alexs.send_text("hello")
        await alexs.wait_for(bot_text("echo: hello"), what="Alex's echo")
        await bot.notify(megans.conversation_id, "EXP-1 waits for your approval")
        await megans.wait_for(bot_text("EXP-1 waits for your approval"), what="Megan's reminder")
        await megans.click(shown, title="Approve")
        await megans.wait_for(lambda r: r.is_update and f"by {megan.id}" in r.cards[0]["body"][0]["text"],
                              what="Megan's card updated")
        await megans.settle()
        assert [r.text for r in alexs.replies()] == ["echo: hello"]
