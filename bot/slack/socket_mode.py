"""Socket Mode for the Slack edge: the same Bolt AsyncApp that serves `POST /slack/events` (`build_slack_app`)
also receives commands, clicks, submissions and events over a websocket Slack hands out for an app-level token
(`SLACK_APP_TOKEN`, xapp-...), so the bot works without a public URL. The connection is slack_bolt's
`AsyncSocketModeHandler` (slack_sdk's aiohttp `SocketModeClient`); this module gives it the lifecycle of the
aiohttp application (`SocketModeConnection.context` in `app.cleanup_ctx`), readable logs and clear errors.

Facts from slack_sdk 3.47 / slack-bolt 1.30's source that shaped this module:
- `SocketModeClient.__init__` opens an aiohttp session and starts its message task, so the handler is built
  in `start()`, inside the running loop, never at import or `make_app` time.
- `connect()` retries forever, logging a stack trace every `ping_interval` seconds, whatever the error: a
  refused token would be a trace loop and a hung start. So `start()` asks `apps.connections.open` itself
  first (a refusal raises `SlackAppTokenError` naming SLACK_APP_TOKEN), hands the URL to the client and bounds
  the websocket handshake by `connect_timeout`.
- `apps.connections.open` goes through the handler's `web_client.base_url`: we give it our own client on
  `SLACK_API_URL` (the Bolt app's client would do too, but its session belongs to the HTTP side's lifecycle).
  Our client turns auth refusals into `SlackAppTokenError`, so reconnect failures later name the variable too.
- Reconnects are the client's: on a `disconnect` frame (Slack refreshes connections every few hours), a CLOSE
  from the server, or pings unanswered for 4 x `ping_interval`; each asks for a new URL. Slack says `hello` on
  every new connection: we log the first as connected and the next ones as reconnected.
- The ack is a text frame `{"envelope_id": ...}` (plus `"payload"` when the listener acked with one, e.g.
  `response_action: errors`), sent after `AsyncApp.async_dispatch` returns: with `process_before_response`
  the whole listener runs first, exactly as the HTTP answer waits for it.
- Each envelope runs in a task the client starts and forgets, and `close()` cancels its own tasks without
  awaiting them; we track the envelope tasks, let them finish (bounded) before closing and await everything.
- Slack puts `"retry_attempt": 0` on the first delivery of an Events API envelope and Bolt 1.30 turns any
  `retry_attempt` into an `x-slack-retry-num` header: "0" would look like a retry to a middleware that checks
  the header's presence (our `SkipRetries`), so a first delivery is passed on without retry fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientError, WSMessage, WSMsgType, web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.people_first import PeopleFirst
from models.messaging import TRACE

log = logging.getLogger(__name__)
sdk_log = logging.getLogger(f"{__name__}.sdk")  # what slack_sdk's client says (sessions, reconnect attempts)

TOKEN_VARIABLE = "SLACK_APP_TOKEN"
# apps.connections.open errors that no retry will cure: the token (or its scope) is wrong
REFUSALS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                      "not_allowed_token_type", "missing_scope", "no_permission"})


class SocketModeError(RuntimeError):
    """Socket Mode could not be started; the message says why (never the token)."""


class SlackAppTokenError(SocketModeError):
    """Slack refused the app-level token."""

    def __init__(self, error: str) -> None:
        super().__init__(f"Slack refused {TOKEN_VARIABLE} ({error}): it must be the app-level token (xapp-...) of "
                         "this Slack app with the connections:write scope (Basic Information > App-Level Tokens)")
        self.error = error


class _ConnectionsClient(AsyncWebClient):
    """The Web API client the Socket Mode client asks for websocket URLs: a refused token becomes
    `SlackAppTokenError` (slack_sdk would only log the raw API error and retry)."""

    async def apps_connections_open(self, *, app_token: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            return await super().apps_connections_open(app_token=app_token, **kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in REFUSALS:
                raise SlackAppTokenError(error) from None
            raise


class _Handler(AsyncSocketModeHandler):
    """Bolt's handler, with first deliveries passed on as such (see the module docstring)."""

    people_first: PeopleFirst | None = None  # set by SocketModeConnection: an envelope is a person's request

    async def handle(self, client: Any, req: SocketModeRequest) -> None:
        # the envelope's own task: its id is the request id of what it causes (as X-Request-Id is over HTTP)
        TRACE.set(f"socket-{req.envelope_id}")
        if req.retry_attempt == 0:
            req.retry_attempt, req.retry_reason = None, None
        with self.people_first.serving() if self.people_first is not None else contextlib.nullcontext():
            await super().handle(client, req)


class SocketModeConnection:
    """The Bolt app's Socket Mode connection. `await start()` connects (or raises `SocketModeError`);
    `await close()` lets envelopes under way finish (up to `grace` seconds), closes and awaits every task.
    For an aiohttp application: `app.cleanup_ctx.append(SocketModeConnection(...).context)`."""

    def __init__(self, bolt: AsyncApp, app_token: str, api_url: str, *, ping_interval: float = 10.0,
                 connect_timeout: float = 30.0, grace: float = 5.0, people_first: PeopleFirst | None = None) -> None:
        self._bolt = bolt
        self._people_first = people_first
        self._token = app_token
        self._api_url = api_url
        self._ping_interval = ping_interval
        self._connect_timeout = connect_timeout
        self._grace = grace
        self._handler: _Handler | None = None
        self._envelopes: set[asyncio.Task[Any]] = set()
        self.connections = 0  # hellos seen: 1 once connected, more after reconnects

    async def context(self, _: web.Application) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: connected while the application runs."""
        await self.start()
        try:
            yield
        finally:
            await self.close()

    async def start(self) -> None:
        if self._handler is not None:
            return
        if not self._token.startswith("xapp-"):
            kind = self._token[:5] if self._token[:4] in ("xoxb", "xoxp") else "something else"
            raise SlackAppTokenError(f"not an app-level token: it starts with {kind}")
        web_client = _ConnectionsClient(base_url=self._api_url, logger=sdk_log)
        try:
            url = (await web_client.apps_connections_open(app_token=self._token))["url"]
        except SocketModeError:
            raise
        except (SlackApiError, ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise SocketModeError(f"apps.connections.open at {self._api_url} failed: {_reason(exc)}") from None
        handler = _Handler(self._bolt, self._token, logger=sdk_log, web_client=web_client,
                           ping_interval=self._ping_interval)
        handler.people_first = self._people_first
        client = handler.client
        client.message_listeners.append(self._on_message)
        client.on_message_listeners.append(self._on_frame)
        client.wss_uri = url  # the URL just issued: connect() asks for one only when it has none
        self._handler = handler
        try:
            await asyncio.wait_for(client.connect(), self._connect_timeout)
        except TimeoutError:
            await self.close()
            raise SocketModeError(f"the Socket Mode websocket did not open within {self._connect_timeout:g} s "
                                  "(see the errors above)") from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        handler, self._handler = self._handler, None
        if handler is None:
            return
        client = handler.client
        under_way = {task for task in self._envelopes if not task.done()}
        if under_way:  # their acks and answers still go out on this connection
            await asyncio.wait(under_way, timeout=self._grace)
        await handler.close_async()  # closes the websocket and the session; cancels, not awaits, its tasks
        tasks = [t for t in (client.message_processor, client.current_session_monitor, client.message_receiver,
                             *self._envelopes) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._envelopes.clear()
        log.info("Socket Mode connection closed")

    async def _on_message(self, _: AsyncBaseSocketModeClient, message: dict[str, Any], __: str | None) -> None:
        # The first listener of every message's task (the envelope's listener runs in it after us).
        task = asyncio.current_task()
        if task is not None:
            self._envelopes.add(task)
            task.add_done_callback(self._envelopes.discard)
        if message.get("type") == "hello":
            self.connections += 1
            info = message.get("connection_info") or {}
            debug = message.get("debug_info") or {}
            what = "connected to" if self.connections == 1 else "reconnected to"
            log.info("Socket Mode: %s Slack (app %s, host %s, %s connection(s) open)", what,
                     info.get("app_id", "?"), debug.get("host", "?"), message.get("num_connections", "?"))

    async def _on_frame(self, frame: WSMessage) -> None:
        # `disconnect` frames never reach message listeners (the client reconnects and returns): seen here.
        if frame.type is WSMsgType.TEXT and '"disconnect"' in frame.data:
            with contextlib.suppress(ValueError):
                message = json.loads(frame.data)
                if message.get("type") == "disconnect":
                    log.info("Socket Mode: Slack asked for a new connection (%s); reconnecting",
                             message.get("reason", "no reason given"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
