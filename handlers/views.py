"""The neutral UI vocabulary: what a handler says, before any platform renders it.

Handlers build these small frozen dataclasses; bot/slack renders them as Block Kit, bot/teams as Adaptive
Cards, the playground as HTML. The vocabulary is chosen so that both platforms can express every element
within their limits (renderers truncate long text gracefully; they never drop an element silently).
All user-facing text is already in the reader's language when it reaches a view: a view is for one person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Style = Literal["default", "primary", "danger"]


# ------------------------------------------------------------------------------------------------ display


@dataclass(frozen=True)
class Header:
    """A title line (plain text)."""

    text: str


@dataclass(frozen=True)
class Text:
    """A paragraph. `markdown` allows *bold*, _italic_, `code`, links <url|label> and line breaks."""

    text: str
    markdown: bool = True


@dataclass(frozen=True)
class Fields:
    """Label/value pairs shown side by side (two columns where the platform can)."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Context:
    """Small print under something: who, when, a hint."""

    text: str


@dataclass(frozen=True)
class Divider:
    pass


@dataclass(frozen=True)
class Confirm:
    """An "are you sure?" dialog before a button's action is sent."""

    title: str
    text: str
    confirm: str
    deny: str


@dataclass(frozen=True)
class Button:
    """A button. `action` names the handler (e.g. "approve"); `value` carries its argument (e.g. an
    assignment id), so a click is self-describing and needs no server-side session."""

    label: str
    action: str
    value: str = ""
    style: Style = "default"
    confirm: Confirm | None = None
    url: str | None = None  # a link button opens the URL instead of sending an action


@dataclass(frozen=True)
class Actions:
    """A row of buttons (at most 5 per row keeps both platforms happy)."""

    buttons: tuple[Button, ...]


# ------------------------------------------------------------------------------------------------ inputs

InputKind = Literal["text", "multiline", "number", "money", "date", "date_range", "select", "user", "file"]


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class Input:
    """One form input. `name` is the path the handler reads back (e.g. "purpose", "items[0].amount");
    `initial` prefills (a resubmission); `error` is shown under the input after a failed submit."""

    name: str
    label: str
    kind: InputKind
    required: bool = True
    hint: str | None = None
    placeholder: str | None = None
    options: tuple[Option, ...] = ()
    initial: str | date | tuple[date, date] | None = None
    min_value: str | None = None
    max_value: str | None = None
    max_length: int | None = None
    error: str | None = None
    dispatch: bool = False  # tell the handler when the value changes (e.g. show hours for hourly leave)


Block = Header | Text | Fields | Context | Divider | Actions | Input


# ------------------------------------------------------------------------------------------------ surfaces


@dataclass(frozen=True)
class Message:
    """A chat message (a DM or a channel post). `fallback` is the notification text. `refresh`: the action a
    client may send by itself to show the message as it stands now (Teams' Universal Actions refresh a card when
    it is shown); platforms that cannot ignore it."""

    fallback: str
    blocks: tuple[Block, ...] = ()
    refresh: Button | None = None


def line(text: str, *, markdown: bool = False) -> Message:
    """A message of one paragraph (plain by default: engine messages quote names and numbers that must not
    become markup)."""
    return Message(text, (Text(text, markdown=markdown),))


@dataclass(frozen=True)
class Form:
    """A modal dialog / an input card. `callback` names the handler of its submission and `state` carries
    what it needs back (e.g. the request type), so a submission is self-describing."""

    title: str
    callback: str
    blocks: tuple[Block, ...]
    submit: str
    close: str
    state: str = ""
    # the reader's language, for what a renderer adds itself (a date range's start/end labels, "...and N more");
    # None: whatever the platform says the reader reads
    locale: str | None = None


@dataclass(frozen=True)
class Home:
    """A person's home tab: their requests, what waits for them, delegations, leave."""

    blocks: tuple[Block, ...] = field(default_factory=tuple)


View = Message | Form | Home
