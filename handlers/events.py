"""What the platform edges hand to the conversation, and what they get back: neutral events and responses.

An edge (Slack, Teams, the playground) turns a platform payload into one of these events, calls the
conversation (synchronously, through one thread hop), and carries out the response on its platform: open a
modal or card, answer ephemerally, show inline errors, update a message. Every event says who acted as the
platform knows them (`Who`); the conversation maps that to an employee.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handlers.views import Form, Message


@dataclass(frozen=True)
class Who:
    """A person as a platform knows them. `email` and `locale` come from the platform's profile when the edge
    has them (Slack users.info), and let the conversation recognise and remember a new chat identity."""

    platform: str  # slack | teams | playground
    workspace: str  # Slack team id, Teams tenant id
    user_id: str
    email: str | None = None
    locale: str | None = None


@dataclass(frozen=True)
class Place:
    """Where typed words were written, when it is not the person's own chat with the bot: a team channel (or a
    group chat). `address` is how the platform reaches it unprompted (opaque here: a Teams conversation
    reference); `name` is the channel's name as the platform gave it."""

    kind: str  # channel | group
    address: dict[str, Any]
    name: str | None = None


@dataclass(frozen=True)
class CommandEvent:
    """Typed words: the text after the slash command, or a chat message to the bot (`place`: written in a
    channel or group chat rather than to the bot directly)."""

    who: Who
    text: str
    place: Place | None = None


@dataclass(frozen=True)
class ClickEvent:
    """A button: `action` and `value` as the view's Button carried them."""

    who: Who
    action: str
    value: str


@dataclass(frozen=True)
class SubmitEvent:
    """A form submitted: `callback` and `state` as the Form carried them, `values` keyed by Input.name."""

    who: Who
    callback: str
    state: str
    values: dict[str, Any] = field(default_factory=dict)


Event = CommandEvent | ClickEvent | SubmitEvent


@dataclass(frozen=True)
class OpenForm:
    """Open this form (a modal; a card with inputs on Teams)."""

    form: Form


@dataclass(frozen=True)
class Reply:
    """Answer the person. `ephemeral`: only they see it, where they acted (a stale click, a refusal)."""

    message: Message
    ephemeral: bool = True


@dataclass(frozen=True)
class FormErrors:
    """Keep the form open and show these messages under its inputs ({Input.name: text}). `form` is the form
    that was submitted, for a platform that cannot keep it open and shows it again instead (a Teams card is
    replaced by the same form with the errors and what was typed); Slack keeps its modal and needs no form."""

    errors: dict[str, str]
    form: Form | None = None


@dataclass(frozen=True)
class CardNow:
    """The card the person's client asked about (a Teams refresh), as it stands now for them."""

    message: Message


@dataclass(frozen=True)
class CloseForm:
    """Close the form; optionally tell the person something (e.g. "Submitted LV-2026-0001")."""

    reply: Reply | None = None


Response = OpenForm | Reply | FormErrors | CloseForm | CardNow
