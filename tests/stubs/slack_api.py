"""A stub Slack Web API on 127.0.0.1: records every call (method and parsed body) and answers like Slack.

It also serves response_url hooks (`response_url(name)`), recorded under the method name "response_url", so
`respond(...)` from Bolt is seen the same way as Web API calls.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TEAM = "T1"
BOT_USER = "UBOT"
BOT_ID = "B1"
RESPONSE = "response_url"


@dataclass(frozen=True)
class Call:
    method: str
    body: dict[str, Any]


@dataclass
class SlackApiStub:
    """`users`: Slack user id -> email, for users.info. Unknown ids get `user_not_found`, as from Slack."""

    users: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _server: TestServer | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # method -> answers to give instead of the usual one, first to last (see `fail_next`)
    _scripted: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = field(default_factory=dict)

    def fail_next(self, method: str, error: str, *, status: int = 200, headers: dict[str, str] | None = None,
                  times: int = 1) -> None:
        """Answer the next `times` calls of `method` with Slack's error (and this HTTP status and headers), e.g.
        `fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "3"})`."""
        answer = (status, {"ok": False, "error": error}, dict(headers or {}))
        self._scripted.setdefault(method, []).extend([answer] * times)

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
        return [c.body for c in self.calls if c.method == method]

    def _root(self) -> Any:
        assert self._server is not None, "start() first"
        return self._server.make_url("/")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _parsed(request)
        self.calls.append(Call(method, body))
        if self._scripted.get(method):
            status, answer, headers = self._scripted[method].pop(0)
            return web.json_response(answer, status=status, headers=headers)
        return web.json_response(self._answer(method, body))

    async def _hook(self, request: web.Request) -> web.Response:
        self.calls.append(Call(RESPONSE, await _parsed(request)))
        return web.Response(text="ok")

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ids)
        match method:
            case "auth.test":
                return {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "madoguchi",
                        "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}
            case "users.info":
                return self._user(str(body.get("user")))
            case "views.open":
                return {"ok": True, "view": {**body.get("view", {}), "id": f"V{n}", "team_id": TEAM}}
            case "chat.postMessage":
                return {"ok": True, "channel": body.get("channel"), "ts": f"1780000000.{n:06d}",
                        "message": {"text": body.get("text"), "bot_id": BOT_ID}}
            case "conversations.open":
                # a DM channel id per user, stable like Slack's
                return {"ok": True, "channel": {"id": f"D{body.get('users')}"}}
            case "chat.update":
                return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts"), "text": body.get("text")}
            case "chat.postEphemeral":
                return {"ok": True, "message_ts": f"1780000000.{n:06d}"}
        return {"ok": True}

    def _user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": user_id, "team_id": TEAM, "name": user_id, "locale": "ja-JP",
                                     "tz": "Asia/Tokyo", "profile": {"email": self.users[user_id]}}}


async def _parsed(request: web.Request) -> dict[str, Any]:
    """Query parameters plus the body, JSON or form-encoded, as Slack reads them."""
    body: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body.update(await request.json())
    elif request.can_read_body:
        form = await request.post()
        body.update({key: _maybe_json(str(value)) for key, value in form.items()})
    return body


def _maybe_json(value: str) -> Any:
    # slack_sdk form-encodes nested arguments (blocks, view) as JSON strings
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value
