"""Request cards as neutral messages: the approver's DM card, its decided copy, the requester's status message,
and the modal asking for a reason.

Every card is built from one `RequestDetails` (workflow.queries), so all copies of a request say the same
thing; after any change the edges rebuild each copy from a fresh read and update it in place. A card carries
buttons only while its reader can still act, so a stale copy invites no click (and a stale click changes
nothing anyway: the engine decides).

Text that people typed or that comes from HR data (names, comments, numbers of a company's own format) is
escaped before it goes into markdown, so `<!channel>` in a comment is only text. Payload values go through
`Fields`, which the renderers escape themselves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from config.i18n import LocalText
from config.policy import RequestTypeSpec
from handlers.summaries import attachments, cut, date_text, summary_fields
from handlers.views import (
    Actions,
    Block,
    Button,
    Confirm,
    Context,
    Fields,
    Form,
    Header,
    Input,
    Message,
    Option,
    Text,
)
from workflow.queries import PersonDecision, RequestDetails, StepView

REASON_CALLBACK = "decide_with_reason"
REFRESH_CARD = "refresh_card"  # an approver card asking for its current state: its value is the assignment id
TO_APPLICANT = "applicant"  # the send-back target meaning "the requester"; step ids are slugs, never this
COMMENT_SHOWN = 1000  # a card quotes a reason; the full text stays in the audit trail
COMMENT_MAX = 3000  # what the reason input accepts (Slack's plain-text input limit)
NAMES_PER_STEP = 3  # a progress line names a few people per step, then "+N"

# Every sentence this module shows, in both languages.
FILED_BY = LocalText.of("申請者: {name}  ・  {when}", "Filed by {name}  ·  {when}")
DUE = LocalText.of("⏰ 期限: {when}", "⏰ Due: {when}")
ROUND = LocalText.of("再申請 {n} 回目", "Resubmission #{n}")
ATTACHMENT = LocalText.of("📎 添付", "📎 Attachments")
REASON = LocalText.of("理由", "Reason")
STATUS = LocalText.of("状況", "Status")
# a send-back by the final policy (workflow/nudges.py): no person decided it
OVERDUE_RETURN = LocalText.of("期限超過のため自動", "automatically (overdue)")
OVERDUE_REASON = LocalText.of("承認期限を過ぎたため申請者に戻しました。内容を確認して再申請してください。",
                              "The approval was overdue, so the request came back to you. Check it and resubmit.")
ON_BEHALF = LocalText.of("{actor}（{approver} の代理）", "{actor} (on behalf of {approver})")
APPROVE = LocalText.of("承認", "Approve")
REJECT = LocalText.of("却下", "Reject")
SEND_BACK = LocalText.of("差し戻し", "Send back")
CLAIM = LocalText.of("担当する", "Claim")
RESOLVE = LocalText.of("対応完了", "Resolved")
WITHDRAW = LocalText.of("取り下げ", "Withdraw")
RESUBMIT = LocalText.of("修正して再申請", "Fix and resubmit")
WITHDRAW_TITLE = LocalText.of("申請を取り下げますか？", "Withdraw this request?")
WITHDRAW_TEXT = LocalText.of("{number} を取り下げます。元に戻せません。",
                             "{number} will be withdrawn. This cannot be undone.")
YES_WITHDRAW = LocalText.of("取り下げる", "Withdraw")
KEEP = LocalText.of("やめる", "Keep it")
ASKS_APPROVAL = LocalText.of("{title} {number}: {name} さんの申請の承認をお願いします",
                             "{title} {number} from {name} needs your decision")
ASKS_CLAIM = LocalText.of("{title} {number}: {name} さんの依頼を対応してください",
                          "{title} {number} from {name} is waiting in the queue")
NOW_STATUS = LocalText.of("{title} {number}: {status}", "{title} {number}: {status}")
REASON_TITLES = {"reject": LocalText.of("却下の理由", "Reason to reject"),
                 "send_back": LocalText.of("差し戻しの理由", "Reason to send back")}
REASON_SUBMITS = {"reject": LocalText.of("却下する", "Reject"),
                  "send_back": LocalText.of("差し戻す", "Send back")}
REASON_HINTS = {"reject": LocalText.of("申請者に伝わります。", "The requester will see this."),
                "send_back": LocalText.of("何を直せばよいかを書いてください。", "Say what needs fixing.")}
SEND_BACK_TO = LocalText.of("差し戻し先", "Send back to")
THE_APPLICANT = LocalText.of("申請者", "The applicant")
CANCEL = LocalText.of("キャンセル", "Cancel")

REQUEST_STATUS = {
    "pending": LocalText.of("承認待ち", "Pending"),
    "sent_back": LocalText.of("差し戻し", "Sent back"),
    "approved": LocalText.of("承認済み", "Approved"),
    "rejected": LocalText.of("却下", "Rejected"),
    "withdrawn": LocalText.of("取り下げ済み", "Withdrawn"),
    "resolved": LocalText.of("対応完了", "Resolved"),
}
DECISION = {
    "approved": LocalText.of("承認済み", "Approved"),
    "rejected": LocalText.of("却下", "Rejected"),
    "sent_back": LocalText.of("差し戻し", "Sent back"),
    "claimed": LocalText.of("対応中", "Claimed"),
    "resolved": LocalText.of("対応完了", "Resolved"),
    "informed": LocalText.of("回覧済み", "Shared for information"),
}
STEP_ICONS = {
    "approved": "✅", "informed": "✅", "resolved": "✅", "active": "⏳", "claimed": "⏳",
    "rejected": "❌", "sent_back": "↩️", "cancelled": "－", "waiting": "・",
}
ACTED = ("approved", "rejected", "sent_back", "claimed", "resolved")
FINAL_WHO = {"approved": "approved", "rejected": "rejected", "resolved": "resolved", "sent_back": "sent_back"}


# ------------------------------------------------------------------------------------------------ cards


def approval_card(d: RequestDetails, spec: RequestTypeSpec, assignment_id: int, locale: str, tz: str) -> Message:
    """The approver's card: what, who, when it is due, the route so far, and what they can do now.
    When the reader can no longer act (decided, moved on, closed) it is the decided card instead."""
    found = d.person(assignment_id)
    buttons = _buttons(d, found, assignment_id, locale)
    if found is None or not buttons:
        return decided_card(d, spec, locale, tz)
    step, _ = found
    blocks = [*_body(d, spec, locale, tz)]
    if step.due_at is not None:
        blocks.append(Context(DUE(locale).format(when=_when(step.due_at, locale, tz, weekday=True))))
    blocks += [Context(progress_line(d, locale)), Actions(buttons)]
    asks = ASKS_CLAIM if step.kind == "queue" else ASKS_APPROVAL
    # a copy that missed an update (or is shown again later) can ask for its current state by itself
    return Message(asks(locale).format(title=d.type_title(locale), number=d.request.number,
                                       name=d.requester_name(locale)), tuple(blocks),
                   refresh=Button("", REFRESH_CARD, str(assignment_id)))


def shared_queue_card(d: RequestDetails, spec: RequestTypeSpec, assignment_id: int, locale: str,
                      tz: str) -> Message:
    """A queue's one card in its channel, for whoever of the queue looks: Claim while nobody has taken it,
    Resolved once someone has (only they can press it), the outcome after. `assignment_id` is any assignment
    of the step (the one the card was posted for)."""
    found = d.person(assignment_id)
    if found is not None:
        step, _ = found
        holder = (next((p for p in step.people if p.status == "claimed"), None)
                  or next((p for p in step.people if p.status == "pending"), None))
        if holder is not None:
            assignment_id = holder.assignment_id
    return approval_card(d, spec, assignment_id, locale, tz)


def decided_card(d: RequestDetails, spec: RequestTypeSpec, locale: str, tz: str, *,
                 note: LocalText | None = None) -> Message:
    """The card without buttons, with the outcome: who did what and when. Every copy is updated to this."""
    blocks = [*_body(d, spec, locale, tz), *_outcome(d, locale, tz), Context(progress_line(d, locale))]
    if note is not None:
        blocks.append(Context(escape(note(locale))))
    return Message(_status_fallback(d, locale), tuple(blocks))


def requester_card(d: RequestDetails, spec: RequestTypeSpec, locale: str, tz: str) -> Message:
    """The requester's status message: where the request stands, and Withdraw / Fix and resubmit."""
    blocks = [*_body(d, spec, locale, tz), *_outcome(d, locale, tz), Context(progress_line(d, locale))]
    value = str(d.request.id)
    buttons: list[Button] = []
    if d.request.status == "sent_back":
        buttons.append(Button(RESUBMIT(locale), "resubmit", value, style="primary"))
    if d.request.status in ("pending", "sent_back"):
        buttons.append(Button(WITHDRAW(locale), "withdraw", value, style="danger",
                              confirm=_withdraw_confirm(d, locale)))
    if buttons:
        blocks.append(Actions(tuple(buttons)))
    return Message(_status_fallback(d, locale), tuple(blocks))


def reason_form(action: Literal["reject", "send_back"], assignment_id: int, locale: str,
                earlier_steps: Sequence[tuple[str, LocalText]] = ()) -> Form:
    """The modal asking why (required); for a send-back also to whom: the applicant or an earlier step."""
    blocks: list[Block] = [Input("comment", REASON(locale), "multiline", required=True,
                                 hint=REASON_HINTS[action](locale), max_length=COMMENT_MAX)]
    if action == "send_back" and earlier_steps:
        options = (Option(TO_APPLICANT, THE_APPLICANT(locale)),
                   *(Option(key, title(locale)) for key, title in earlier_steps))
        blocks.append(Input("to_step", SEND_BACK_TO(locale), "select", required=True, options=options,
                            initial=TO_APPLICANT))
    state = json.dumps({"action": action, "assignment_id": assignment_id}, separators=(",", ":"))
    return Form(REASON_TITLES[action](locale), REASON_CALLBACK, tuple(blocks), REASON_SUBMITS[action](locale),
                CANCEL(locale), state, locale)


def reason_state(state: str) -> tuple[Literal["reject", "send_back"], int]:
    """The action and assignment id a reason form carries back (the inverse of `reason_form`'s state)."""
    data = json.loads(state)
    action = data.get("action")
    if action not in ("reject", "send_back"):
        raise ValueError(f"not a reason form state: {state[:80]!r}")
    return action, int(data["assignment_id"])


# ------------------------------------------------------------------------------------------------ parts


def _body(d: RequestDetails, spec: RequestTypeSpec, locale: str, tz: str) -> list[Block]:
    """What every copy starts with: the header, who filed it and when, the key fields and attachments."""
    filed = FILED_BY(locale).format(name=escape(d.requester_name(locale)),
                                    when=_when(d.request.created_at, locale, tz, weekday=True))
    if d.history_rounds:
        filed += f"  ・  {ROUND(locale).format(n=d.history_rounds)}"
    names = {i: n(locale) for i, n in d.names.items()}
    blocks: list[Block] = [Header(f"{d.type_title(locale)} {d.request.number}"), Context(filed)]
    if pairs := summary_fields(spec, d.request.payload, locale, people=names):
        blocks.append(Fields(pairs))
    if files := attachments(spec, d.request.payload, locale):
        # a "|" would end the link's address early in Slack's <url|label> syntax: percent-encode it
        links = "  ".join(f"<{escape(url.replace('|', '%7C'))}|{escape(label.replace('|', '/'))}>"
                          for label, url in files)
        blocks.append(Text(f"{ATTACHMENT(locale)}: {links}"))
    return blocks


def _buttons(d: RequestDetails, found: tuple[StepView, PersonDecision] | None, assignment_id: int,
             locale: str) -> tuple[Button, ...]:
    """What the reader can do now; nothing when the request or their part of it is over."""
    if found is None or d.request.status != "pending":
        return ()
    step, person = found
    value = str(assignment_id)
    if step.kind == "queue" and person.status == "pending":
        return (Button(CLAIM(locale), "claim", value, style="primary"),)
    if step.kind == "queue" and person.status == "claimed":
        return (Button(RESOLVE(locale), "resolve", value, style="primary"),)
    if step.kind == "approval" and person.status == "pending":
        return (Button(APPROVE(locale), "approve", value, style="primary"),
                Button(REJECT(locale), "reject", value, style="danger"),
                Button(SEND_BACK(locale), "send_back", value))
    return ()


def _outcome(d: RequestDetails, locale: str, tz: str) -> list[Block]:
    """The status line ("承認済み — 佐藤 花子 2026-06-02 10:32") and, for a refusal, the reason."""
    status = d.request.status
    latest = _latest_decision(d, FINAL_WHO.get(status))
    if status == "withdrawn":
        when = d.request.decided_at or d.request.updated_at
        line = f"{REQUEST_STATUS[status](locale)} — {escape(d.requester_name(locale))} {_when(when, locale, tz)}"
        return [Text(f"*{STATUS(locale)}:* {line}")]
    if latest is None and status == "sent_back":  # nobody sent it back: the final policy did (overdue)
        overdue = next((s for s in d.steps if s.status == "sent_back"), None)
        where = f"{escape(overdue.title(locale))}: " if overdue is not None else ""
        line = f"{where}{REQUEST_STATUS[status](locale)} — {OVERDUE_RETURN(locale)} {_when(d.request.updated_at, locale, tz)}"
        return [Text(f"*{STATUS(locale)}:* {line}"), Text(f"*{REASON(locale)}:* {OVERDUE_REASON(locale)}")]
    if latest is None:
        return [Text(f"*{STATUS(locale)}:* {REQUEST_STATUS.get(status, _raw(status))(locale)}")]
    step, person = latest
    label = (REQUEST_STATUS[status] if status in FINAL_WHO else DECISION.get(person.status, _raw(person.status)))
    line = f"{label(locale)} — {escape(decider_name(person, locale))} {_when(person.decided_at, locale, tz)}"
    if status == "pending":  # the request goes on: say which step this decision was
        line = f"{escape(step.title(locale))}: {line}"
    blocks: list[Block] = [Text(f"*{STATUS(locale)}:* {line}")]
    if person.comment and person.status in ("rejected", "sent_back", "resolved"):
        blocks.append(Text(f"*{REASON(locale)}:* {escape(cut(person.comment, COMMENT_SHOWN))}"))
    return blocks


def _latest_decision(d: RequestDetails, status: str | None) -> tuple[StepView, PersonDecision] | None:
    """The most recent decision on the route (of the given assignment status, when one is given)."""
    made = [(s, p) for s in d.steps for p in s.people
            if p.decided_at is not None and p.status in ACTED and (status is None or p.status == status)]
    # decisions in the same instant (a clock that stands still, as in the tests) go by assignment: a later
    # step's (or a later cycle's) assignment was created after an earlier one's, so it was decided after too
    return max(made, key=lambda sp: (sp[1].decided_at or datetime.min, sp[1].assignment_id)) if made else None


def progress_line(d: RequestDetails, locale: str) -> str:
    """"✅ 上長承認 鈴木 一郎 → ⏳ 部門長承認 佐藤 花子 → ・ 経理確認" (escaped, for a Context)."""
    return " → ".join(_step_text(step, locale) for step in d.steps)


def _step_text(step: StepView, locale: str) -> str:
    icon = STEP_ICONS.get(step.status, "・")
    people = _shown_people(step)
    names = [escape(decider_name(p, locale)) for p in people[:NAMES_PER_STEP]]
    if len(people) > NAMES_PER_STEP:
        names.append(f"+{len(people) - NAMES_PER_STEP}")
    return " ".join([icon, escape(step.title(locale)), *names])


def _shown_people(step: StepView) -> list[PersonDecision]:
    """Who a progress line names: those who acted on a finished step, those it waits for on an open one."""
    if step.status in ("waiting", "cancelled"):
        return []
    if step.status in ("active", "claimed"):
        return [p for p in step.people if p.status in ("pending", "claimed")]
    acted = [p for p in step.people if p.status in (*ACTED, "informed")]
    return acted or list(step.people)


def decider_name(person: PersonDecision, locale: str) -> str:
    """The approver's name, or "佐藤 花子（鈴木 一郎 の代理）" when a delegate acted for them (unescaped)."""
    if person.acted_by_name is None:
        return person.approver_name(locale)
    return ON_BEHALF(locale).format(actor=person.acted_by_name(locale), approver=person.approver_name(locale))


def _withdraw_confirm(d: RequestDetails, locale: str) -> Confirm:
    return Confirm(WITHDRAW_TITLE(locale), WITHDRAW_TEXT(locale).format(number=d.request.number),
                   YES_WITHDRAW(locale), KEEP(locale))


def _status_fallback(d: RequestDetails, locale: str) -> str:
    status = REQUEST_STATUS.get(d.request.status, _raw(d.request.status))(locale)
    return NOW_STATUS(locale).format(title=d.type_title(locale), number=d.request.number, status=status)


def _when(moment: datetime | None, locale: str, tz: str, *, weekday: bool = False) -> str:
    """A moment in the reader's zone: "2026-06-05 (金) 10:00", or "2026-06-02 10:32" without the weekday."""
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(tz))
    day = date_text(local.date(), locale) if weekday else local.date().isoformat()
    return f"{day} {local:%H:%M}"


def _raw(code: str) -> LocalText:
    return LocalText.of(code, code.replace("_", " "))


def escape(text: str) -> str:
    """User or HR text placed in markdown: `&`, `<`, `>` as entities, so it can never become a link or mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
