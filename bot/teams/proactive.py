"""Messages to Teams people unprompted (the delivery loop's Teams side): a card posted into the person's personal
chat from their stored conversation reference (`continue_conversation`), and a posted card updated in place
(`update_activity`), through botbuilder's CloudAdapter and its connector client.

Where a card landed is a message reference `{"platform": "teams", "activity_id", "conversation"}` (the
conversation reference it was sent through), stored on the outbox row like Slack's channel + ts, so every copy of
a card can be updated later. The connector's refusals become `TeamsError`s the delivery loop sorts as Slack's:
429 waits for Retry-After; 5xx and connection errors are retried with backoff; 401/403/404 (the app was removed,
the conversation or the message is gone, the bot is blocked) are permanent.
"""

from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ActivityTypes, Attachment, ConversationReference
from msrest.exceptions import ClientRequestError, HttpOperationError

from bot.teams.refs import CARD, JSON, PLATFORM, TeamsError, is_teams_ref

__all__ = ["PLATFORM", "TeamsError", "TeamsSender", "is_teams_ref"]

log = logging.getLogger(__name__)


class TeamsSender:
    """Posts and updates cards for the delivery loop. `app_id`: the bot's MICROSOFT_APP_ID (None: anonymous)."""

    def __init__(self, adapter: CloudAdapter, app_id: str | None) -> None:
        self.adapter, self.app_id = adapter, app_id

    async def post(self, address: JSON, card: JSON) -> JSON:
        """Send the card into the conversation of `address`; returns where it landed."""
        sent: list[str] = []

        async def send(context: TurnContext) -> None:
            context.activity.id = None  # the continuation's id would make this a reply to it: a new message
            answer = await context.send_activity(MessageFactory.attachment(Attachment(content_type=CARD,
                                                                                      content=card)))
            sent.append(answer.id if answer is not None and answer.id else "")

        await self._turn(address, send)
        return {"platform": PLATFORM, "activity_id": sent[0] if sent else "", "conversation": address}

    async def update(self, ref: JSON, card: JSON) -> None:
        """Replace the card at `ref` (every copy of a request's card is brought up to date this way)."""
        async def update(context: TurnContext) -> None:
            activity = Activity(type=ActivityTypes.message, id=ref["activity_id"],
                                attachments=[Attachment(content_type=CARD, content=card)])
            await context.update_activity(activity)

        await self._turn(ref["conversation"], update)

    async def _turn(self, address: JSON, logic: Any) -> None:
        """Run `logic` in a proactive turn. Its failure is caught inside the turn and raised here: the adapter's
        turn-error handler (which answers people) would otherwise swallow it, and a failed send would look sent."""
        reference = ConversationReference().deserialize(address)
        failed: list[Exception] = []

        async def guarded(context: TurnContext) -> None:
            try:
                await logic(context)
            except Exception as exc:
                failed.append(exc)

        try:
            await self.adapter.continue_conversation(reference, guarded, self.app_id or "")
            if failed:
                raise failed[0]
        except HttpOperationError as exc:
            raise _refusal(exc) from exc
        except ClientRequestError as exc:  # no answer at all (refused connection, DNS, timeout)
            raise TeamsError(0, f"no answer: {exc}") from exc


def _refusal(exc: HttpOperationError) -> TeamsError:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", {}) or {}
    retry_after: float | None = None
    try:
        retry_after = float(str(headers.get("Retry-After"))) if headers.get("Retry-After") else None
    except ValueError:
        retry_after = None
    error = getattr(getattr(exc, "error", None), "error", None)
    code = getattr(error, "code", None) or f"HTTP {status}"
    return TeamsError(status, str(code), retry_after)
