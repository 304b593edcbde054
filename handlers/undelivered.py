"""What an admin sees of messages that could not be delivered: delivery records a permanent error (the person
left Slack, the bot is not in the queue's channel, a scope is missing) on the outbox row instead of retrying
forever; this puts those rows in front of someone who can fix the cause (App Home of admins; the command line
has `madoguchi outbox dead` and `madoguchi outbox retry ID`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from config.i18n import LocalText
from handlers.cards import escape
from handlers.views import Block, Context, Header, Text
from models.people import Employee
from workflow import delivery
from workflow.engine import Engine

SHOWN = 5
TITLE = LocalText.of("配信できなかったメッセージ", "Undelivered messages")
COUNT = LocalText.of("{n} 件のメッセージが届けられていません。原因を直したら `madoguchi outbox retry ID` で再送できます。",
                     "{n} messages could not be delivered. Once the cause is fixed, `madoguchi outbox retry ID` "
                     "sends one again.")
LINE = "#{id} {when} {kind} → {name}{number}: {error}"  # the same in both languages


def home_section(engine: Engine, person: Employee) -> list[Block]:
    """For admins, when anything is undelivered: how many, and the latest few with their errors; else []."""
    if not person.has_role("admin"):
        return []
    with engine.db.unit_of_work(write=False) as conn:
        count, latest = delivery.undelivered(conn, SHOWN)
    if not count:
        return []
    locale, zone = person.locale, ZoneInfo(person.timezone)
    lines = [LINE.format(id=u.id, when=u.created_at.astimezone(zone).strftime("%m-%d %H:%M"), kind=u.kind,
                                 name=escape(u.recipient_name(locale)),
                                 number=f" ({u.number})" if u.number else "", error=escape(u.error[:120]))
             for u in latest]
    return [Header(TITLE(locale)), Context(COUNT(locale).format(n=count)), Text("\n".join(lines))]
