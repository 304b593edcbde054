"""The playground's web page and the small JSON API it talks to: who is in the workspace, what one person sees
(long-polled), and what they do (type a line, click, submit or close a modal, open App Home, use the shortcut).
The page never talks to the bot directly: every action goes through Interactions as a signed Slack payload.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.playground.interactions import ActionRefused, Interactions
from bot.playground.workspace import BOT_NAME, JSON, Conversation, Workspace

STATIC = Path(__file__).parent / "static"
POLL_SECONDS = 20.0
PAGE_API = "/playground/api"


class Page:
    def __init__(self, interactions: Interactions, command: str = "/madoguchi") -> None:
        self.interactions = interactions
        self.command = command

    @property
    def workspace(self) -> Workspace:
        return self.interactions.workspace

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_static("/playground/static", STATIC, append_version=False)
        app.router.add_get(f"{PAGE_API}/people", self._people)
        app.router.add_get(f"{PAGE_API}/state", self._state)
        acts: dict[str, Callable[[JSON], Awaitable[None]]] = {
            "message": self._message, "action": self._action, "submit": self._submit, "close": self._close,
            "home": self._home, "shortcut": self._shortcut,
        }
        for name, act in acts.items():
            app.router.add_post(f"{PAGE_API}/{name}", _acting(act))

    # ------------------------------------------------------------------------------------- reading

    async def _index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _people(self, request: web.Request) -> web.Response:
        ws = self.workspace
        # the demo's clock control (bot/playground/clock.py), when `madoguchi demo` added it
        clock = any(r.canonical == f"{PAGE_API}/clock" for r in request.app.router.resources())
        people = [{"id": p.id, "name": p.name, "name_en": p.name_en, "department": p.department,
                   "roles": list(p.roles), "locale": p.locale} for p in ws.people.values()]
        return _json({"people": people, "bot": {"id": ws.bot_user, "name": BOT_NAME}, "command": self.command,
                      "team": {"id": ws.team_id, "name": ws.team_name}, "clock": clock})

    async def _state(self, request: web.Request) -> web.Response:
        user = request.query.get("user", "")
        if user not in self.workspace.people:
            return _json({"ok": False, "error": f"nobody called {user!r} in this workspace"}, status=404)
        after = request.query.get("after")
        if after is not None and after.lstrip("-").isdigit():
            await self.workspace.wait_past(int(after), POLL_SECONDS)
        return _json(self.seen_by(user))

    def seen_by(self, user: str) -> JSON:
        """Everything one person sees: their conversations (their own ephemerals only), modals and home."""
        ws = self.workspace
        ws.dm(user)  # everyone has a DM with the bot, even before its first message
        conversations = [_conversation(c, user, ws) for c in ws.conversations.values() if c.visible_to(user)]
        conversations.sort(key=lambda c: (c["kind"] != "dm", c["name"]))
        modals = [{"id": v.id, "view": {**v.view, "id": v.id, "hash": v.hash}, "errors": v.errors}
                  for v in ws.modals.get(user, [])]
        home = ws.homes.get(user)
        return {"version": ws.version, "user": user, "conversations": conversations, "modals": modals,
                "home": {**home.view, "id": home.id, "hash": home.hash} if home else None}

    # ------------------------------------------------------------------------------------- acting

    async def _message(self, body: JSON) -> None:
        text = str(body.get("text") or "").strip()
        if not text:
            raise ActionRefused("nothing to send")
        await self.interactions.message(_text(body, "user"), str(body.get("channel") or ""), text)

    async def _action(self, body: JSON) -> None:
        action = body.get("action")
        source = body.get("source")
        if not isinstance(action, dict) or not isinstance(source, dict):
            raise ActionRefused("an action needs `action` and `source` objects")
        state = body.get("state") if isinstance(body.get("state"), dict) else None
        await self.interactions.click(_text(body, "user"), source, str(body.get("block_id") or ""), action, state)

    async def _submit(self, body: JSON) -> None:
        values = body.get("values")
        if not isinstance(values, dict):
            raise ActionRefused("a submission needs `values` (view.state.values)")
        await self.interactions.submit(_text(body, "user"), _text(body, "view_id"), values)

    async def _close(self, body: JSON) -> None:
        await self.interactions.close_view(_text(body, "user"), _text(body, "view_id"))

    async def _home(self, body: JSON) -> None:
        await self.interactions.home_opened(_text(body, "user"))

    async def _shortcut(self, body: JSON) -> None:
        await self.interactions.shortcut(_text(body, "user"), str(body.get("callback_id") or "new_request"))


def _acting(act: Callable[[JSON], Awaitable[None]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A page action: bad JSON or a refused action answer {"ok": false, "error": ...}; nothing else changes."""

    async def handle(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _json({"ok": False, "error": "the body must be a JSON object"}, status=400)
        if not isinstance(body, dict):
            return _json({"ok": False, "error": "the body must be a JSON object"}, status=400)
        try:
            await act(body)
        except ActionRefused as exc:
            return _json({"ok": False, "error": str(exc)}, status=409)
        return _json({"ok": True})

    return handle


def _text(body: JSON, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ActionRefused(f"`{key}` is missing")
    return value


def _conversation(conversation: Conversation, user: str, ws: Workspace) -> JSON:
    messages = [{"ts": m.ts, "user": m.user, "name": _sender(m.user, ws), "text": m.text, "blocks": m.blocks,
                 "ephemeral": m.only_for is not None, "edited": m.edited}
                for m in conversation.messages if m.only_for in (None, user)]
    return {"id": conversation.id, "kind": conversation.kind, "name": conversation.name, "messages": messages}


def _sender(user: str, ws: Workspace) -> str:
    if user == ws.bot_user:
        return BOT_NAME
    person = ws.people.get(user)
    return person.name if person else user


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, ensure_ascii=False), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})
