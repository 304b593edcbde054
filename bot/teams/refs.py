"""What the rest of the process knows of Teams without loading botbuilder: the platform's name, where a card
landed (`is_teams_ref`), the connector's refusals (`TeamsError`) and what delivery needs of a sender. botbuilder
(about 30 MB and most of a second of imports) is loaded only when Teams is used (bot/teams/lazy.py)."""

from __future__ import annotations

from typing import Any, Protocol

from config.settings import Settings

PLATFORM = "teams"
MESSAGES = "/api/messages"  # where Teams (the Bot Framework) posts activities
CARD = "application/vnd.microsoft.card.adaptive"
JSON = dict[str, Any]
PERMANENT = frozenset({401, 403, 404, 410})


class TeamsError(Exception):
    """The connector refused a call: `status` is its HTTP status (0: no answer), `retry_after` its Retry-After."""

    def __init__(self, status: int, error: str, retry_after: float | None = None) -> None:
        super().__init__(f"Teams connector: {error}")
        self.status, self.error, self.retry_after = status, error, retry_after

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT


def is_teams_ref(ref: JSON | None) -> bool:
    return bool(ref) and isinstance(ref, dict) and ref.get("platform") == PLATFORM


class CardSender(Protocol):
    """Posts and updates cards unprompted (bot/teams/proactive.py's TeamsSender)."""

    async def post(self, address: JSON, card: JSON) -> JSON: ...

    async def update(self, ref: JSON, card: JSON) -> None: ...


def anonymous(settings: Settings) -> bool:
    """No bot credentials: nobody is authenticated (local use only)."""
    return not settings.microsoft_app_id
