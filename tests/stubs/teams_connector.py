"""A stub Bot Framework connector on loopback: what the bot sends to Teams (replies, new activities, updates,
member lookups) lands here, and the tests read it. Activities POSTed into the bot carry this stub's URL as their
`serviceUrl`, so botbuilder's own connector client talks to it over real HTTP."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.test_utils import TestServer

JSON = dict[str, Any]


@dataclass
class Sent:
    """One call the bot made: `kind` is reply | send | update; the activity as sent; its id."""

    kind: str
    conversation: str
    activity_id: str
    activity: JSON


@dataclass
class TeamsConnectorStub:
    """`members`: channel user id -> the member the lookup answers (email, userPrincipalName, aadObjectId...)."""

    members: dict[str, JSON] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # HTTP statuses to answer the next sends/updates with
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        base = "/v3/conversations/{conversation}"
        app.router.add_post(base + "/activities", self._send)
        app.router.add_post(base + "/activities/{activity}", self._reply)
        app.router.add_put(base + "/activities/{activity}", self._update)
        app.router.add_get(base + "/members/{member}", self._member)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.make_url("")).rstrip("/") + "/"

    def fail_next(self, *, status: int, times: int = 1) -> None:
        """Answer the next `times` sends, replies and updates with this HTTP status (the connector's error body)."""
        self.failures += [status] * times

    def _failure(self) -> web.Response | None:
        if not self.failures:
            return None
        status = self.failures.pop(0)
        return web.json_response({"error": {"code": "ServiceError" if status >= 500 else "Forbidden",
                                            "message": f"stub answered {status}"}}, status=status)

    def cards(self, kind: str | None = None) -> list[JSON]:
        """The Adaptive Cards the bot sent (in order), optionally of one kind of call."""
        return [a["content"] for s in self.sent if kind is None or s.kind == kind
                for a in s.activity.get("attachments") or [] if a.get("contentType", "").endswith("card.adaptive")]

    async def _send(self, request: web.Request) -> web.Response:
        return await self._record(request, "send")

    async def _reply(self, request: web.Request) -> web.Response:
        return await self._record(request, "reply")

    async def _update(self, request: web.Request) -> web.Response:
        if (failed := self._failure()) is not None:
            return failed
        activity_id = unquote(request.match_info["activity"])
        self.sent.append(Sent("update", unquote(request.match_info["conversation"]), activity_id,
                              await request.json()))
        return web.json_response({"id": activity_id})

    async def _record(self, request: web.Request, kind: str) -> web.Response:
        if (failed := self._failure()) is not None:
            return failed
        activity_id = f"bot-{next(self._ids)}"
        self.sent.append(Sent(kind, unquote(request.match_info["conversation"]), activity_id, await request.json()))
        return web.json_response({"id": activity_id})

    async def _member(self, request: web.Request) -> web.Response:
        member = self.members.get(unquote(request.match_info["member"]))
        if member is None:
            return web.json_response({"error": {"code": "MemberNotFoundInConversation",
                                                "message": "The member was not found."}}, status=404)
        return web.json_response(member)
