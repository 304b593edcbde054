"""Slack installed into several workspaces through OAuth, end to end on loopback: the real server (make_app with
SLACK_CLIENT_ID / SLACK_CLIENT_SECRET and no bot token), a browser's GET /slack/install and /slack/oauth_redirect,
really signed Slack requests from each workspace, and the stub Slack (oauth.v2.access, one bot token per
workspace) recording which token every call was made with; on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.delivery import NOT_INSTALLED_IN
from bot.server import DELIVERY, make_app
from config.policy import Policy
from config.settings import Settings
from models.db import Database
from models.installations import slack_bots, slack_installations, slack_oauth_states
from models.messaging import outbox
from tests.conftest import Clock, Org
from tests.e2e.test_slack_edge import LEAVE, SECRET, USERS, Slack, counts
from tests.e2e.test_slack_home import home_opened
from tests.stubs.slack_api import TEAM, SlackApiStub
from tests.stubs.socket_mode import APP_TOKEN, SocketModeStub
from tests.unit.test_blockkit import valid_message

T2 = "T2BETA"
T2_USERS = {"U2-bob": "bob@example.jp", "U2-manager": "mgr@example.jp"}
COOKIE = "slack-app-oauth-state"


@dataclass
class World:
    base: str
    session: aiohttp.ClientSession
    api: SlackApiStub
    app: web.Application
    db: Database
    clock: Clock
    settings: Settings

    def slack(self, team: str) -> Slack:
        return Slack(self.base, self.api, self.session, team)

    async def install_page(self) -> tuple[str, str | None]:
        """GET /slack/install as a browser: the state in the "Add to Slack" link, and the state cookie set."""
        async with self.session.get(f"{self.base}/slack/install") as response:
            assert response.status == 200
            page, cookies = await response.text(), response.headers.getall("Set-Cookie", [])
        assert "Slack に追加" in page and "Add to Slack" in page
        link = html.unescape(re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page)[1])
        query = parse_qs(urlsplit(link).query)
        assert query["client_id"] == [self.api.client_id]
        assert "chat:write" in query["scope"][0].split(",")
        cookie = next((c.split(";")[0] for c in cookies if c.startswith(f"{COOKIE}=")), None)
        return query["state"][0], cookie

    async def come_back(self, code: str, state: str, cookie: str | None) -> tuple[int, str]:
        """Slack sends the browser back to /slack/oauth_redirect with the code and the state."""
        headers = {"Cookie": cookie} if cookie else {}
        async with self.session.get(f"{self.base}/slack/oauth_redirect?{urlencode({'code': code, 'state': state})}",
                                    headers=headers) as response:
            return response.status, await response.text()

    async def install(self, token: str) -> str:
        """A whole install of the workspace whose bot token is `token`; returns the success page."""
        state, cookie = await self.install_page()
        assert cookie == f"{COOKIE}={state}"
        code = f"code-{token}"
        self.api.grant(code, token)
        status, page = await self.come_back(code, state, cookie)
        assert status == 200, page
        return page

    async def deliver(self) -> int:
        return await self.app[DELIVERY].run_once(self.clock.now + timedelta(seconds=1))


@pytest.fixture
async def world(db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[World]:
    api = SlackApiStub(users=dict(USERS))
    api.set_token("xoxb-t1")
    api.add_workspace(T2, "xoxb-t2", T2_USERS, name="Beta")
    await api.start()
    settings = Settings.model_validate({"SLACK_CLIENT_ID": api.client_id, "SLACK_CLIENT_SECRET": api.client_secret,
                                        "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": api.api_url})
    app = make_app(settings, database=db, policy=policy, clock=clock)
    app[DELIVERY].pace = 0  # no per-channel pause between the test's messages (no workspace pace either)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    # no cookie jar: the test decides which cookies the "browser" sends
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield World(str(server.make_url("")).rstrip("/"), session, api, app, db, clock, settings)
    await server.close()
    await api.close()


def installed(db: Database) -> list[tuple[str, str]]:
    with db.unit_of_work(write=False) as conn:
        return sorted((r.team_id, r.bot_token) for r in conn.execute(sa.select(slack_bots)))


def installations(db: Database) -> list[str]:
    with db.unit_of_work(write=False) as conn:
        return sorted(conn.execute(sa.select(slack_installations.c.team_id)).scalars())


async def wait_reply(slack: Slack) -> str:
    return json.dumps(await slack.reply(), ensure_ascii=False)


# ------------------------------------------------------------------------------------------------ tests


async def test_two_workspaces_install_and_each_is_served_with_its_own_token(world: World) -> None:
    t2 = world.api.by_token["xoxb-t2"]
    page = await world.install("xoxb-t2")
    assert "インストールしました" in page and "madoguchi is installed" in page
    exchanged = world.api.emulator.called("oauth.v2.access")
    assert len(exchanged) == 1 and exchanged[0]["code"] == "code-xoxb-t2"
    assert installed(world.db) == [(T2, "xoxb-t2")] and installations(world.db) == [T2]
    await world.install("xoxb-t1")
    assert installed(world.db) == [(TEAM, "xoxb-t1"), (T2, "xoxb-t2")]

    # T2's manager and requester, with T2's token; the form opens in T2
    beta = world.slack(T2)
    assert await beta.command("U2-manager", "状況") == (200, "")
    await wait_reply(beta)
    assert await beta.command("U2-bob", "休暇") == (200, "")
    view = t2.called("views.open")[-1]["view"]
    assert await beta.post(beta.submission_body("U2-bob", view, LEAVE)) == (200, "")
    assert [c["user"] for c in t2.called("users.info")] == ["U2-manager", "U2-bob"]
    assert not world.api.emulator.called("users.info") and not world.api.emulator.called("views.open")

    # delivery: the manager's approver card and Bob's status go to T2, with T2's token
    assert await world.deliver() >= 2
    posted = t2.called("chat.postMessage")
    assert {p["channel"] for p in posted} >= {"DU2-manager", "DU2-bob"}
    for message in posted:
        valid_message({"text": message["text"], "blocks": message["blocks"]})
    assert not world.api.emulator.called("chat.postMessage")
    with world.db.unit_of_work(write=False) as conn:
        refs = [r for r in conn.execute(sa.select(outbox.c.state, outbox.c.message_ref))]
    assert refs and all(state == "sent" and ref["team"] == T2 for state, ref in refs)

    # the manager approves from T2: every copy is updated with T2's token
    button = next(e for m in posted if m["channel"] == "DU2-manager" for b in m["blocks"]
                  if b["type"] == "actions" for e in b["elements"] if e["action_id"].startswith("approve"))
    assert await beta.post(beta.click_body("U2-manager", button["action_id"], button["value"])) == (200, "")
    assert "承認しました" in await wait_reply(beta)
    await world.deliver()
    assert t2.called("chat.update") and not world.api.emulator.called("chat.update")

    # an event from T2 (the manager opens App Home): published in T2, with T2's token
    opened_home = home_opened("U2-manager", 1).replace(f'"{TEAM}"', f'"{T2}"')
    assert (await beta.post(opened_home, headers={"Content-Type": "application/json"}))[0] == 200
    assert [h["user_id"] for h in t2.called("views.publish")] == ["U2-manager"]
    assert not world.api.emulator.called("views.publish")

    # a command from the first workspace goes with the first workspace's token
    acme = world.slack(TEAM)
    assert await acme.command("U-alice", "状況") == (200, "")
    await wait_reply(acme)
    assert [c["user"] for c in world.api.emulator.called("users.info")] == ["U-alice"]


async def test_a_workspace_is_looked_up_once_then_its_requests_cost_no_lookup(world: World, policy: Policy) -> None:
    await world.install("xoxb-t2")
    t2 = world.api.by_token["xoxb-t2"]
    verified = len(t2.called("auth.test"))  # the install's own check of the new token
    # a second server on the same database (a restart, or another replica) knows no installation yet
    app = make_app(world.settings, database=world.db, policy=policy, clock=world.clock)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    lookups: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "slack_bots" in statement or "slack_installations" in statement:
            lookups.append(statement)

    sa.event.listen(world.db.engine, "before_cursor_execute", seen)
    try:
        beta = Slack(str(server.make_url("")).rstrip("/"), world.api, world.session, T2)
        for text in ("状況", "承認", "help"):
            assert await beta.command("U2-manager", text) == (200, "")
            await wait_reply(beta)
    finally:
        sa.event.remove(world.db.engine, "before_cursor_execute", seen)
        await server.close()
    assert len(lookups) == 1 and "FROM slack_bots" in lookups[0]
    assert len(t2.called("auth.test")) == verified  # the installation says who the bot is: no auth.test


async def test_a_workspace_without_an_installation_is_told_so_and_nothing_is_stored(world: World) -> None:
    await world.install("xoxb-t2")
    before, calls = counts(world.db), len(world.api.emulator.calls)
    nowhere = world.slack("T3NOWHERE")
    assert await nowhere.command("U-alice", "休暇") == (200, "")
    reply = await wait_reply(nowhere)
    assert "インストールされていません" in reply and "not installed in this workspace" in reply
    assert counts(world.db) == before
    assert len(world.api.emulator.calls) == calls + 1  # the response_url answer only: no Web API call


@pytest.mark.parametrize("attempt", ["forged", "expired", "no_cookie", "reused", "bad_code"])
async def test_a_bad_state_or_code_is_refused_with_a_page_and_stores_nothing(world: World, attempt: str) -> None:
    state, cookie = await world.install_page()
    world.api.grant("code-t2", "xoxb-t2")
    if attempt == "forged":
        state, cookie = "made-up-state", f"{COOKIE}=made-up-state"
    elif attempt == "expired":
        with world.db.unit_of_work() as conn:
            conn.execute(slack_oauth_states.update().values(expire_at=datetime(2020, 1, 1)))
    elif attempt == "no_cookie":
        cookie = None
    elif attempt == "reused":
        assert (await world.come_back("code-t2", state, cookie))[0] == 200
        with world.db.unit_of_work() as conn:  # start from nothing again: only the second attempt counts
            conn.execute(slack_bots.delete())
            conn.execute(slack_installations.delete())
        world.api.grant("code-t2", "xoxb-t2")
    before_exchanges = len(world.api.emulator.called("oauth.v2.access"))
    status, page = await world.come_back("bad-code" if attempt == "bad_code" else "code-t2", state, cookie)
    assert 400 <= status < 500
    assert "インストールできませんでした" in page and "The installation did not complete" in page
    assert installed(world.db) == [] and installations(world.db) == []
    exchanged = len(world.api.emulator.called("oauth.v2.access")) - before_exchanges
    assert exchanged == (1 if attempt == "bad_code" else 0)  # a refused state never reaches Slack


async def test_uninstalling_deletes_the_installation_and_its_messages_are_dead(world: World) -> None:
    await world.install("xoxb-t2")
    t2 = world.api.by_token["xoxb-t2"]
    beta = world.slack(T2)
    assert await beta.command("U2-manager", "状況") == (200, "")
    await wait_reply(beta)
    assert await beta.command("U2-bob", "休暇") == (200, "")
    view = t2.called("views.open")[-1]["view"]
    assert await beta.post(beta.submission_body("U2-bob", view, LEAVE)) == (200, "")  # not delivered yet
    event = json.dumps({"token": "legacy", "team_id": T2, "api_app_id": "A1", "type": "event_callback",
                        "event": {"type": "app_uninstalled", "event_ts": "1780000000.000100"},
                        "event_id": "Ev1", "event_time": 1780000000})
    assert (await beta.post(event, headers={"Content-Type": "application/json"}))[0] == 200
    assert installed(world.db) == [] and installations(world.db) == []
    # the next request from T2 is told the app is not installed (the memory of its bot is gone too)
    assert await beta.command("U2-bob", "状況") == (200, "")
    assert "インストールされていません" in await wait_reply(beta)
    # the messages for people in T2 cannot go anywhere: dead, saying why, and nothing is sent
    before = len(t2.calls)
    assert await world.deliver() >= 2
    with world.db.unit_of_work(write=False) as conn:
        rows = conn.execute(sa.select(outbox.c.state, outbox.c.last_error)).all()
    assert rows and all((r.state, r.last_error) == ("dead", NOT_INSTALLED_IN.format(team=T2)) for r in rows)
    assert len(t2.calls) == before


async def test_a_queue_card_goes_to_the_channel_of_the_requesters_workspace(world: World) -> None:
    # nobody of IT was ever seen on Slack: the shared #it-help card goes to the workspace the request came from
    await world.install("xoxb-t1")
    await world.install("xoxb-t2")
    t2 = world.api.by_token["xoxb-t2"]
    beta = world.slack(T2)
    assert await beta.command("U2-bob", "it") == (200, "")
    view = t2.called("views.open")[-1]["view"]
    answers = {"category": "device", "subject": "PCが起動しない", "details": "電源ランプが点きません", "urgency": "high"}
    assert await beta.post(beta.submission_body("U2-bob", view, answers)) == (200, "")
    await world.deliver()
    shared = [m for m in t2.called("chat.postMessage") if m["channel"] == "#it-help"]
    assert len(shared) == 1 and "PCが起動しない" in json.dumps(shared[0], ensure_ascii=False)
    valid_message({"text": shared[0]["text"], "blocks": shared[0]["blocks"]})
    assert not world.api.emulator.called("chat.postMessage")


async def reinstall_elsewhere(world: World, policy: Policy) -> SlackApiStub:
    """T2 was installed here, and this server remembers its token; then T2 reinstalls through a second server
    (another replica), where Bob files a leave request, and Slack takes only the new token from then on."""
    await world.install("xoxb-t2")
    t2 = world.api.by_token["xoxb-t2"]
    beta = world.slack(T2)
    assert await beta.command("U2-manager", "状況") == (200, "")
    await wait_reply(beta)
    del world.api.by_token["xoxb-t2"]
    t2.token, world.api.by_token["xoxb-t2-new"] = "xoxb-t2-new", t2
    other = make_app(world.settings, database=world.db, policy=policy, clock=world.clock)
    server = TestServer(other, host="127.0.0.1")
    await server.start_server()
    try:
        replica = World(str(server.make_url("")).rstrip("/"), world.session, world.api, other, world.db,
                        world.clock, world.settings)
        await replica.install("xoxb-t2-new")
        bob = replica.slack(T2)
        assert await bob.command("U2-bob", "休暇") == (200, "")
        view = t2.called("views.open")[-1]["view"]
        assert await bob.post(bob.submission_body("U2-bob", view, LEAVE)) == (200, "")
    finally:
        await server.close()
    return t2


async def test_after_a_reinstall_elsewhere_delivery_resends_with_the_new_token(world: World, policy: Policy) -> None:
    t2 = await reinstall_elsewhere(world, policy)
    # delivery here tries its remembered token once, is refused, reads the installation again, and sends every
    # message with the new token; nothing is lost
    await world.deliver()
    world.clock.advance(minutes=1)
    await world.deliver()
    with world.db.unit_of_work(write=False) as conn:
        states = list(conn.execute(sa.select(outbox.c.state)).scalars())
    assert states and set(states) == {"sent"}
    assert world.api.emulator.called("conversations.open")  # the old token's call, refused (invalid_auth)
    assert {m["channel"] for m in t2.called("chat.postMessage")} >= {"DU2-manager", "DU2-bob"}


async def test_after_a_reinstall_elsewhere_one_request_fails_then_the_new_token_is_used(
        world: World, policy: Policy) -> None:
    t2 = await reinstall_elsewhere(world, policy)
    beta = world.slack(T2)
    opened = len(t2.called("views.open"))
    assert (await beta.command("U2-manager", "休暇"))[0] == 500  # views.open with the old token: refused
    assert len(t2.called("views.open")) == opened
    assert await beta.command("U2-manager", "休暇") == (200, "")  # the installation was read again
    assert len(t2.called("views.open")) == opened + 1


async def test_socket_mode_serves_each_installed_workspace_with_its_token(db: Database, org: Org, policy: Policy,
                                                                          clock: Clock) -> None:
    api = SlackApiStub(users=dict(USERS))
    t2 = api.add_workspace(T2, "xoxb-t2", T2_USERS, name="Beta")
    stub = SocketModeStub(api)
    await stub.start()
    settings = Settings.model_validate({"SLACK_CLIENT_ID": api.client_id, "SLACK_CLIENT_SECRET": api.client_secret,
                                        "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": stub.api_url,
                                        "SLACK_APP_TOKEN": APP_TOKEN})
    app = make_app(settings, database=db, policy=policy, clock=clock)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        await stub.connected()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            world = World(str(server.make_url("")).rstrip("/"), session, api, app, db, clock, settings)
            await world.install("xoxb-t2")  # the install itself is HTTP: the browser comes back to the redirect URL
        await stub.send({"envelope_id": "env-1", "type": "slash_commands", "accepts_response_payload": True,
                         "payload": {"token": "legacy", "team_id": T2, "channel_id": "C1", "user_id": "U2-bob",
                                     "command": "/madoguchi", "text": "休暇", "api_app_id": "A1",
                                     "is_enterprise_install": "false", "trigger_id": "1.1.trigger",
                                     "response_url": api.response_url("cmd1")}})
        assert await stub.ack("env-1") == {"envelope_id": "env-1"}
        assert [v["trigger_id"] for v in t2.called("views.open")] == ["1.1.trigger"]
        assert not api.emulator.called("views.open")
    finally:
        await server.close()
        await stub.close()
