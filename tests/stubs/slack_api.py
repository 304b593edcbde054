"""Slack's Web API for the end-to-end tests: the playground's emulator (bot/playground/webapi.py) on its own
127.0.0.1 server, lenient about trigger ids and response_urls the tests make up themselves. Every call is
recorded (method and parsed body); `fail_next` scripts Slack's errors; `hold(method)` keeps that method's calls
waiting until the event it returns is set (a Slack that is slow to answer).

It also serves response_url hooks (`response_url(name)`), recorded under the method name "response_url", so
`respond(...)` from Bolt is seen the same way as Web API calls.

Several workspaces (the OAuth mode): `add_workspace` makes another workspace with a bot token of its own; a call
made with that token goes to that workspace's emulator (and is recorded there, so a test sees which token a
message went with); any other call goes to the first workspace. `grant` hands out an OAuth code that
`oauth.v2.access` exchanges, once, for a workspace's bot token, as Slack does at the end of an install.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.playground.webapi import RESPONSE, Call, SlackWebApi, parsed_body
from bot.playground.workspace import Person, Workspace

TEAM = "T1"
BOT_USER = "UBOT"
BOT_ID = "B1"
__all__ = ["BOT_ID", "BOT_USER", "RESPONSE", "TEAM", "Call", "SlackApiStub", "parsed_body"]


@dataclass
class SlackApiStub:
    """`users`: Slack user id -> email, for users.info. Unknown ids get `user_not_found`, as from Slack.
    `locales`: Slack user id -> the locale users.info reports (e.g. "en-US"); "ja-JP" for anyone not in it."""

    users: dict[str, str] = field(default_factory=dict)
    locales: dict[str, str] = field(default_factory=dict)
    _server: TestServer | None = None
    emulator: SlackWebApi = field(init=False)
    # OAuth: the app's credentials oauth.v2.access checks, and the codes it exchanges (code -> bot token)
    client_id: str = "1111.2222"
    client_secret: str = "test-client-secret"
    by_token: dict[str, SlackWebApi] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    held: dict[str, asyncio.Event] = field(default_factory=dict)
    # called with the method (or "response_url") as each call arrives, before it is answered: lets a test note
    # the state of the sender at the moment Slack would have shown something to a person
    witness: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.emulator = self._emulator(TEAM, "Acme", BOT_USER, BOT_ID, self.users, None)

    def _emulator(self, team: str, name: str, bot_user: str, bot_id: str, users: dict[str, str],
                  token: str | None) -> SlackWebApi:
        workspace = Workspace(team_id=team, team_name=name, bot_user=bot_user, bot_id=bot_id)
        for user_id, email in users.items():
            workspace.add_person(Person(id=user_id, name=user_id, email=email,
                                        locale=self.locales.get(user_id, "ja-JP")))
        return SlackWebApi(workspace, token=token)

    def add_workspace(self, team: str, token: str, users: dict[str, str], *, name: str = "") -> SlackWebApi:
        """Another workspace, whose bot calls with `token` (and only that token works there)."""
        emulator = self._emulator(team, name or team, f"UBOT{team}", f"B{team}", users, token)
        self.by_token[token] = emulator
        return emulator

    def set_token(self, token: str) -> None:
        """The first workspace's bot token (with OAuth: what oauth.v2.access hands out for it)."""
        self.emulator.token = token
        self.by_token[token] = self.emulator

    def grant(self, code: str, token: str) -> None:
        """A code Slack gave the browser at the end of an install: exchanged once for the workspace of `token`."""
        self.codes[code] = token

    @property
    def calls(self) -> list[Call]:
        return self.emulator.calls

    @property
    def workspace(self) -> Workspace:
        return self.emulator.workspace

    def hold(self, method: str) -> asyncio.Event:
        """Calls of `method` wait (unanswered) until the returned event is set."""
        self.held[method] = asyncio.Event()
        return self.held[method]

    def fail_next(self, method: str, error: str, *, status: int = 200, headers: dict[str, str] | None = None,
                  times: int = 1) -> None:
        """Answer the next `times` calls of `method` with Slack's error (and this HTTP status and headers), e.g.
        `fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "3"})`."""
        self.emulator.fail_next(method, error, status=status, headers=headers, times=times)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/hooks/{name}", self._hook)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def api_url(self) -> str:
        """The Web API base URL, with the trailing slash slack_sdk expects."""
        return str(self._root().with_path("/api/"))

    def response_url(self, name: str) -> str:
        return str(self._root().with_path(f"/hooks/{name}"))

    def called(self, method: str) -> list[dict[str, Any]]:
        return self.emulator.called(method)

    def _root(self) -> Any:
        assert self._server is not None, "start() first"
        return self._server.make_url("/")

    async def _api(self, request: web.Request) -> web.Response:
        if self.witness is not None:
            self.witness(request.match_info["method"])
        held = self.held.get(request.match_info["method"])
        if held is not None:
            await held.wait()
        if request.match_info["method"] == "oauth.v2.access":
            return await self._oauth_access(request)
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return await self.by_token.get(given, self.emulator).handle_api(request)

    async def _oauth_access(self, request: web.Request) -> web.Response:
        """Slack's oauth.v2.access: the app's credentials (HTTP Basic, or in the body) and a code, once."""
        body = await parsed_body(request)
        self.emulator.calls.append(Call("oauth.v2.access", body))
        client_id, client_secret = body.get("client_id"), body.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return web.json_response({"ok": False, "error": "invalid_client_id"})
        token = self.codes.pop(str(body.get("code", "")), None)
        if token is None:
            return web.json_response({"ok": False, "error": "invalid_code"})
        ws = self.by_token[token].workspace
        return web.json_response({
            "ok": True, "app_id": "A1", "authed_user": {"id": "U-installer"}, "token_type": "bot",
            "scope": "commands,chat:write,im:write,users:read,users:read.email", "access_token": token,
            "bot_user_id": ws.bot_user, "team": {"id": ws.team_id, "name": ws.team_name}, "enterprise": None,
            "is_enterprise_install": False})

    async def _hook(self, request: web.Request) -> web.Response:
        if self.witness is not None:
            self.witness("response_url")
        return await self.emulator.handle_hook(request)
