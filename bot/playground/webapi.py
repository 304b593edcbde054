"""A small emulator of the parts of Slack's Web API the bot calls, over HTTP, on a Workspace.

Methods: auth.test, users.info, users.lookupByEmail, conversations.open, chat.postMessage, chat.update,
chat.postEphemeral, chat.delete, views.open, views.push, views.update, views.publish; plus the response_url
hooks Slack hands out with commands and clicks. Answers are shaped like Slack's, errors included
(`invalid_auth`, `user_not_found`, `channel_not_found`, `message_not_found`, `expired_trigger_id`...), so the
bot's production code path runs unchanged against it. It is both the playground's Slack and the end-to-end
tests' stub: every call is recorded (`calls`, `called`) and a test can script failures (`fail_next`).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.playground.workspace import JSON, Conversation, OpenView, Workspace, view_payload

RESPONSE = "response_url"  # the method name response_url calls are recorded under
TRIGGER_LIFETIME = 3.0  # seconds, as on Slack
API_PREFIX = "/api/"
HOOKS_PREFIX = "/playground/hooks/"
LIMITED = ("chat.postMessage", "chat.update")  # what RateLimits paces


@dataclass(frozen=True)
class Call:
    method: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Trigger:
    user: str
    issued: float


@dataclass(frozen=True)
class Hook:
    """Where a response_url answers: a person, in a conversation, about a message (for replace_original)."""

    user: str
    channel: str
    ts: str | None = None


class SlackError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class RateLimits:
    """Optional pacing like Slack's for message posts and updates (benchmarks, tests): at most `per_channel`
    messages a second in one conversation and `workspace` a second in all; beyond it, HTTP 429 with Retry-After."""

    per_channel: float = 1.0
    workspace: float = 100.0
    limited: int = 0  # how many calls were answered 429
    _last: dict[str, float] = field(default_factory=dict)
    _recent: deque[float] = field(default_factory=deque)

    def wait(self, channel: str, now: float) -> float:
        """0 and the message is counted, or how many seconds to wait."""
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        waits = [self._last.get(channel, -1e9) + 1.0 / self.per_channel - now]
        if len(self._recent) >= self.workspace:
            waits.append(self._recent[0] + 1.0 - now)
        wait = max(waits)
        if wait > 0:
            self.limited += 1
            return wait
        self._last[channel] = now
        self._recent.append(now)
        return 0.0


@dataclass
class SlackWebApi:
    """`token`: the bot token callers must present (None: any). `strict`: trigger ids and response_urls must be
    ones this emulator handed out (the playground); not strict, unknown ones are accepted (tests make their own)."""

    workspace: Workspace
    token: str | None = None
    strict: bool = False
    calls: list[Call] = field(default_factory=list)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    hooks: dict[str, Hook] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    # method -> answers to give instead of the usual one, first to last (see `fail_next`)
    scripted: dict[str, list[tuple[int, JSON, dict[str, str]]]] = field(default_factory=dict)
    limits: RateLimits | None = None  # None: no rate limits (the playground, most tests)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", API_PREFIX + "{method}", self.handle_api)
        app.router.add_post(HOOKS_PREFIX + "{name}", self.handle_hook)

    # ------------------------------------------------------------------------------------- for tests

    def called(self, method: str) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == method]

    def fail_next(self, method: str, error: str, *, status: int = 200, headers: dict[str, str] | None = None,
                  times: int = 1) -> None:
        """Answer the next `times` calls of `method` with Slack's error (and this HTTP status and headers), e.g.
        `fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "3"})`."""
        answer = (status, {"ok": False, "error": error}, dict(headers or {}))
        self.scripted.setdefault(method, []).extend([answer] * times)

    # ------------------------------------------------------------------------------------- handed out

    def issue_trigger(self, user: str) -> str:
        trigger_id = f"{self.workspace.next_id('')}.{int(time.time())}.{user.lower()}"
        self.triggers[trigger_id] = Trigger(user, self.clock())
        return trigger_id

    def issue_hook(self, base_url: str, hook: Hook) -> str:
        name = self.workspace.next_id("hook")
        self.hooks[name] = hook
        return f"{base_url}{HOOKS_PREFIX}{name}"

    # ------------------------------------------------------------------------------------- HTTP

    async def handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await parsed_body(request)
        self.calls.append(Call(method, body))
        if self.scripted.get(method):
            status, answer, headers = self.scripted[method].pop(0)
            return web.json_response(answer, status=status, headers=headers)
        if self.limits is not None and method in LIMITED:
            wait = self.limits.wait(str(body.get("channel", "")), self.clock())
            if wait > 0:
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            self._authorize(request, body)
            handler = self._methods().get(method)
            if handler is None:
                raise SlackError("unknown_method")
            return web.json_response({"ok": True, **handler(body)})
        except SlackError as exc:
            return web.json_response({"ok": False, "error": exc.error})

    async def handle_hook(self, request: web.Request) -> web.Response:
        body = await parsed_body(request)
        self.calls.append(Call(RESPONSE, body))
        hook = self.hooks.get(request.match_info["name"])
        if hook is None:
            if self.strict:
                return web.Response(status=404, text="no_service")
            return web.Response(text="ok")
        self._respond(hook, body)
        return web.Response(text="ok")

    def _authorize(self, request: web.Request, body: JSON) -> None:
        if self.token is None:
            return
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else body.get("token")
        if not given:
            raise SlackError("not_authed")
        if given != self.token:
            raise SlackError("invalid_auth")

    def _methods(self) -> dict[str, Callable[[JSON], JSON]]:
        return {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._lookup_by_email,
            "conversations.open": self._conversations_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "views.open": lambda body: self._open_view(body, push=False),
            "views.push": lambda body: self._open_view(body, push=True),
            "views.update": self._update_view,
            "views.publish": self._publish,
        }

    # ------------------------------------------------------------------------------------- methods

    def _auth_test(self, _: JSON) -> JSON:
        ws = self.workspace
        return {"url": "https://playground.slack.invalid/", "team": ws.team_name, "user": "madoguchi",
                "team_id": ws.team_id, "user_id": ws.bot_user, "bot_id": ws.bot_id, "is_enterprise_install": False}

    def _users_info(self, body: JSON) -> JSON:
        return {"user": self._user_json(str(body.get("user", "")))}

    def _lookup_by_email(self, body: JSON) -> JSON:
        person = self.workspace.by_email(str(body.get("email", "")))
        if person is None:
            raise SlackError("users_not_found")
        return {"user": self._user_json(person.id)}

    def _user_json(self, user_id: str) -> JSON:
        person = self.workspace.people.get(user_id)
        if person is None:
            raise SlackError("user_not_found")
        return {"id": person.id, "team_id": self.workspace.team_id, "name": person.email.split("@")[0],
                "real_name": person.name, "locale": person.locale, "tz": person.tz, "deleted": False,
                "is_bot": False, "profile": {"email": person.email, "real_name": person.name,
                                             "display_name": person.name}}

    def _conversations_open(self, body: JSON) -> JSON:
        users = [u for u in str(body.get("users", "")).split(",") if u]
        if len(users) != 1:
            raise SlackError("not_enough_users" if not users else "too_many_users")
        if users[0] not in self.workspace.people and self.strict:
            raise SlackError("user_not_found")
        return {"channel": {"id": self.workspace.dm(users[0]).id}}

    def _conversation(self, body: JSON) -> Conversation:
        channel = str(body.get("channel", ""))
        found = self.workspace.find_channel(channel) if channel else None
        if found is None:
            if self.strict or not channel:
                raise SlackError("channel_not_found")
            named = channel.startswith("#")  # a tests' channel, made on first use, as if it had been there
            found = self.workspace.channel(self.workspace.next_id("C") if named else channel,
                                           channel if named else f"#{channel}")
        return found

    def _post_message(self, body: JSON) -> JSON:
        conversation = self._conversation(body)
        blocks = _blocks(body)
        text = str(body.get("text") or "")
        if not text and not blocks:
            raise SlackError("no_text")
        posted = self.workspace.post(conversation, self.workspace.bot_user, text, blocks)
        return {"channel": conversation.id, "ts": posted.ts,
                "message": {"text": text, "bot_id": self.workspace.bot_id, "ts": posted.ts}}

    def _update(self, body: JSON) -> JSON:
        conversation = self._conversation(body)
        ts = str(body.get("ts", ""))
        message = self.workspace.message(conversation, ts)
        if message is None:
            if self.strict:
                raise SlackError("message_not_found")
            return {"channel": conversation.id, "ts": ts, "text": body.get("text")}
        if message.user != self.workspace.bot_user:
            raise SlackError("cant_update_message")
        if "text" in body:
            message.text = str(body.get("text") or "")
        if "blocks" in body:
            message.blocks = _blocks(body)
        message.edited = True
        self.workspace.touch()
        return {"channel": conversation.id, "ts": ts, "text": message.text}

    def _post_ephemeral(self, body: JSON) -> JSON:
        conversation = self._conversation(body)
        user = str(body.get("user", ""))
        if self.strict and user not in self.workspace.people:
            raise SlackError("user_not_found")
        posted = self.workspace.post(conversation, self.workspace.bot_user, str(body.get("text") or ""),
                                     _blocks(body), only_for=user)
        return {"message_ts": posted.ts}

    def _delete(self, body: JSON) -> JSON:
        conversation = self._conversation(body)
        ts = str(body.get("ts", ""))
        message = self.workspace.message(conversation, ts)
        if message is None:
            raise SlackError("message_not_found")
        conversation.messages.remove(message)
        self.workspace.touch()
        return {"channel": conversation.id, "ts": ts}

    def _trigger_user(self, body: JSON) -> str:
        trigger_id = str(body.get("trigger_id", ""))
        trigger = self.triggers.pop(trigger_id, None)  # a trigger opens one view, once
        if trigger is None:
            if self.strict:
                raise SlackError("invalid_trigger_id" if trigger_id else "invalid_arguments")
            return ""
        if self.clock() - trigger.issued > TRIGGER_LIFETIME:
            raise SlackError("expired_trigger_id")
        return trigger.user

    def _open_view(self, body: JSON, *, push: bool) -> JSON:
        view = _view(body)
        user = self._trigger_user(body)
        if push and user and not self.workspace.modals.get(user):
            raise SlackError("not_found")  # views.push needs a modal open under it
        opened = self.workspace.open_modal(user, view, push=push)
        return {"view": self._view_json(opened)}

    def _update_view(self, body: JSON) -> JSON:
        view = _view(body)
        view_id = str(body.get("view_id") or "")
        opened = self.workspace.find_view(view_id)
        if opened is None:
            raise SlackError("not_found")
        if body.get("hash") and body["hash"] != opened.hash:
            raise SlackError("hash_conflict")
        return {"view": self._view_json(self.workspace.replace_view(opened, view))}

    def _publish(self, body: JSON) -> JSON:
        view = _view(body)
        user = str(body.get("user_id", ""))
        if self.strict and user not in self.workspace.people:
            raise SlackError("user_not_found")
        if view.get("type") != "home":
            raise SlackError("invalid_arguments")
        return {"view": self._view_json(self.workspace.publish_home(user, view))}

    def _view_json(self, opened: OpenView) -> JSON:
        return view_payload(opened, self.workspace)

    # ------------------------------------------------------------------------------------- response_url

    def _respond(self, hook: Hook, body: JSON) -> None:
        """What Slack does with a response_url message: ephemeral by default, or replace/delete the original."""
        conversation = self.workspace.find_channel(hook.channel) or self.workspace.dm(hook.user)
        original = self.workspace.message(conversation, hook.ts) if hook.ts else None
        if _true(body.get("delete_original")) and original is not None:
            conversation.messages.remove(original)
            self.workspace.touch()
            return
        if _true(body.get("replace_original")) and original is not None:
            original.text, original.blocks, original.edited = str(body.get("text") or ""), _blocks(body), True
            self.workspace.touch()
            return
        only_for = None if body.get("response_type") == "in_channel" else hook.user
        user = self.workspace.bot_user
        self.workspace.post(conversation, user, str(body.get("text") or ""), _blocks(body), only_for=only_for)


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _blocks(body: JSON) -> list[JSON] | None:
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        blocks = _maybe_json(blocks)
    if blocks is not None and not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    return _with_block_ids(blocks) if blocks is not None else None


def _with_block_ids(blocks: list[Any]) -> list[Any]:
    """Slack gives every block without a block_id one of its own; clicks then carry it."""
    if not all(isinstance(block, dict) for block in blocks):
        raise SlackError("invalid_blocks")
    return [block if block.get("block_id") else {**block, "block_id": f"b{index}"}
            for index, block in enumerate(blocks)]


def _view(body: JSON) -> JSON:
    view = body.get("view")
    if isinstance(view, str):
        view = _maybe_json(view)
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise SlackError("invalid_arguments")
    return {**view, "blocks": _with_block_ids(list(view.get("blocks") or []))}


async def parsed_body(request: web.Request) -> dict[str, Any]:
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
