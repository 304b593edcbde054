"""The playground's Slack workspace, in memory: people, conversations and their messages, open modals and App
Home views. The Web API emulator (webapi.py) changes it for the bot; the page (page.py) shows it to people and
waits on `changed` for news. Nothing here is persisted: the bot's own state lives in its database.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
BOT_NAME = "madoguchi"
APP_ID = "A0PLAYGRND"


@dataclass(frozen=True)
class Person:
    """A member of the workspace, as users.info shows them."""

    id: str
    name: str
    email: str
    name_en: str = ""
    department: str = ""
    roles: tuple[str, ...] = ()
    locale: str = "ja-JP"
    tz: str = "Asia/Tokyo"


@dataclass
class Posted:
    """A message in a conversation. `only_for`: an ephemeral message only that person sees."""

    ts: str
    user: str
    text: str
    blocks: list[JSON] | None = None
    only_for: str | None = None
    edited: bool = False


@dataclass
class Conversation:
    """A DM between the bot and one person (`members` = that person), or a channel (no members: everyone)."""

    id: str
    kind: str  # "dm" | "channel"
    name: str
    members: tuple[str, ...] = ()
    messages: list[Posted] = field(default_factory=list)

    def visible_to(self, user: str) -> bool:
        return self.kind == "channel" or user in self.members


@dataclass
class OpenView:
    """A modal in someone's stack, or their App Home."""

    id: str
    user: str
    view: JSON
    hash: str
    errors: dict[str, str] = field(default_factory=dict)
    previous: str | None = None  # the view under this one in the stack


def view_payload(opened: OpenView, ws: Workspace, values: JSON | None = None) -> JSON:
    """A view as Slack shows it (views.* answers) and sends it back (in payloads), with the state given."""
    return {**opened.view, "id": opened.id, "team_id": ws.team_id, "hash": opened.hash, "app_id": APP_ID,
            "bot_id": ws.bot_id, "previous_view_id": opened.previous, "root_view_id": opened.id,
            "state": {"values": values or {}}}


class Workspace:
    """One Slack workspace with one bot. Every change bumps `version` and wakes the page's long polls."""

    def __init__(self, team_id: str = "T0PLAYGRND", team_name: str = "Playground", bot_user: str = "U0MADOGUCHI",
                 bot_id: str = "B0MADOGUCHI") -> None:
        self.team_id, self.team_name, self.bot_user, self.bot_id = team_id, team_name, bot_user, bot_id
        self.people: dict[str, Person] = {}
        self.conversations: dict[str, Conversation] = {}
        self.modals: dict[str, list[OpenView]] = {}  # user -> stack, top last
        self.homes: dict[str, OpenView] = {}
        self.version = 0
        self._changed: asyncio.Condition | None = None
        self._ids = itertools.count(1)
        self._last_ts = 0.0

    # ------------------------------------------------------------------------------------- people

    def add_person(self, person: Person) -> None:
        self.people[person.id] = person
        self.touch()

    def by_email(self, email: str) -> Person | None:
        wanted = email.strip().lower()
        return next((p for p in self.people.values() if p.email.lower() == wanted), None)

    # ------------------------------------------------------------------------------------- conversations

    def dm(self, user: str) -> Conversation:
        """The bot's DM with a person, made on first use; its id is stable, like Slack's."""
        channel_id = f"D{user}"
        if channel_id not in self.conversations:
            self.conversations[channel_id] = Conversation(channel_id, "dm", BOT_NAME, (user,))
        return self.conversations[channel_id]

    def channel(self, channel_id: str, name: str) -> Conversation:
        if channel_id not in self.conversations:
            self.conversations[channel_id] = Conversation(channel_id, "channel", name)
            self.touch()
        return self.conversations[channel_id]

    def find_channel(self, channel: str) -> Conversation | None:
        """A conversation by id, by `#name`, or a person's user id (Slack posts those to the bot's DM)."""
        if channel in self.conversations:
            return self.conversations[channel]
        if channel in self.people:
            return self.dm(channel)
        if channel.startswith("D") and channel[1:] in self.people:  # a DM not opened yet (ids are stable)
            return self.dm(channel[1:])
        name = channel if channel.startswith("#") else f"#{channel}"
        return next((c for c in self.conversations.values() if c.name == name), None)

    def post(self, conversation: Conversation, user: str, text: str, blocks: list[JSON] | None = None,
             only_for: str | None = None) -> Posted:
        posted = Posted(self.next_ts(), user, text, blocks, only_for)
        conversation.messages.append(posted)
        self.touch()
        return posted

    def message(self, conversation: Conversation, ts: str) -> Posted | None:
        return next((m for m in conversation.messages if m.ts == ts), None)

    def next_ts(self) -> str:
        # Slack's ts: seconds.micro, unique and increasing within a channel
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    # ------------------------------------------------------------------------------------- views

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def open_modal(self, user: str, view: JSON, *, push: bool = False) -> OpenView:
        stack = self.modals.setdefault(user, [])
        if not push:
            stack.clear()
        opened = OpenView(self.next_id("V"), user, view, self.next_id("h"), previous=stack[-1].id if stack else None)
        stack.append(opened)
        self.touch()
        return opened

    def find_view(self, view_id: str) -> OpenView | None:
        for stack in self.modals.values():
            for opened in stack:
                if opened.id == view_id:
                    return opened
        return next((home for home in self.homes.values() if home.id == view_id), None)

    def replace_view(self, opened: OpenView, view: JSON) -> OpenView:
        opened.view, opened.hash, opened.errors = view, self.next_id("h"), {}
        self.touch()
        return opened

    def close_modal(self, user: str, view_id: str | None = None, *, all_views: bool = False) -> None:
        stack = self.modals.get(user, [])
        if all_views:
            stack.clear()
        elif stack and (view_id is None or stack[-1].id == view_id):
            stack.pop()
        self.touch()

    def publish_home(self, user: str, view: JSON) -> OpenView:
        home = self.homes.get(user)
        if home is None:
            home = self.homes[user] = OpenView(self.next_id("V"), user, view, self.next_id("h"))
        else:
            home.view, home.hash = view, self.next_id("h")
        self.touch()
        return home

    # ------------------------------------------------------------------------------------- news

    def touch(self) -> None:
        self.version += 1
        if self._changed is not None:
            condition = self._changed

            async def notify() -> None:
                async with condition:
                    condition.notify_all()

            try:
                asyncio.get_running_loop().create_task(notify())
            except RuntimeError:  # no loop (setting up before serving): nobody is waiting
                pass

    async def wait_past(self, version: int, timeout: float) -> None:
        """Return once the workspace is newer than `version`, or after `timeout` seconds."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        condition = self._changed
        try:
            async with condition:
                await asyncio.wait_for(condition.wait_for(lambda: self.version > version), timeout)
        except TimeoutError:
            pass
