"""What each outbox message says, as a neutral Message, in the recipient's language.

Cards are rebuilt from a fresh read of the request when the message leaves, not when it was enqueued: a message
delivered late (after a retry, or behind a rate limit) shows where the request stands now, and every copy of a
request's card says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Policy
from handlers import broadcast
from handlers.cards import approval_card, decided_card, requester_card, shared_queue_card
from handlers.nudges import digest_message
from handlers.views import Message
from models import messaging
from models import requests as rq
from models.messaging import OutboxMessage
from models.people import Employee, get_employee
from workflow import delivery
from workflow.nudges import DIGEST_KIND
from workflow.queries import RequestDetails, load_details

CARD_KINDS = ("approval_requested", "queue_posted")
REQUESTER_KINDS = ("submitted", "step_decided", "request_sent_back", "request_completed")
FYI_NOTE = LocalText.of("回覧です。ご確認ください（操作は不要です）。", "For your information; no action needed.")


@dataclass
class Reads:
    """What one delivery step has read already (in one transaction): a request's details are read once for the
    row and every card it refreshes, not once per card.

    `earlier`: details that earlier steps read (the caller keeps it across the rows of a batch: a decision's
    rows are about one request). One is used again only while the request's version is the same, checked once
    per step: every change to a request, its route or its decisions bumps the version (workflow/engine.py), so
    the card is as fresh as a new read, for one statement instead of five."""

    details: dict[int, RequestDetails | None] = field(default_factory=dict)
    earlier: dict[int, RequestDetails] = field(default_factory=dict)

    def of(self, conn: Connection, policy: Policy, request_id: int) -> RequestDetails | None:
        if request_id not in self.details:
            known = self.earlier.get(request_id)
            if known is not None and rq.version_of(conn, request_id) == known.request.version:
                self.details[request_id] = known
            else:
                found = load_details(conn, policy, request_id)
                self.details[request_id] = found
                if found is not None:
                    self.earlier[request_id] = found
        return self.details[request_id]


def message_for(conn: Connection, policy: Policy, tz: str, row: OutboxMessage,
                reads: Reads | None = None, platform: str | None = None) -> tuple[Message, str] | None:
    """The message for an outbox row and the recipient's locale; None when the request (or its type, or the
    recipient) is gone, so there is nothing meaningful to say. `platform`: where it goes (slack | teams)."""
    if row.kind in broadcast.MESSAGE_KINDS:  # HR broadcasts and the 年5日 campaign say their own thing
        return broadcast.message_for(conn, policy, row)
    person = get_employee(conn, row.recipient_id)
    if row.kind == DIGEST_KIND and person is not None:  # one message about several requests (workflow.nudges)
        digest = digest_message(conn, policy, person.timezone or tz, person, row.id, row.payload,
                                platform=platform)
        return (digest, person.locale) if digest is not None else None
    request_id = row.request_id or row.payload.get("request_id")
    if person is None or request_id is None:
        return None
    return _card(conn, policy, person.timezone or tz, person, int(request_id), row.kind, row.payload,
                 reads or Reads())


def approver_card(conn: Connection, policy: Policy, tz: str, recipient_id: int, request_id: int,
                  assignment_id: int, reads: Reads | None = None) -> tuple[Message, str] | None:
    """The approver's card for an assignment as it should look now (buttons only while they can act)."""
    person = get_employee(conn, recipient_id)
    if person is None:
        return None
    return _card(conn, policy, person.timezone or tz, person, request_id, CARD_KINDS[0],
                 {"assignment_id": assignment_id}, reads or Reads())


def shared_card(conn: Connection, policy: Policy, request_id: int, assignment_id: int,
                reads: Reads | None = None) -> tuple[Message, str] | None:
    """A queue's card in its channel, as it should look now, in the company's language and zone (a channel has
    many readers)."""
    details = (reads or Reads()).of(conn, policy, request_id)
    spec = policy.types.get(details.request.type) if details is not None else None
    if details is None or spec is None:
        return None
    locale, tz = policy.company.default_locale, policy.company.timezone
    return shared_queue_card(details, spec, assignment_id, locale, tz), locale


def sent_cards(conn: Connection, policy: Policy, tz: str, request_id: int,
               reads: Reads | None = None) -> list[tuple[dict[str, Any], Message, str]]:
    """Every approver card of the request that was posted: where it is, and what it should show now."""
    found = []
    reads = reads or Reads()
    for assignment_id, recipient_id, ref in delivery.sent_cards(conn, request_id):
        card = (shared_card(conn, policy, request_id, assignment_id, reads) if ref.get("shared")
                else approver_card(conn, policy, tz, recipient_id, request_id, assignment_id, reads))
        if card is not None:
            found.append((ref, *card))
    return found


def sent_digests(conn: Connection, policy: Policy, tz: str,
                 request_id: int) -> list[tuple[dict[str, Any], Message, str]]:
    """Every posted nudge digest that shows the request: where it is, and what it should show now (its decided
    items as done lines)."""
    found = []
    for row in messaging.sent_digests(conn, request_id):
        person = get_employee(conn, row.recipient_id)
        if person is None or not row.message_ref:
            continue
        digest = digest_message(conn, policy, person.timezone or tz, person, row.id, row.payload, update=True,
                                platform=row.platform)
        if digest is not None:
            found.append((dict(row.message_ref), digest, person.locale))
    return found


def _card(conn: Connection, policy: Policy, tz: str, person: Employee, request_id: int, kind: str,
          payload: dict[str, Any], reads: Reads) -> tuple[Message, str] | None:
    details = reads.of(conn, policy, request_id)
    spec = policy.types.get(details.request.type) if details is not None else None
    if details is None or spec is None:
        return None
    locale = person.locale
    if kind in CARD_KINDS and payload.get("assignment_id") is not None and payload.get("channel"):
        return shared_card(conn, policy, request_id, int(payload["assignment_id"]), reads)
    if kind in CARD_KINDS and payload.get("assignment_id") is not None:
        return approval_card(details, spec, int(payload["assignment_id"]), locale, tz), locale
    if kind == "fyi":
        return decided_card(details, spec, locale, tz, note=FYI_NOTE), locale
    if kind in REQUESTER_KINDS:
        return requester_card(details, spec, locale, tz), locale
    # card_update, and anything newer than this module: the card without buttons
    return decided_card(details, spec, locale, tz), locale
