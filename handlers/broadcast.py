"""HR broadcasts in the conversation, platform-neutral: `/madoguchi broadcast` (一斉送信, お知らせ) opens the form
for HR and admins (a polite refusal for anyone else); its submission becomes a broadcast; the recipient's DM
in their language with a "確認しました / I have read" button; the acknowledgement click; the App Home section
with recent broadcasts, live counts and "remind the outstanding / 未確認者に再送"; and what each broadcast or
年5日 outbox row says (`message_for`, called from handlers/notifications.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Policy
from handlers.events import CloseForm, FormErrors, OpenForm, Reply, Response
from handlers.views import Actions, Block, Button, Context, Form, Header, Input, Message, Option, Text, line
from models import broadcasts as rows
from models import people
from models.messaging import OutboxMessage
from models.people import Employee
from workflow import broadcasts as bc
from workflow import five_day_campaign as campaign
from workflow.audiences import AUDIENCE_KINDS, FIVE_DAY_SHORTFALL, QUERIES, Audience
from workflow.engine import Engine

WORDS = ("broadcast", "一斉送信", "お知らせ")
CALLBACK = "broadcast_submit"
ACK, REMIND, OPEN_FORM = "broadcast_ack", "broadcast_remind", "open_form"
ACTIONS = (ACK, REMIND)
MESSAGE_KINDS = (*bc.KINDS, *campaign.KINDS)
HOME_SHOWN = 3
DIGEST_LINES = 30
FIELD_OF = {"send_at": "send_date", "repeat_until": "until"}  # the use case's names -> the form's inputs
_TIME = re.compile(r"^([01]?\d|2[0-3])[:：]([0-5]\d)$")

TITLE = LocalText.of("お知らせの一斉送信", "Send a broadcast")
SEND = LocalText.of("送信", "Send")
CANCEL = LocalText.of("キャンセル", "Cancel")
AUDIENCE = LocalText.of("送信先", "Send to")
AUDIENCE_NAMES = {
    "everyone": LocalText.of("全員", "Everyone"), "departments": LocalText.of("部署", "Departments"),
    "roles": LocalText.of("役割", "Roles"), "people": LocalText.of("個人", "People"),
}
TARGETS = LocalText.of("部署コード・役割・メールアドレス", "Department codes, roles or emails")
TARGETS_HINT = LocalText.of("カンマ区切り（例: SALES, BACK / hr / sato@example.jp）。「全員」と保存済みの条件では不要です。",
                            "Comma separated (e.g. SALES, BACK / hr / sato@example.jp); not for Everyone or a saved query.")
MESSAGE_JA = LocalText.of("本文（日本語）", "Message (Japanese)")
MESSAGE_EN = LocalText.of("本文（英語）", "Message (English)")
MESSAGE_HINT = LocalText.of("片方だけなら、もう一方の言語の人にも同じ文を送ります。",
                            "If you write only one, people of the other language get it too.")
ASK_ACK = LocalText.of("「確認しました」ボタン", "“I have read” button")
YES, NO = LocalText.of("付ける", "Yes"), LocalText.of("付けない", "No")
SEND_DATE = LocalText.of("送信日（空欄なら今すぐ）", "Send on (empty: now)")
SEND_TIME = LocalText.of("送信時刻（HH:MM）", "At (HH:MM)")
REPEAT = LocalText.of("繰り返し", "Repeat")
REPEAT_NONE, REPEAT_WEEKLY = LocalText.of("なし", "No"), LocalText.of("毎週（同じ曜日・時刻）", "Weekly (same day and time)")
UNTIL = LocalText.of("繰り返しの終了日", "Repeat until")
BAD_TIME = LocalText.of("時刻は 09:30 のように入力してください", "Enter a time such as 09:30")
UNTIL_NEEDS_REPEAT = LocalText.of("終了日は繰り返すときだけ指定できます", "An end date needs a repeat")
REFUSED = bc.NOT_ALLOWED

I_HAVE_READ = LocalText.of("確認しました", "I have read")
ACKED = LocalText.of("✅ 確認済み（{when}）", "✅ Acknowledged ({when})")
PLEASE_ACK = LocalText.of("内容を確認したら「確認しました」を押してください。", "Please press “I have read” once you have read it.")
REMINDER = LocalText.of("🔔 再送: まだ確認されていないお知らせです。", "🔔 Reminder: you have not acknowledged this yet.")
FROM = LocalText.of("{name} さんからのお知らせ", "A message from {name}")

FIVE_DAY_TITLE = LocalText.of("年5日の有給休暇取得のお願い", "Please take your paid leave (5 days a year)")
FIVE_DAY_TEXT = LocalText.of(
    "法律により、{deadline} までに年5日以上の有給休暇の取得が必要です。取得済み {taken} 日、あと {shortfall} 日です"
    "（残り {days_left} 日）。",
    "By law you must take at least 5 days of paid leave by {deadline}. You have taken {taken}; {shortfall} to go "
    "({days_left} days left).")
REQUEST_LEAVE = LocalText.of("休暇を申請", "Request leave")
DIGEST_TITLE = LocalText.of("チームの年5日取得状況", "Your team and the 5-day leave obligation")
DIGEST_TEXT = LocalText.of("次のメンバーは年5日の取得が足りていません。取得を促してください。",
                           "These members have not yet taken their 5 days. Please encourage them.")
DIGEST_LINE = LocalText.of("• {name}: {taken}/{required} 日（期限 {deadline}、あと {shortfall} 日）",
                           "• {name}: {taken}/{required} days (by {deadline}, {shortfall} to go)")
DIGEST_MORE = LocalText.of("…ほか {n} 人", "…and {n} more")

HOME_TITLE = LocalText.of("最近のお知らせ", "Your recent broadcasts")
HOME_LINE = LocalText.of("#{id} {text}", "#{id} {text}")
HOME_COUNTS = LocalText.of("配信 {delivered}/{total}・確認 {acknowledged}・未確認 {outstanding}・失敗 {failed}",
                           "delivered {delivered}/{total} · acknowledged {acknowledged} · outstanding {outstanding}"
                           " · failed {failed}")
HOME_SCHEDULED = LocalText.of("送信予定: {when}", "Scheduled: {when}")
REMIND_BUTTON = LocalText.of("未確認者に再送", "Remind the outstanding")
NO_LONGER_VALID = LocalText.of("このボタンはもう使えません。", "This button is no longer valid.")


def is_command(word: str) -> bool:
    return word.casefold() in WORDS


# ---------------------------------------------------------------------------------------------- the form


def open_form(person: Employee) -> Response:
    """The form for HR and admins; a polite refusal for everyone else."""
    if not bc.may_send(person):
        return _reply(REFUSED(person.locale))
    return OpenForm(form(person.locale))


def form(locale: str, errors: Mapping[str, str] | None = None) -> Form:
    errors = errors or {}
    audiences = [Option(k, AUDIENCE_NAMES[k](locale)) for k in AUDIENCE_KINDS if k != "query"]
    audiences += [Option(key, label(locale)) for key, label in QUERIES.items()]
    inputs = [
        Input("audience", AUDIENCE(locale), "select", options=tuple(audiences), initial="everyone"),
        Input("targets", TARGETS(locale), "text", required=False, hint=TARGETS_HINT(locale)),
        Input("message_ja", MESSAGE_JA(locale), "multiline", required=False, max_length=bc.MESSAGE_LIMIT,
              hint=MESSAGE_HINT(locale)),
        Input("message_en", MESSAGE_EN(locale), "multiline", required=False, max_length=bc.MESSAGE_LIMIT),
        Input("ack", ASK_ACK(locale), "select", options=(Option("yes", YES(locale)), Option("no", NO(locale))),
              initial="yes"),
        Input("send_date", SEND_DATE(locale), "date", required=False),
        Input("send_time", SEND_TIME(locale), "text", required=False, placeholder="09:00"),
        Input("repeat", REPEAT(locale), "select", initial="none",
              options=(Option("none", REPEAT_NONE(locale)), Option("weekly", REPEAT_WEEKLY(locale)))),
        Input("until", UNTIL(locale), "date", required=False),
    ]
    blocks = tuple(replace(i, error=errors.get(i.name)) for i in inputs)
    return Form(TITLE(locale), CALLBACK, blocks, SEND(locale), CANCEL(locale), locale=locale)


def on_submit(engine: Engine, person: Employee, values: Mapping[str, Any]) -> Response:
    """The form sent: a broadcast made (and sent, if now), or the errors under their inputs."""
    locale = person.locale
    if not bc.may_send(person):
        return CloseForm(_reply(REFUSED(locale)))
    draft, errors = read_draft(values, person.id, engine.policy.company.timezone, engine.clock())
    if draft is None:
        return FormErrors({k: v(locale) for k, v in errors.items()}, form(locale))
    result = bc.create(engine.db, engine.policy, draft, engine.clock())
    if not result.ok:
        if not result.errors:
            return CloseForm(_reply(result.message(locale)))
        return FormErrors({FIELD_OF.get(k, k): v(locale) for k, v in result.errors.items()}, form(locale))
    return CloseForm(_reply(result.message(locale)))


def read_draft(values: Mapping[str, Any], author_id: int, tz: str,
               now: datetime) -> tuple[bc.Draft | None, dict[str, LocalText]]:
    """The form's answers as a Draft, or errors about what could not even be read (a time like 25:00)."""
    kind = str(values.get("audience") or "everyone")
    text = values.get("targets")
    audience = (Audience("query", (FIVE_DAY_SHORTFALL,)) if kind == FIVE_DAY_SHORTFALL
                else Audience.parse(kind, text if isinstance(text, str) else None))
    errors: dict[str, LocalText] = {}
    if audience is None:
        errors["audience"] = LocalText.of("送信先の種類を選んでください", "Choose who to send to")
    send_at = _send_at(values.get("send_date"), values.get("send_time"), tz, now, errors)
    until = _date(values.get("until"))
    weekly = values.get("repeat") == "weekly"
    if until is not None and not weekly:
        errors["until"] = UNTIL_NEEDS_REPEAT
    if errors or audience is None:
        return None, errors
    repeat = bc.weekly(send_at or now, tz) if weekly else None
    return bc.Draft(author_id, audience, str(values.get("message_ja") or ""), str(values.get("message_en") or ""),
                    values.get("ack", "yes") != "no", send_at, repeat, until), {}


def _send_at(day: Any, clock: Any, tz: str, now: datetime, errors: dict[str, LocalText]) -> datetime | None:
    on = _date(day)
    at: time | None = None
    if isinstance(clock, str) and clock.strip():
        match = _TIME.match(clock.strip())
        if match is None:
            errors["send_time"] = BAD_TIME
            return None
        at = time(int(match[1]), int(match[2]))
    if on is None and at is None:
        return None
    zone = ZoneInfo(tz)
    local_now = now.astimezone(zone)
    return datetime.combine(on or local_now.date(), at or local_now.time().replace(second=0, microsecond=0),
                            tzinfo=zone)


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------- clicks


def on_click(engine: Engine, person: Employee, action: str, value: str) -> Response:
    """"I have read" (the recipient) or "remind the outstanding" (HR, from the App Home)."""
    target = int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None
    if target is None:
        return _reply(NO_LONGER_VALID(person.locale))
    if action == ACK:
        result = bc.acknowledge(engine.db, target, person.id, engine.clock())
    else:
        result = bc.remind_outstanding(engine.db, target, person.id, engine.clock())
    return _reply(result.message(person.locale))


# ---------------------------------------------------------------------------------------------- messages


def message_for(conn: Connection, policy: Policy, row: OutboxMessage) -> tuple[Message, str] | None:
    """What a broadcast or 年5日 row says now (acknowledged or not), in the recipient's language."""
    person = people.get_employee(conn, row.recipient_id)
    if person is None:
        return None
    if row.kind == campaign.NUDGE_KIND:
        return _five_day_nudge(row.payload, person.locale), person.locale
    if row.kind == campaign.DIGEST_KIND:
        return _digest(conn, row.payload, person.locale), person.locale
    recipient = rows.get_recipient(conn, int(row.payload.get("recipient") or 0))
    b = rows.get_broadcast(conn, int(row.payload.get("broadcast") or 0))
    if recipient is None or b is None:
        return None
    author = people.get_employee(conn, b.author_id)
    reminder = row.kind == bc.REMINDER_KIND
    return broadcast_message(b, recipient, author, person, reminder), person.locale


def broadcast_message(b: rows.Broadcast, recipient: rows.Recipient, author: Employee | None, person: Employee,
                      reminder: bool = False) -> Message:
    locale = person.locale
    text = b.message_en if locale == "en" else b.message_ja
    blocks: list[Block] = []
    if reminder and recipient.acknowledged_at is None:
        blocks.append(Context(REMINDER(locale)))
    if author is not None:
        blocks.append(Context(FROM(locale).format(name=author.name(locale))))
    blocks.append(Text(text, markdown=False))
    if b.ack_required and recipient.acknowledged_at is None:
        blocks += [Context(PLEASE_ACK(locale)),
                   Actions((Button(I_HAVE_READ(locale), ACK, str(recipient.id), style="primary"),))]
    elif b.ack_required and recipient.acknowledged_at is not None:
        when = recipient.acknowledged_at.astimezone(ZoneInfo(person.timezone)).strftime("%Y-%m-%d %H:%M")
        blocks.append(Context(ACKED(locale).format(when=when)))
    return Message(text[:150], tuple(blocks))


def _five_day_nudge(payload: Mapping[str, Any], locale: str) -> Message:
    title = FIVE_DAY_TITLE(locale)
    blocks: list[Block] = [Header(title), Text(FIVE_DAY_TEXT(locale).format(**_figures(payload)), markdown=False)]
    if payload.get("leave_type"):
        blocks.append(Actions((Button(REQUEST_LEAVE(locale), OPEN_FORM, str(payload["leave_type"]),
                                      style="primary"),)))
    return Message(title, tuple(blocks))


def _digest(conn: Connection, payload: Mapping[str, Any], locale: str) -> Message:
    team = list(payload.get("team") or [])
    names = people.get_employees(conn, {int(t["employee"]) for t in team})
    lines = [DIGEST_LINE(locale).format(name=names[int(t["employee"])].name(locale), **_figures(t))
             for t in team[:DIGEST_LINES] if int(t["employee"]) in names]
    if len(team) > DIGEST_LINES:
        lines.append(DIGEST_MORE(locale).format(n=len(team) - DIGEST_LINES))
    title = DIGEST_TITLE(locale)
    return Message(title, (Header(title), Text(DIGEST_TEXT(locale), markdown=False),
                           Text("\n".join(lines), markdown=False)))


def _figures(payload: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("taken", "required", "shortfall", "deadline", "days_left")
    return {k: payload.get(k, "") for k in keys}


# ---------------------------------------------------------------------------------------------- App Home


def home_section(engine: Engine, person: Employee) -> list[Block]:
    """HR's recent broadcasts with live counts and a "remind the outstanding" button; [] for others."""
    if not bc.may_send(person):
        return []
    locale = person.locale
    with engine.db.unit_of_work(write=False) as conn:
        reports = list(bc.recent(conn, HOME_SHOWN, author_id=person.id))
    if not reports:
        return []
    blocks: list[Block] = [Header(HOME_TITLE(locale))]
    zone = ZoneInfo(person.timezone)
    for r in reports:
        b = r.broadcast
        text = (b.message_en if locale == "en" else b.message_ja).replace("\n", " ")
        blocks.append(Text(HOME_LINE(locale).format(id=b.id, text=_cut(text, 120)), markdown=False))
        if r.occurrence_id is None and b.next_at is not None:
            when = b.next_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            blocks.append(Context(HOME_SCHEDULED(locale).format(when=when)))
            continue
        blocks.append(Context(HOME_COUNTS(locale).format(
            delivered=r.delivered, total=len(r.recipients), acknowledged=r.acknowledged,
            outstanding=r.outstanding, failed=r.failed)))
        if r.outstanding:
            blocks.append(Actions((Button(REMIND_BUTTON(locale), REMIND, str(b.id)),)))
    return blocks


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reply(text: str) -> Reply:
    return Reply(line(text))
