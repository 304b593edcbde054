"""Microsoft's Agents Playground (npm `@microsoft/m365agentsplayground`) as a real Teams client for e2e tests.

`AgentsPlayground` starts the Playground's CLI as a subprocess on a free 127.0.0.1 port, pointed at a bot's
`/api/messages` (channel `msteams`, telemetry off, no browser), and drives it the way its web page does, without
a browser: `send_text` posts a message as the person at the keyboard, `click` presses an Action.Execute button
of a card the bot sent (an `adaptiveCard/action` invoke), and everything the bot sends to the Playground's
connector (`serviceUrl` = its `/_connector`: replies, updates of earlier activities, proactive messages) comes
back on its websocket as `Reply` frames (`replies`, `wait_for`). Its log websocket is kept too (`exchanges`:
each activity the Playground POSTed to the bot with the bot's HTTP answer, and each connector call of the bot).

What the Playground is (0.2.28, read from its shipped bundle and checked by tests/e2e/test_agents_playground_
harness.py):
- Its people come from a config file (`.m365agentsplayground.yml`, path in M365_AGENTS_PLAYGROUND_CONFIG_PATH):
  exactly one `currentUser` plus exactly five `users` (its JSON schema says minItems = maxItems = 5). The
  harness always writes that file (`DEFAULT_USERS` is the Playground's own built-in roster), so a test can put
  the demo company's people in it. Conversations: the personal chat (id chosen by the test; members: the
  current user only), one group chat (all six), one team (its General channel has the team's id) with one
  more channel.
- Every message the Playground sends is `from` its current user, whatever `from.id` the request names (that
  id is only checked for membership of the chat). An invoke, though, is sent as the user it names, if that
  user is in the chat. To let another person type, start another Playground with `current_user=` that person:
  each is that person's own Teams client, with its own serviceUrl.
- Its websocket only carries messages of chats the current user is in: a bot's proactive message to a chat
  it created for someone else (POST /v3/conversations) is not shown; it is in `exchanges`.
- It answers a posted message (200) before it hands the message to the bot, so that answer says nothing of
  the bot: assert on what the bot sent. An invoke waits for the bot: a bot's failure comes back as 502 with
  the bot's status inside (`click` raises it).
- Its activities always say locale "en-US" (and clientInfo en-US, the machine's time zone), whoever the user
  is; message ids are epoch milliseconds. The person's own messages are not echoed on the websocket.
- In anonymous mode (no --client-id/--client-secret) it sends no Authorization header and its /_connector
  accepts requests without one, so the bot needs no app id or password.

It must never reach past this machine. `LOOPBACK_GUARD` is loaded into its node process (`--require`): its
servers bind 127.0.0.1 (the CLI itself listens on every interface) and any connection or DNS lookup for a
host other than loopback is refused and written to `outbound` (a test asserts it stays empty). Measured:
--disable-telemetry only stops its telemetry events; the Application Insights SDK it starts anyway looks up
westus-0.in.applicationinsights.azure.com (statsbeat) at start-up unless APPLICATION_INSIGHTS_NO_STATSBEAT is
set, as it is here. TEAMSAPPTESTER_BROWSER=none stops it opening a browser (it would run xdg-open).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

_T = TypeVar("_T")

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "@microsoft/m365agentsplayground"
CLI = REPO / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"

TENANT_ID = "00000000-0000-0000-0000-0000000000001"
BOT_ID = "00000000-0000-0000-0000-00000000000011"  # the Playground's own default; `recipient.id` of activities
BOT_NAME = "Test Bot"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
BOT_LABEL = "User Application"  # the log stream's name for the bot (`from`/`to` of its entries)


@dataclass(frozen=True)
class PlaygroundUser:
    """A person of the Playground's tenant, as its config file names them (and as activities carry them:
    `from.id` = id, `from.aadObjectId` = aad_object_id; the connector's member calls add name and email)."""

    id: str
    name: str
    email: str
    aad_object_id: str
    user_principal_name: str
    given_name: str
    surname: str

    def as_config(self) -> dict[str, str]:
        # "userPrincipleName" (sic) is the key the Playground's schema requires
        return {"id": self.id, "name": self.name, "userPrincipleName": self.user_principal_name,
                "aadObjectId": self.aad_object_id, "givenName": self.given_name, "surname": self.surname,
                "email": self.email}


def _user(n: int, name: str, login: str, email: str | None = None) -> PlaygroundUser:
    given, surname = name.split(" ")
    return PlaygroundUser(id=f"user-id-{n}", name=name, email=email or f"{login}@example.com",
                          aad_object_id=f"00000000-0000-0000-0000-00000000000{20 + n}",
                          user_principal_name=f"{login}@example.com", given_name=given, surname=surname)


# The Playground's built-in roster (0.2.28), current user first. Isaiah's email and UPN differ in its file too.
DEFAULT_USERS: tuple[PlaygroundUser, ...] = (
    _user(0, "Alex Wilber", "alexw"),
    _user(1, "Megan Bowen", "meganb"),
    _user(2, "Adele Vance", "adelev"),
    _user(3, "Isaiah Langer", "isaiah", "isaiahl@example.com"),
    _user(4, "Patti Fernandez", "pattif"),
    _user(5, "Lynne Robbins", "lynner"),
)
ROSTER_SIZE = 6  # one current user + exactly five others: the Playground's config schema allows no other size


@dataclass(frozen=True)
class Reply:
    """One frame of the Playground's conversation websocket: `createMessage` (a new message, the bot's or
    the person's own), `updateMessage` (the bot updated an earlier activity: same `message_id`) or `typing`."""

    action: str
    conversation_id: str
    frame: dict[str, Any]

    @property
    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = self.frame.get("message") or {}
        return message

    @property
    def message_id(self) -> str:
        return str(self.message.get("messageId", ""))

    @property
    def from_id(self) -> str:
        return str((self.message.get("from") or {}).get("id", ""))

    @property
    def text(self) -> str:
        return str(self.message.get("text") or "")

    @property
    def cards(self) -> list[dict[str, Any]]:
        """The Adaptive Cards the message carries (attachment contents)."""
        return [a["content"] for a in self.message.get("attachments") or []
                if a.get("contentType") == ADAPTIVE_CARD and isinstance(a.get("content"), dict)]

    @property
    def is_update(self) -> bool:
        return self.action == "updateMessage"


@dataclass(frozen=True)
class Exchange:
    """One entry of the Playground's log websocket about the bot: `to_bot` is an activity the Playground
    POSTed to the bot (`status`: the bot's HTTP answer), otherwise a connector call the bot made."""

    to_bot: bool
    activity_name: str
    conversation_id: str
    request: dict[str, Any]
    status: int | None
    response: Any


class PlaygroundError(AssertionError):
    """The Playground did not start, failed, or never showed what a test waited for."""


# Loaded into the Playground's node process with --require. Why: its CLI listens on every interface and would
# send telemetry or open links if asked; tests must stay on this machine, and must see it if they would not.
LOOPBACK_GUARD = r"""
'use strict';
const net = require('net');
const dns = require('dns');
const fs = require('fs');
const report = process.env.MADOGUCHI_PLAYGROUND_OUTBOUND;
const loopback = (host) => !host || host === 'localhost' || host === '::1' || /^127\./.test(host) ||
  /^::ffff:127\./.test(host);
function refuse(what, host, port) {
  const line = JSON.stringify({ what, host: String(host), port: port === undefined ? null : String(port) });
  try { if (report) fs.appendFileSync(report, line + '\n'); } catch (e) { /* the test reports the refusal */ }
  const error = new Error(`madoguchi test harness: ${what} to ${host}:${port} refused (loopback only)`);
  error.code = 'ECONNREFUSED';
  return error;
}
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  } else if (args[0] && typeof args[0] === 'object' && !Array.isArray(args[0]) && args[0].path === undefined &&
             !args[0].host) {
    args[0] = Object.assign({}, args[0], { host: '127.0.0.1' });
  }
  return listen.apply(this, args);
};
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  let options = args[0];
  if (Array.isArray(options)) options = options[0];
  if (typeof options !== 'object' || options === null) options = { port: args[0], host: args[1] };
  if (options.path === undefined && !loopback(options.host)) {
    const error = refuse('connection', options.host, options.port);
    process.nextTick(() => this.destroy(error));
    return this;
  }
  return connect.apply(this, args);
};
const lookup = dns.lookup;
dns.lookup = function (hostname, options, callback) {
  if (!loopback(hostname)) {
    const done = typeof options === 'function' ? options : callback;
    const error = refuse('dns lookup', hostname, undefined);
    process.nextTick(() => done(error));
    return {};
  }
  return lookup.apply(this, arguments);
};
"""


def missing() -> str | None:
    """Why the Playground cannot run here (None when it can): node or the npm package missing."""
    if shutil.which("node") is None:
        return "node is not installed (the Agents Playground is a Node.js program)"
    if not CLI.is_file():
        return f"npm package {PACKAGE} is not installed: run `npm ci` in {REPO} ({CLI} missing)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _yaml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON strings are YAML strings


def config_file(users: Sequence[PlaygroundUser], current_user: str, personal_chat: str) -> str:
    """The Playground's config file: the roster (current user apart), the personal chat's id, one group chat
    and one team with one channel beside General."""
    if len(users) != ROSTER_SIZE or len({u.id for u in users}) != ROSTER_SIZE:
        raise ValueError(f"the Agents Playground needs exactly {ROSTER_SIZE} people with distinct ids (its "
                         f"current user and five others); got {[u.id for u in users]}")
    current = [u for u in users if u.id == current_user]
    if not current:
        raise ValueError(f"current_user {current_user!r} is not one of {[u.id for u in users]}")

    def person(u: PlaygroundUser, indent: str) -> str:
        return "".join(f"{indent if i == 0 else ' ' * len(indent)}{k}: {_yaml_string(v)}\n"
                       for i, (k, v) in enumerate(u.as_config().items()))

    others = "".join(person(u, "  - ") for u in users if u.id != current_user)
    return (f'version: "0.1.1"\ntenantId: {_yaml_string(TENANT_ID)}\n'
            f"bot:\n  id: {_yaml_string(BOT_ID)}\n  name: {_yaml_string(BOT_NAME)}\n"
            f"currentUser:\n{person(current[0], '  ')}users:\n{others}"
            f"personalChat:\n  id: {_yaml_string(personal_chat)}\n"
            f'groupChat:\n  id: "group-chat-id"\n  name: "Group Chat"\n'
            f'team:\n  id: "team-id"\n  name: "My Team"\n  aadGroupId: "00000000-0000-0000-0000-000000000031"\n'
            f'  channels:\n    - id: "channel-announcements-id"\n      name: "Announcements"\n')


@dataclass
class AgentsPlayground:
    """The Playground pointed at `bot_url` (an http://127.0.0.1:PORT/api/messages), as an async context manager.

    `users`: the six people of its tenant (default: its own roster); `current_user`: the id of the person at
    the keyboard (default: the first). `conversation_id`: the personal chat's id."""

    bot_url: str
    users: Sequence[PlaygroundUser] = DEFAULT_USERS
    current_user: str | None = None
    conversation_id: str = ""  # default: personal-chat-<current user>, so each person's Playground differs
    start_timeout: float = 30.0
    started_in: float | None = field(default=None, init=False)  # seconds from spawn to /_debug/ping (a figure)
    port: int = field(default=0, init=False)
    _replies: list[Reply] = field(default_factory=list, init=False)
    _exchanges: list[Exchange] = field(default_factory=list, init=False)
    _logs: list[dict[str, Any]] = field(default_factory=list, init=False)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, init=False)
    _stderr: deque[str] = field(default_factory=lambda: deque(maxlen=40), init=False)
    _stdout: deque[str] = field(default_factory=lambda: deque(maxlen=40), init=False)
    _process: asyncio.subprocess.Process | None = field(default=None, init=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _dir: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)
    _config: dict[str, Any] = field(default_factory=dict, init=False)

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> AgentsPlayground:
        reason = missing()
        if reason:
            raise PlaygroundError(reason)
        self.current_user = self.current_user or self.users[0].id
        self.conversation_id = self.conversation_id or f"personal-chat-{self.current_user}"
        self._dir = tempfile.TemporaryDirectory(prefix="madoguchi-playground-")
        work = Path(self._dir.name)
        (work / ".m365agentsplayground.yml").write_text(
            config_file(self.users, self.current_user, self.conversation_id), encoding="utf-8")
        (work / "loopback_guard.cjs").write_text(LOOPBACK_GUARD, encoding="utf-8")
        try:
            await self._start(work)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def _start(self, work: Path) -> None:
        # A port picked here can be taken before the CLI binds it; the CLI then silently moves to another
        # one, which its serviceUrl would not match: retry with a new port instead.
        for _attempt in range(3):
            self.port = free_port()
            self._stdout.clear()  # a previous attempt's "Listening on" must not be read as this one's
            began = time.monotonic()
            self._process = await asyncio.create_subprocess_exec(
                shutil.which("node") or "node", "--require", str(work / "loopback_guard.cjs"), str(CLI),
                "--disable-telemetry", "--conversation-id", self.conversation_id, "-p", str(self.port),
                "--service-url", f"{self.url}/_connector", "-e", self.bot_url, "-c", "msteams",
                cwd=work, env=self._env(work), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)  # its own process group: stopped with everything it started
            self._tasks += [asyncio.create_task(self._drain(self._process.stdout, self._stdout)),
                            asyncio.create_task(self._drain(self._process.stderr, self._stderr))]
            listening = await self._listening_port()
            if listening == self.port:
                await self._wait_ready()
                self.started_in = time.monotonic() - began
                await self._connect()
                return
            await self._stop_process()
        raise self.failure(f"the Playground kept moving off the port it was given (last: {self.port})")

    def _env(self, work: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}  # the bot is on loopback
        env.update({
            "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(work / ".m365agentsplayground.yml"),
            "M365_AGENTS_PLAYGROUND_LOGFILE": str(work / "playground.log"),
            "MADOGUCHI_PLAYGROUND_OUTBOUND": str(work / "outbound.jsonl"),
            "TEAMSAPPTESTER_BROWSER": "none",
            # --disable-telemetry only stops its events: the Application Insights SDK it still starts sends
            # its own "statsbeat" to *.in.applicationinsights.azure.com unless told not to
            "APPLICATION_INSIGHTS_NO_STATSBEAT": "true",
            "NO_PROXY": "*",
        })
        return env

    async def _drain(self, stream: asyncio.StreamReader | None, tail: deque[str]) -> None:
        if stream is None:
            return
        async for line in stream:
            tail.append(line.decode("utf-8", "replace").rstrip())

    async def _listening_port(self) -> int:
        """The port the CLI says it listens on ("Listening on N", its only stdout line when not on a TTY)."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            for line in list(self._stdout):
                if line.startswith("Listening on "):
                    return int(line.removeprefix("Listening on ").strip())
            if self._process is not None and self._process.returncode is not None:
                raise self.failure(f"the Playground exited with status {self._process.returncode} at start")
            await asyncio.sleep(0.05)
        raise self.failure(f"the Playground did not say where it listens within {self.start_timeout:.0f} s")

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(f"{self.url}/_debug/ping",
                                           timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200 and await response.text() == "pong":
                            return
                if self._process is not None and self._process.returncode is not None:
                    raise self.failure(f"the Playground exited with status {self._process.returncode}")
                await asyncio.sleep(0.05)
        raise self.failure(f"GET /_debug/ping did not answer within {self.start_timeout:.0f} s")

    async def _connect(self) -> None:
        """Open both websockets before anything is sent: the Playground buffers frames while no page is
        connected and hands the buffer to the first one, so nothing is lost, but a second reader would miss it."""
        self._session = aiohttp.ClientSession(base_url=self.url)
        conversation = await self._session.ws_connect("/_ws_conversation/v1/conversations/stream")
        log = await self._session.ws_connect("/_ws/log/stream")
        self._tasks += [asyncio.create_task(self._read(conversation, self._on_conversation)),
                        asyncio.create_task(self._read(log, self._on_log))]
        async with self._session.get("/_internal/v1/testConfig") as response:
            self._config = await response.json()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, handle: Callable[[dict[str, Any]], None]) -> None:
        async with ws:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    handle(json.loads(message.data))
                    async with self._changed:
                        self._changed.notify_all()

    def _on_conversation(self, frame: dict[str, Any]) -> None:
        self._replies.append(Reply(action=str(frame.get("action")),
                                   conversation_id=str(frame.get("actionConversationId", "")), frame=frame))

    def _on_log(self, frame: dict[str, Any]) -> None:
        log = frame.get("log") or {}
        self._logs.append(log)
        if log.get("type") == "bot":
            response = log.get("response") or {}
            self._exchanges.append(Exchange(
                to_bot=log.get("to") == BOT_LABEL, activity_name=str(log.get("activityName", "")), conversation_id=str(log.get("conversationId", "")),
                request=(log.get("request") or {}).get("body") or {}, status=response.get("statusCode"),
                response=response.get("body")))

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until every frame the bot caused has its connector call answered. The Playground
        puts a reply on the websocket before it answers the bot's POST, so stopping it on the frame alone
        would cut the bot's call (its send_activity would fail after the test)."""
        def answered() -> bool | None:
            frames = sum(1 for r in self._replies if r.from_id == BOT_ID or r.action != "createMessage")
            calls = sum(1 for e in self._exchanges if not e.to_bot)
            return True if calls >= frames else None

        with contextlib.suppress(PlaygroundError):
            await self._wait(answered, timeout, "answers to the bot's connector calls")

    async def close(self) -> None:
        if self._process is not None and self._process.returncode is None and self._session is not None:
            await self.settle()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._stop_process()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        group = process.pid  # start_new_session: the group id is the CLI's pid
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
            if process.returncode is not None and not _group_alive(group):
                return
        if _group_alive(group):
            raise PlaygroundError(f"processes of the Playground's group {group} survived SIGKILL")

    # --- what the test sees -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The CLI's process id, also its process group's (None when stopped)."""
        return self._process.pid if self._process is not None else None

    @property
    def service_url(self) -> str:
        """The serviceUrl of the activities it sends (its connector)."""
        return f"{self.url}/_connector"

    @property
    def me(self) -> PlaygroundUser:
        return self.user(self.current_user or self.users[0].id)

    def user(self, user_id: str) -> PlaygroundUser:
        for u in self.users:
            if u.id == user_id:
                return u
        raise KeyError(f"no Playground user {user_id!r}; there are {[u.id for u in self.users]}")

    @property
    def group_chat_id(self) -> str:
        return str(self._config["config"]["groupChats"][0]["id"])

    @property
    def channel_ids(self) -> list[str]:
        """The team's channels (General first: its id is the team's)."""
        return [str(c["id"]) for c in self._config["config"]["teams"][0]["channels"]]

    @property
    def outbound(self) -> list[dict[str, Any]]:
        """Connections and lookups off loopback the guard refused (each: what, host, port)."""
        if self._dir is None:
            return []
        path = Path(self._dir.name) / "outbound.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def replies(self, conversation_id: str | None = None) -> list[Reply]:
        """Frames of the conversation websocket so far (the bot's messages, their updates, typing), oldest
        first; only one conversation's if given."""
        return [r for r in self._replies if conversation_id is None or r.conversation_id == conversation_id]

    def exchanges(self) -> list[Exchange]:
        return list(self._exchanges)

    def bot_activities(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """What the bot POSTed or PUT to the connector (activities, to any conversation: also chats the
        websocket does not show, like a proactive DM to someone other than the current user)."""
        return [e.request for e in self._exchanges if not e.to_bot and "type" in e.request
                and (conversation_id is None or e.conversation_id == conversation_id)]

    async def wait_for(self, predicate: Callable[[Reply], bool], timeout: float = 10.0,
                       what: str = "a matching frame") -> Reply:
        """The first frame (also one already received) for which `predicate` holds."""
        return await self._wait(lambda: next((r for r in self._replies if predicate(r)), None), timeout, what)

    async def wait_for_exchange(self, predicate: Callable[[Exchange], bool], timeout: float = 10.0,
                                what: str = "a matching exchange") -> Exchange:
        return await self._wait(lambda: next((e for e in self._exchanges if predicate(e)), None), timeout, what)

    async def _wait(self, found: Callable[[], _T | None], timeout: float, what: str) -> _T:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while (hit := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.failure(f"no {what} within {timeout:.0f} s")
                if self._process is None or self._process.returncode is not None:
                    raise self.failure(f"the Playground is not running while waiting for {what}")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            return hit

    # --- what the person does -----------------------------------------------------------------------------

    async def send_text(self, text: str, *, user: str | None = None, conversation_id: str | None = None,
                        mention_bot: bool | None = None) -> str:
        """Type `text` into a conversation (the personal chat by default) as the current user; the new
        message's id. In the group chat or a channel the bot only hears a message that @mentions it, as in
        Teams, so it is mentioned there unless `mention_bot=False`."""
        if user is not None and user != self.me.id:
            raise ValueError(f"the Agents Playground sends every message as its current user ({self.me.id}); "
                             f"start another AgentsPlayground with current_user={user!r} for that person")
        conversation = conversation_id or self.conversation_id
        body: dict[str, Any] = {"from": {"id": self.me.id}, "text": text, "textFormat": "plain"}
        if mention_bot if mention_bot is not None else conversation != self.conversation_id:
            tag = f"<at>{BOT_NAME}</at>"
            body["text"] = f"{tag} {text}"
            body["mentions"] = [{"mentioned": {"id": BOT_ID}, "text": tag}]
        answer = await self._post(f"/_conversation/v1/conversations/{conversation}/messages", body)
        return str(answer.get("messageId", ""))

    async def click(self, message: Reply | str, *, title: str | None = None, verb: str | None = None,
                    data: Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None,
                    user: str | None = None, conversation_id: str | None = None) -> dict[str, Any]:
        """Press an Action.Execute of a card the bot sent, as the page does: `title` finds the button on the
        message's card (its verb and data), or give `verb` and `data` yourself; `inputs` are the values typed
        into the card's inputs, merged into data as the Adaptive Cards renderer does. `user` must be in the
        chat (the personal chat has only the current user). Returns the Playground's answer (the bot's invoke
        response: `type`, `value`), for diagnostics only."""
        action: dict[str, Any] = {"type": "Action.Execute", "verb": verb, "data": dict(data or {})}
        if isinstance(message, Reply):
            message_id, conversation = message.message_id, conversation_id or message.conversation_id
            if title is not None:
                found = find_action(message.cards, title)
                if found is None:
                    raise PlaygroundError(f"no Action.Execute titled {title!r} on message {message_id}: "
                                          f"{json.dumps(message.cards, ensure_ascii=False)[:2000]}")
                action = {"type": "Action.Execute", "title": title, "verb": found.get("verb"),
                          "data": dict(found.get("data") or {}) | dict(data or {})}
        else:
            message_id, conversation = message, conversation_id or self.conversation_id
        if not action.get("verb"):
            raise ValueError("an Action.Execute needs a verb (give title= of a button on a card, or verb=)")
        action["data"] = action["data"] | dict(inputs or {})
        body = {"name": "adaptiveCard/action", "value": {"action": action},
                "from": {"id": user or self.me.id}, "conversation": {"id": conversation}, "replyToId": message_id}
        return await self._post("/_conversation/v1/invoke", body)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            raise PlaygroundError("the Playground is not started (use `async with AgentsPlayground(...)`)")
        async with self._session.post(path, json=body) as response:
            text = await response.text()
            if response.status >= 400:  # the Playground refused the request itself (unknown user, message...)
                raise self.failure(f"POST {path} {json.dumps(body, ensure_ascii=False)} -> {response.status} {text}")
            answer: dict[str, Any] = json.loads(text) if text.strip() else {}
            return answer

    async def install(self, conversation_id: str | None = None) -> None:
        """Add the bot to a conversation, as Teams does when a person installs the app: the bot gets an
        `installationUpdate` (msteams only) and a `conversationUpdate` with membersAdded."""
        await self._post(f"/_debug/conversation/{conversation_id or self.conversation_id}/installation", {})

    # --- failures -----------------------------------------------------------------------------------------

    def failure(self, what: str) -> PlaygroundError:
        """An error that says what went wrong, with what the Playground said (stderr, its log file, warnings
        of its log stream) and what it saw last."""
        parts = [f"Agents Playground ({self.url}, bot {self.bot_url}): {what}"]
        if self._stderr:
            parts.append("stderr (last lines):\n" + "\n".join(self._stderr))
        log = self._log_tail()
        if log:
            parts.append("its log file (last lines):\n" + "\n".join(log))
        warnings = [str(entry.get("displayText")) for entry in self._logs if entry.get("level") in ("warning", "error")]
        if warnings:
            parts.append("its warnings:\n" + "\n".join(warnings[-10:]))
        if self._replies:
            parts.append("last frames:\n" + "\n".join(json.dumps(r.frame, ensure_ascii=False)[:500]
                                                      for r in self._replies[-5:]))
        if self.outbound:
            parts.append(f"refused outbound connections: {self.outbound}")
        return PlaygroundError("\n".join(parts))

    def _log_tail(self) -> list[str]:
        if self._dir is None:
            return []
        path = Path(self._dir.name) / "playground.log"
        if not path.exists():
            return []
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]


def find_action(cards: Sequence[Mapping[str, Any]], title: str) -> dict[str, Any] | None:
    """The first Action.Execute titled `title` anywhere in the cards (actions, action sets, nested bodies)."""
    for node in _walk(list(cards)):
        if node.get("type") == "Action.Execute" and node.get("title") == title:
            return dict(node)
    return None


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
