"""A stub Slack with Socket Mode on 127.0.0.1, in front of the stub Web API (`SlackApiStub`).

Its `/api/` (the app's SLACK_API_URL) answers `apps.connections.open` itself: it checks the app-level token
(`invalid_auth` otherwise, as Slack) and hands out a `ws://127.0.0.1:<port>/link/<n>` URL; every other method is
passed on to the `SlackApiStub`, which records it (`api.called(...)`). The websocket says `hello` like Slack,
lets the test send envelopes (`send`), records every frame the app sends back (`frames`, `ack`) and can ask for
a reconnect (`disconnect`), as Slack does when it refreshes a connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from tests.stubs.slack_api import SlackApiStub

APP_TOKEN = "xapp-1-A1-000-stubtoken"
APP_ID = "A1"
PASSED_ON = ("Content-Type", "Authorization")  # request headers the Web API stub gets
PASSED_BACK = ("Content-Type", "Retry-After")  # and answer headers the app gets


class SocketModeStub:
    def __init__(self, api: SlackApiStub, app_token: str = APP_TOKEN) -> None:
        self.api = api
        self.app_token = app_token
        self.opened: list[str] = []  # the Authorization header of every apps.connections.open
        self.frames: list[dict[str, Any]] = []  # what the app sent on the websockets
        self.sockets: list[web.WebSocketResponse] = []  # every connection, oldest first
        self.refuse_links = False  # answer the websocket handshake with 403 (a proxy in the way, say)
        self._tickets = itertools.count(1)
        self._server: TestServer | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.api.start()
        app = web.Application()
        app.router.add_post("/api/apps.connections.open", self._open)
        app.router.add_route("*", "/api/{method}", self._pass_on)
        app.router.add_get("/link/{ticket}", self._link)
        self._session = aiohttp.ClientSession()
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        if self._server is not None:
            await self._server.close()
        if self._session is not None:
            await self._session.close()
        await self.api.close()

    @property
    def api_url(self) -> str:
        """SLACK_API_URL for the app: this server's /api/ (trailing slash, as slack_sdk expects)."""
        return str(self._root().with_path("/api/"))

    # --- what Slack does --------------------------------------------------------------------------------

    async def send(self, envelope: dict[str, Any]) -> None:
        """A frame on the newest open connection."""
        await self.socket().send_str(json.dumps(envelope, ensure_ascii=False))

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        await self.send({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-stub"}})

    # --- what the test waits for ------------------------------------------------------------------------

    def socket(self) -> web.WebSocketResponse:
        open_ = [ws for ws in self.sockets if not ws.closed]
        assert open_, "no open Socket Mode connection"
        return open_[-1]

    async def connected(self, count: int = 1, timeout: float = 5.0) -> None:
        """Until `count` connections have been opened, the newest one still open."""
        await until(lambda: len(self.sockets) >= count and not self.sockets[-1].closed,
                    f"{count} Socket Mode connection(s)", timeout)

    async def ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The app's acknowledgement frame of an envelope."""
        await until(lambda: self._ack(envelope_id) is not None, f"the ack of {envelope_id}", timeout)
        ack = self._ack(envelope_id)
        assert ack is not None
        return ack

    def _ack(self, envelope_id: str) -> dict[str, Any] | None:
        return next((f for f in self.frames if f.get("envelope_id") == envelope_id), None)

    # --- the server side --------------------------------------------------------------------------------

    def _root(self) -> Any:
        assert self._server is not None, "start() first"
        return self._server.make_url("/")

    async def _open(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        self.opened.append(authorization)
        if authorization != f"Bearer {self.app_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        url = self._root().with_scheme("ws").with_path(f"/link/{next(self._tickets)}")
        return web.json_response({"ok": True, "url": str(url)})

    async def _pass_on(self, request: web.Request) -> web.Response:
        assert self._session is not None
        target = f"{self.api.api_url}{request.match_info['method']}"
        headers = {k: request.headers[k] for k in PASSED_ON if k in request.headers}
        async with self._session.request(request.method, target, params=request.query, headers=headers,
                                         data=await request.read()) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                headers={k: answer.headers[k] for k in PASSED_BACK if k in answer.headers})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        if self.refuse_links:
            raise web.HTTPForbidden()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": len([s for s in self.sockets if not s.closed]),
            "debug_info": {"host": "applink-stub", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID}}))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.frames.append(json.loads(message.data))
        return ws


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait (bounded) for a condition the app brings about in its own time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
