"""What a use case answers: done (and what changed), or why nothing changed, in both languages."""

from __future__ import annotations

from dataclasses import dataclass, field

from config.i18n import LocalText
from models.requests import Request


@dataclass(frozen=True)
class Outcome:
    """ok=False always means the database was left exactly as it was."""

    ok: bool
    code: str  # e.g. submitted, approved, invalid, already_decided, not_allowed, self_approval, not_found
    message: LocalText
    request: Request | None = None
    errors: dict[str, LocalText] = field(default_factory=dict)  # per form field, for inline display
    warnings: list[LocalText] = field(default_factory=list)
    # assignments waiting for someone after this action (what the new cards' buttons will carry)
    open_assignments: tuple[int, ...] = ()


def refused(code: str, message: LocalText, request: Request | None = None,
            errors: dict[str, LocalText] | None = None) -> Outcome:
    return Outcome(False, code, message, request, errors or {})
