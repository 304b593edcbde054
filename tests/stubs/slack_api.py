"""Slack's Web API for the end-to-end tests: the playground's emulator (bot/playground/webapi.py) on its own
127.0.0.1 server, lenient about trigger ids and response_urls the tests make up themselves. Every call is
recorded (method and parsed body); `fail_next` scripts Slack's errors.

It also serves response_url hooks (`response_url(name)`), recorded under the method name "response_url", so
`respond(...)` from Bolt is seen the same way as Web API calls.
"""

from __future__ import annotations

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

    def __post_init__(self) -> None:
        workspace = Workspace(team_id=TEAM, team_name="Acme", bot_user=BOT_USER, bot_id=BOT_ID)
        for user_id, email in self.users.items():
            workspace.add_person(Person(id=user_id, name=user_id, email=email,
                                        locale=self.locales.get(user_id, "ja-JP")))
        self.emulator = SlackWebApi(workspace)

    @property
    def calls(self) -> list[Call]:
        return self.emulator.calls

    @property
    def workspace(self) -> Workspace:
        return self.emulator.workspace

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
        return await self.emulator.handle_api(request)

    async def _hook(self, request: web.Request) -> web.Response:
        return await self.emulator.handle_hook(request)
