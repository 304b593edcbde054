"""The nudge digest as a neutral message, and what a snooze answers.

A digest lists what waits for its reader, oldest request first, each item as its approval card (with Approve /
Reject / Send back while the reader can act: the approver, or the manager it escalated to) under one line on why
it is in the digest (due tomorrow, due today, N business days overdue, escalated). The last block is the
"明日リマインド / Remind me tomorrow" button.

When it is first sent, items decided since the tick wrote the digest are left out, and a digest with nothing left
says nothing (None). Once posted, a decision on one of its requests updates it (`update=True`): the decided items
move to one "done" line each, without buttons (a stale button would only answer "already decided"), and when
nothing is left the digest says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Policy
from handlers.cards import approval_card, escape
from handlers.commands import command_name, prefix
from handlers.summaries import date_text
from handlers.views import Actions, Block, Button, Context, Divider, Message, Text, line
from models.people import Employee, get_employees
from workflow.calendar import BusinessCalendar
from workflow.engine import calendar_for
from workflow.queries import RequestDetails, load_details

SNOOZE = "snooze_nudges"  # the button's action; its value is the digest's outbox id
DIGEST_BLOCKS = 48  # Slack shows at most 50 blocks: whole cards only, and room for "…and N more" and the button

TITLE = LocalText.of("リマインド: 対応待ちが {n} 件あります", "Reminder: {n} requests are waiting for you")
TITLE_ONE = LocalText.of("リマインド: 対応待ちが 1 件あります", "Reminder: 1 request is waiting for you")
BEFORE_DUE = LocalText.of("⏰ 期限が近づいています（{when}）", "⏰ Due soon ({when})")
AT_DUE = LocalText.of("⏰ 本日が期限です（{when}）", "⏰ Due now ({when})")
OVERDUE = LocalText.of("⚠️ 期限を {days} 営業日過ぎています", "⚠️ {days} business day(s) overdue")
SNOOZED = LocalText.of("🔔 リマインド（期限 {when}）", "🔔 Reminder (due {when})")
ESCALATED = LocalText.of("⬆️ {name} さんの承認が {days} 営業日滞っています。代わりに判断するか、担当を変えてください。",
                         "⬆️ Waiting for {name} for {days} business day(s) past due. You may decide in their place "
                         "or have it reassigned.")
MORE = LocalText.of("…ほか {n} 件（`{cmd}承認` で一覧）", "…and {n} more (`{cmd}inbox` lists them all)")
REMIND_TOMORROW = LocalText.of("明日リマインド", "Remind me tomorrow")
DONE = LocalText.of("*対応済み*", "*Done*")
ALL_DONE = LocalText.of("✅ このリマインドの件はすべて対応済みです。", "✅ Everything in this reminder has been dealt with.")
SNOOZED_UNTIL = LocalText.of("{when} にもう一度お知らせします。", "I will remind you again on {when}.")


def digest_message(conn: Connection, policy: Policy, tz: str, person: Employee, digest_id: int,
                   payload: dict[str, Any], *, update: bool = False, platform: str | None = None) -> Message | None:
    """The digest for its reader as things stand now. First sent (`update` False): None when nothing in it is
    still open for them. An update of the posted digest: decided items as "done" lines, never None. `platform`:
    where it is shown (the inbox command is typed differently on Teams)."""
    locale, calendar = person.locale, calendar_for(policy)
    approvers = get_employees(conn, {int(i["approver_id"]) for i in payload.get("items", [])})
    at = datetime.fromisoformat(payload["at"]) if payload.get("at") else None
    cards: list[tuple[Message, str]] = []
    done: list[str] = []
    for item in payload.get("items", []):
        details = load_details(conn, policy, int(item["request_id"]))
        spec = policy.types.get(details.request.type) if details else None
        if details is None or spec is None:
            continue
        card = approval_card(details, spec, int(item["assignment_id"]), locale, tz)
        if any(isinstance(b, Actions) for b in card.blocks):  # still something for them to do
            approver = approvers.get(int(item["approver_id"]))
            cards.append((card, _why(item, details, approver, calendar, at, locale, tz)))
        else:
            done.append(f"・{escape(card.fallback)}")  # the decided card's one line: what, and where it stands
    if not cards and not update:
        return None
    title = (TITLE_ONE(locale) if len(cards) == 1 else TITLE(locale).format(n=len(cards))) if cards else ALL_DONE(locale)
    blocks: list[Block] = [Text(f"*{escape(title)}*")]
    shown = 0
    for card, why in cards:
        if len(blocks) + 2 + len(card.blocks) + (1 if done else 0) > DIGEST_BLOCKS:
            break
        blocks += [Divider(), Context(why), *card.blocks]
        shown += 1
    if shown < len(cards):
        blocks.append(Context(MORE(locale).format(n=len(cards) - shown, cmd=prefix(command_name(platform)))))
    if done and update:
        blocks += [Divider(), Context("\n".join([DONE(locale), *done]))]
    if cards:
        blocks.append(Actions((Button(REMIND_TOMORROW(locale), SNOOZE, str(digest_id)),)))
    return Message(title, tuple(blocks))


def _why(item: dict[str, Any], d: RequestDetails, approver: Employee | None, calendar: BusinessCalendar,
         at: datetime | None, locale: str, tz: str) -> str:
    """Why the item is in the digest, from its nudge kind and the step's due time."""
    found = d.person(int(item["assignment_id"]))
    due = found[0].due_at if found else None
    when = _when(due, locale, tz)
    kind = item.get("nudge")
    days = _overdue_days(due, at, calendar, tz)
    if kind == "escalation":
        name = escape(approver.name(locale)) if approver else "?"
        return ESCALATED(locale).format(name=name, days=days)
    if kind == "overdue":
        return OVERDUE(locale).format(days=days)
    if kind == "due":
        return AT_DUE(locale).format(when=when)
    if kind == "before_due":
        return BEFORE_DUE(locale).format(when=when)
    return SNOOZED(locale).format(when=when)


def _overdue_days(due: datetime | None, at: datetime | None, calendar: BusinessCalendar, tz: str) -> int:
    """Business days from the due date to the digest's moment (at least 1 once overdue)."""
    if due is None or at is None:
        return 1
    zone = ZoneInfo(tz)
    return max(calendar.count_business_days(due.astimezone(zone).date(), at.astimezone(zone).date()) - 1, 1)


def _when(moment: datetime | None, locale: str, tz: str) -> str:
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(tz))
    return f"{date_text(local.date(), locale)} {local:%H:%M}"


def snoozed_message(until: datetime, locale: str, tz: str) -> Message:
    """The ephemeral answer to "Remind me tomorrow"."""
    text = SNOOZED_UNTIL(locale).format(when=_when(until, locale, tz))
    return line(text)

