"""HR broadcasts with acknowledgement: create, fire when due, acknowledge, remind the outstanding, cancel,
report. Each use case is one unit of work; the messages go out through the outbox in the same transaction.

- A broadcast fires at `send_at`, and again at each occurrence of its repeat rule (APScheduler 3's CronTrigger
  in the company's zone, e.g. every Monday 9:00) until `repeat_until`. `fire_due` claims an occurrence by
  inserting its unique row (ON CONFLICT DO NOTHING): of any number of replicas ticking at once, one inserts it
  and writes one outbox row per recipient; the others find the row there and do nothing. After downtime only
  the latest missed occurrence fires (one message, not a burst).
- Acknowledging is a conditional update (`acknowledged_at IS NULL`): a repeated or stale click changes nothing.
  The first one enqueues an update of every copy of the DM, so each shows "acknowledged".
- Delivery state is the outbox row's (sent, dead with its error); a person with no chat identity on the
  platform is reported as not reachable there, not lost.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Policy
from models import broadcasts as rows
from models import messaging, people
from models.broadcasts import Broadcast, Recipient
from models.db import Database
from models.people import Employee
from workflow import audit, delivery
from workflow.audiences import Audience, problems, resolve
from workflow.engine import calendar_for

KIND = "broadcast"
REMINDER_KIND = "broadcast_reminder"
UPDATE_KIND = "broadcast_update"  # brings a posted copy up to date (payload "updates": its outbox id)
KINDS = (KIND, REMINDER_KIND, UPDATE_KIND)
SENDER_ROLES = ("hr", "admin")
UNREACHABLE_PREFIX = "not reachable"  # how delivery records a person with no identity on the platform
MESSAGE_LIMIT = 2900  # a Slack section's text is at most 3000 characters
PAST_GRACE = timedelta(minutes=1)  # "now" typed in a form is a moment ago by the time it is submitted

CREATED, CANCELLED, REMINDED = "broadcast.created", "broadcast.cancelled", "broadcast.reminded"
ACKNOWLEDGED = "broadcast.acknowledged"

NOT_ALLOWED = LocalText.of("お知らせの一斉送信は人事部または管理者だけが行えます。",
                           "Only HR and admins can send broadcasts.")
EMPTY_MESSAGE = LocalText.of("本文を入力してください（日本語か英語の少なくとも一方）",
                             "Write the message (in Japanese or English, at least one)")
TOO_LONG = LocalText.of(f"本文は{MESSAGE_LIMIT}文字以内にしてください", f"Keep the message to {MESSAGE_LIMIT} characters")
IN_THE_PAST = LocalText.of("送信日時が過去です。今以降の日時を指定してください",
                           "The send time has passed; choose a time from now on")
END_BEFORE_START = LocalText.of("繰り返しの終了日は初回の送信日以降にしてください",
                                "The repeat's end date must not be before the first send")
NO_OCCURRENCE = LocalText.of("この期間に送信日時がありません", "No send time falls in this period")
CREATED_NOW = LocalText.of("お知らせ #{id} を {n} 人に送信しました。", "Broadcast #{id} is on its way to {n} people.")
CREATED_LATER = LocalText.of("お知らせ #{id} を {when} に送信する予定です。", "Broadcast #{id} will go out at {when}.")
NOT_FOUND = LocalText.of("このお知らせは見つかりません。", "This broadcast no longer exists.")
ACK_DONE = LocalText.of("確認しました。ありがとうございます。", "Thank you: your acknowledgement is recorded.")
ACK_ALREADY = LocalText.of("確認済みです（{when}）。", "Already acknowledged ({when}).")
ACK_NOT_ASKED = LocalText.of("このお知らせは確認を求めていません。", "This broadcast asks for no acknowledgement.")
REMIND_DONE = LocalText.of("未確認の {n} 人に再送しました。", "Reminded the {n} people who have not acknowledged.")
REMIND_NONE = LocalText.of("未確認の人はいません。", "Everyone has acknowledged (or could not be reached).")
REMIND_NOT_YET = LocalText.of("まだ送信されていません。", "It has not been sent yet.")
CANCEL_DONE = LocalText.of("お知らせ #{id} の今後の送信を取り消しました。", "Broadcast #{id} will not be sent again.")
CANCEL_ALREADY = LocalText.of("お知らせ #{id} はすでに取り消されています。", "Broadcast #{id} was already cancelled.")


@dataclass(frozen=True)
class Draft:
    """What HR asks for. `send_at` None: now. `repeat`: CronTrigger fields (e.g. {"day_of_week": "mon",
    "hour": 9, "minute": 0}); `repeat_until`: the last day it may fire (company zone)."""

    author_id: int
    audience: Audience
    message_ja: str
    message_en: str
    ack_required: bool = True
    send_at: datetime | None = None
    repeat: dict[str, Any] | None = None
    repeat_until: date | None = None


@dataclass(frozen=True)
class Result:
    """ok=False always means nothing was stored. `errors`: per form field (audience, targets, message_ja,
    send_at, repeat_until)."""

    ok: bool
    message: LocalText
    broadcast_id: int | None = None
    count: int = 0
    errors: dict[str, LocalText] = field(default_factory=dict)


def weekly(moment: datetime, tz: str) -> dict[str, Any]:
    """The repeat rule "every <that weekday> at <that time>" of a local moment."""
    local = moment.astimezone(ZoneInfo(tz))
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return {"day_of_week": days[local.weekday()], "hour": local.hour, "minute": local.minute}


def may_send(person: Employee | None) -> bool:
    return person is not None and person.active and any(person.has_role(r) for r in SENDER_ROLES)


# ---------------------------------------------------------------------------------------------- schedule


def _trigger(b: Broadcast | Draft, start: datetime, tz: str) -> CronTrigger:
    zone = ZoneInfo(tz)
    end = (datetime.combine(b.repeat_until, time.max, tzinfo=zone) if b.repeat_until else None)
    return CronTrigger(**(b.repeat or {}), timezone=zone, start_date=start.astimezone(zone), end_date=end)


def first_occurrence(b: Broadcast | Draft, start: datetime, tz: str) -> datetime | None:
    """When a broadcast first fires: `start` itself, or its repeat rule's first time at or after it."""
    if not b.repeat:
        return start
    found = _trigger(b, start, tz).get_next_fire_time(None, start.astimezone(ZoneInfo(tz)))
    return found.astimezone(UTC) if found else None


def next_occurrence(b: Broadcast, after: datetime, tz: str) -> datetime | None:
    """The occurrence after `after`, or None when the broadcast does not repeat or its end has come."""
    if not b.repeat:
        return None
    moment = (after + timedelta(microseconds=1)).astimezone(ZoneInfo(tz))
    found = _trigger(b, b.send_at, tz).get_next_fire_time(None, moment)
    return found.astimezone(UTC) if found else None


def _latest_due(b: Broadcast, now: datetime, tz: str) -> datetime:
    """The latest occurrence due by `now` from `next_at` on: missed occurrences are coalesced into one."""
    assert b.next_at is not None
    at = b.next_at
    while (later := next_occurrence(b, at, tz)) is not None and later <= now:
        at = later
    return at


# ---------------------------------------------------------------------------------------------- create


def create(db: Database, policy: Policy, draft: Draft, now: datetime) -> Result:
    """Check and store a broadcast (HR and admins only); if it is due now, fire it in the same transaction."""
    tz = policy.company.timezone
    with db.unit_of_work() as conn:
        if not may_send(people.get_employee(conn, draft.author_id)):
            return Result(False, NOT_ALLOWED)
        errors = _draft_errors(conn, draft, now)
        start = draft.send_at or now
        first = first_occurrence(draft, start, tz) if not errors else None
        if not errors and first is None:
            errors["repeat_until"] = NO_OCCURRENCE
        if errors or first is None:
            return Result(False, next(iter(errors.values())), errors=errors)
        ja, en = draft.message_ja.strip() or draft.message_en.strip(), draft.message_en.strip() or draft.message_ja.strip()
        broadcast_id = rows.insert_broadcast(
            conn, author_id=draft.author_id, audience=draft.audience.to_json(), message_ja=ja, message_en=en,
            ack_required=draft.ack_required, send_at=start, repeat=draft.repeat, repeat_until=draft.repeat_until,
            next_at=first, created_at=now)
        audit.record(conn, now, [audit.Entry(CREATED, draft.author_id, data={
            "broadcast_id": broadcast_id, "audience": draft.audience.to_json(), "ack": draft.ack_required,
            "send_at": start, "repeat": draft.repeat, "until": draft.repeat_until})])
        if first > now:
            when = first.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
            return Result(True, _filled(CREATED_LATER, id=broadcast_id, when=when), broadcast_id)
        stored = rows.get_broadcast(conn, broadcast_id)
        assert stored is not None
        sent = _fire(conn, policy, stored, now)
    return Result(True, _filled(CREATED_NOW, id=broadcast_id, n=sent), broadcast_id, sent)


def _draft_errors(conn: Connection, draft: Draft, now: datetime) -> dict[str, LocalText]:
    errors: dict[str, LocalText] = {}
    trouble = problems(conn, draft.audience)
    if trouble is not None:
        errors["targets" if draft.audience.kind != "everyone" else "audience"] = trouble
    if not (draft.message_ja.strip() or draft.message_en.strip()):
        errors["message_ja"] = EMPTY_MESSAGE
    elif max(len(draft.message_ja), len(draft.message_en)) > MESSAGE_LIMIT:
        errors["message_ja"] = TOO_LONG
    if draft.send_at is not None and draft.send_at < now - PAST_GRACE:
        errors["send_at"] = IN_THE_PAST
    start = (draft.send_at or now)
    if draft.repeat_until is not None and draft.repeat_until < start.date():
        errors["repeat_until"] = END_BEFORE_START
    return errors


def _filled(text: LocalText, **values: Any) -> LocalText:
    return LocalText.of(text.ja.format(**values), text.en.format(**values))


# ---------------------------------------------------------------------------------------------- fire


def fire_due(db: Database, policy: Policy, now: datetime, stop: Callable[[], bool] = lambda: False) -> int:
    """Fire every occurrence due by `now` (claimed by its unique row, so once across replicas); returns how
    many messages were enqueued. One unit of work per occurrence; `stop` is asked before each (shutdown: the
    rest stays due)."""
    with db.unit_of_work(write=False) as conn:
        due = [b.id for b in rows.due_broadcasts(conn, now)]
    sent = 0
    for broadcast_id in due:
        if stop():
            break
        with db.unit_of_work() as conn:
            b = rows.get_broadcast(conn, broadcast_id)
            if b is not None and b.cancelled_at is None and b.next_at is not None and b.next_at <= now:
                sent += _fire(conn, policy, b, now)
    return sent


def _fire(conn: Connection, policy: Policy, b: Broadcast, now: datetime) -> int:
    """Claim the latest due occurrence; the claimer writes recipients and outbox rows. Both move next_at on."""
    tz = policy.company.timezone
    at = _latest_due(b, now, tz)
    rows.set_next_at(conn, b.id, next_occurrence(b, at, tz))
    occurrence_id = rows.claim_occurrence(conn, b.id, at, now)
    if occurrence_id is None:
        return 0  # another replica fired it
    today = now.astimezone(ZoneInfo(tz)).date()
    audience = resolve(conn, policy, calendar_for(policy), Audience.from_json(b.audience), today, now)
    ids = rows.insert_recipients(conn, [{"occurrence_id": occurrence_id, "employee_id": e.id, "reminders": 0}
                                        for e in audience])
    outbox = [_row(f"{KIND}:{occurrence_id}:{employee_id}", employee_id, KIND, b, rid, now)
              for employee_id, rid in ids.items()]
    posted = rows.enqueue_returning(conn, outbox)
    rows.link_outbox(conn, [{"rid": ids[employee_id], "oid": oid} for employee_id, oid in posted.items()])
    rows.set_occurrence_size(conn, occurrence_id, len(ids))
    return len(ids)


def _row(key: str, employee_id: int, kind: str, b: Broadcast, recipient_id: int, now: datetime,
         **extra: Any) -> dict[str, Any]:
    return {"idempotency_key": key, "recipient_id": employee_id, "kind": kind, "request_id": None,
            "payload": {"kind": kind, "broadcast": b.id, "recipient": recipient_id, **extra},
            "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
            "priority": delivery.priority_of(kind)}


# ---------------------------------------------------------------------------------------------- acknowledge


def acknowledge(db: Database, recipient_id: int, employee_id: int, now: datetime) -> Result:
    """The recipient read it. Only the first click counts; every posted copy is then updated."""
    with db.unit_of_work() as conn:
        found = _recipient_and_broadcast(conn, recipient_id)
        if found is None or found[0].employee_id != employee_id:
            return Result(False, NOT_FOUND)
        recipient, b = found
        if not b.ack_required:
            return Result(False, ACK_NOT_ASKED)
        if not rows.acknowledge(conn, recipient_id, now):
            return Result(False, _filled(ACK_ALREADY, when=_when(recipient.acknowledged_at, employee_id, conn)))
        updates = [_row(f"{UPDATE_KIND}:{recipient_id}:{oid}", employee_id, UPDATE_KIND, b, recipient_id, now,
                        updates=oid)
                   for oid, state in rows.copies_of(conn, recipient_id) if state != "dead"]
        messaging.enqueue(conn, updates)
        audit.record(conn, now, [audit.Entry(ACKNOWLEDGED, employee_id, data={
            "broadcast_id": b.id, "recipient_id": recipient_id})])
    return Result(True, ACK_DONE, b.id)


def _recipient_and_broadcast(conn: Connection, recipient_id: int) -> tuple[Recipient, Broadcast] | None:
    recipient = rows.get_recipient(conn, recipient_id)
    occurrence = rows.get_occurrence(conn, recipient.occurrence_id) if recipient else None
    b = rows.get_broadcast(conn, occurrence.broadcast_id) if occurrence else None
    return (recipient, b) if recipient is not None and b is not None else None


def _when(moment: datetime | None, employee_id: int, conn: Connection) -> str:
    person = people.get_employee(conn, employee_id)
    zone = ZoneInfo(person.timezone if person else "Asia/Tokyo")
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


# ---------------------------------------------------------------------------------------------- remind, cancel


def remind_outstanding(db: Database, broadcast_id: int, actor_id: int, now: datetime) -> Result:
    """Re-send the latest occurrence to those who have not acknowledged it (and could be reached)."""
    with db.unit_of_work() as conn:
        if not may_send(people.get_employee(conn, actor_id)):
            return Result(False, NOT_ALLOWED)
        b = rows.get_broadcast(conn, broadcast_id)
        if b is None:
            return Result(False, NOT_FOUND)
        if not b.ack_required:
            return Result(False, ACK_NOT_ASKED)
        fired = rows.occurrences_of(conn, broadcast_id)
        if not fired:
            return Result(False, REMIND_NOT_YET)
        outstanding = [r for r in rows.recipients_of(conn, fired[-1].id)
                       if r.acknowledged_at is None and r.state != "dead"]
        if not outstanding:
            return Result(False, REMIND_NONE, broadcast_id)
        messaging.enqueue(conn, [_row(f"{REMINDER_KIND}:{r.id}:{r.reminders + 1}", r.employee_id, REMINDER_KIND,
                                      b, r.id, now) for r in outstanding])
        rows.count_reminder(conn, [r.id for r in outstanding])
        audit.record(conn, now, [audit.Entry(REMINDED, actor_id, data={
            "broadcast_id": broadcast_id, "occurrence_id": fired[-1].id, "count": len(outstanding)})])
    return Result(True, _filled(REMIND_DONE, n=len(outstanding)), broadcast_id, len(outstanding))


def cancel(db: Database, broadcast_id: int, actor_id: int, now: datetime) -> Result:
    """Stop the broadcast's future occurrences (what was sent stays sent)."""
    with db.unit_of_work() as conn:
        if not may_send(people.get_employee(conn, actor_id)):
            return Result(False, NOT_ALLOWED)
        if rows.get_broadcast(conn, broadcast_id) is None:
            return Result(False, NOT_FOUND)
        if not rows.cancel_broadcast(conn, broadcast_id, actor_id, now):
            return Result(False, _filled(CANCEL_ALREADY, id=broadcast_id), broadcast_id)
        audit.record(conn, now, [audit.Entry(CANCELLED, actor_id, data={"broadcast_id": broadcast_id})])
    return Result(True, _filled(CANCEL_DONE, id=broadcast_id), broadcast_id)


# ---------------------------------------------------------------------------------------------- report


STATES = ("acknowledged", "delivered", "pending", "unreachable", "failed")


def state_of(r: Recipient) -> str:
    """One recipient's standing: acknowledged, delivered (not yet acknowledged), pending (on its way),
    unreachable (no identity on the platform), or failed (with a reason)."""
    if r.acknowledged_at is not None:
        return "acknowledged"
    if r.state == "sent":
        return "delivered"
    if r.state == "dead":
        return "unreachable" if (r.last_error or "").startswith(UNREACHABLE_PREFIX) else "failed"
    return "pending"


@dataclass(frozen=True)
class Report:
    broadcast: Broadcast
    occurrence_id: int | None
    recipients: list[tuple[Recipient, Employee | None]]

    def count(self, *states: str) -> int:
        return sum(1 for r, _ in self.recipients if state_of(r) in states)

    @property
    def delivered(self) -> int:
        """Messages that reached the person (acknowledged ones were delivered too)."""
        return sum(1 for r, _ in self.recipients if r.state == "sent")

    @property
    def acknowledged(self) -> int:
        return self.count("acknowledged")

    @property
    def outstanding(self) -> int:
        """Still to acknowledge (delivered or on the way); 0 when no acknowledgement was asked."""
        return self.count("delivered", "pending") if self.broadcast.ack_required else 0

    @property
    def failed(self) -> int:
        return self.count("failed", "unreachable")

    @property
    def unreachable(self) -> int:
        return self.count("unreachable")


def report(conn: Connection, broadcast_id: int, occurrence_id: int | None = None) -> Report | None:
    """Who got the broadcast's latest (or the given) occurrence, and who acknowledged it."""
    b = rows.get_broadcast(conn, broadcast_id)
    if b is None:
        return None
    fired = rows.occurrences_of(conn, broadcast_id)
    chosen = next((o for o in fired if o.id == occurrence_id), None) if occurrence_id else (fired[-1] if fired else None)
    if chosen is None:
        return Report(b, None, [])
    found = rows.recipients_of(conn, chosen.id)
    names = people.get_employees(conn, {r.employee_id for r in found})
    return Report(b, chosen.id, [(r, names.get(r.employee_id)) for r in found])


CSV_HEADER = ["社員番号", "氏名", "メールアドレス", "状態", "配信日時", "確認日時", "再送回数", "失敗理由"]
STATE_JA = {"acknowledged": "確認済み", "delivered": "未確認", "pending": "送信待ち", "unreachable": "連絡先なし",
            "failed": "送信失敗"}


def report_csv(r: Report, tz: str) -> str:
    """The report as CSV (one row per recipient; write it with encoding utf-8-sig for Excel)."""
    zone = ZoneInfo(tz)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for recipient, person in r.recipients:
        state = state_of(recipient)
        reason = recipient.last_error if state in ("failed", "unreachable") else ""
        writer.writerow([person.code if person else "", person.name_ja if person else "",
                         person.email if person else "", STATE_JA[state], _local(recipient.sent_at, zone),
                         _local(recipient.acknowledged_at, zone), recipient.reminders, reason or ""])
    return out.getvalue()


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def recent(conn: Connection, limit: int = 5, author_id: int | None = None) -> Iterable[Report]:
    """The latest broadcasts' reports, newest first."""
    for b in rows.recent_broadcasts(conn, limit, author_id):
        found = report(conn, b.id)
        if found is not None:
            yield found


def posted_ref(conn: Connection, outbox_id: int) -> dict[str, Any] | None:
    """Where a broadcast's DM (an outbox row) was posted, to update it; None if it has not been (yet)."""
    return rows.message_ref(conn, outbox_id)
