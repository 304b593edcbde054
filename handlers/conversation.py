"""The conversation, platform-neutral: a command, a click or a form submission in; what to show back out.

Every edge (Slack, Teams, the playground) calls `Conversation.on_command`, `on_click` or `on_submit` with a
neutral event and carries out the neutral response. Each call first recognises the person (`identify`); someone
HR has not registered gets a polite answer and nothing else happens, so an unknown person never reaches the
engine. After that each call is at most one more unit of work: a read for a list or a form, or one engine use
case for a decision. Everything a person did is decided by the engine; this module only chooses what to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sqlalchemy.engine import Connection

from config.i18n import LocalText, normalize_locale
from config.policy import RequestTypeSpec
from handlers import broadcast, queue_channel
from handlers import notify_choice as notify
from handlers.cards import (
    REQUEST_STATUS,
    TO_APPLICANT,
    approval_card,
    decided_card,
    escape,
    reason_form,
    reason_state,
)
from handlers.commands import (
    SET_LANGUAGE,
    Command,
    command_name,
    help_message,
    language_choice,
    language_message,
    language_set_message,
    language_unknown_message,
    normalize,
    parse_command,
    picker_message,
    unknown_message,
)
from handlers.events import (
    CardNow,
    ClickEvent,
    CloseForm,
    CommandEvent,
    FormErrors,
    OpenForm,
    Reply,
    Response,
    SubmitEvent,
    Who,
)
from handlers.nudges import snoozed_message
from handlers.request_forms import CALLBACK, form_for, input_errors, payload_from, read_state
from handlers.views import Actions, Block, Context, Divider, Form, Input, Message, Option, Text, line
from models import messaging, people
from models import requests as rq
from models.people import Employee
from models.requests import Assignment, Request
from workflow import delivery, leave
from workflow.engine import Engine
from workflow.identity import choose_language, choose_notify_platform, identify, recognised
from workflow.leave_law import format_days
from workflow.nudges import snooze
from workflow.outcomes import Outcome
from workflow.queries import RequestDetails, load_details, queue_assignment_for
from workflow.queue_channels import Refused, Registered
from workflow.queue_channels import register as register_queue_channel

INBOX_CARDS = 10  # the oldest ten; more would bury the buttons
# Slack shows at most 50 blocks in a message: whole cards only (a card cut in half loses its buttons), and one
# block kept for the "…and N more" line.
INBOX_BLOCKS = 49
STATUS_LINES = 10

# Every sentence this module shows, in both languages.
ON_BEHALF_OF = LocalText.of("⬆️ {name} さんの承認待ちです。代わりに判断できます。",
                            "⬆️ Waiting for {name}; you may decide in their place.")
NOT_REGISTERED = LocalText.of(
    "申し訳ありません。まだ人事部で madoguchi の利用者として登録されていません。登録後にもう一度お試しください。",
    "Sorry, HR has not registered you in madoguchi yet. Please try again once they have added you.")
# said by the edges when a person's request failed on our side (bot/slack/app.py, bot/teams/edge.py)
FAILED = LocalText.of("申し訳ありません、処理中にエラーが起きました。しばらくしてからもう一度お試しください。",
                      "Sorry, something went wrong. Please try again in a moment.")
NO_LONGER_VALID = LocalText.of("このボタンはもう使えません。最新のメッセージからもう一度お試しください。",
                               "This button is no longer valid. Please try again from the latest message.")
FORM_NO_LONGER_VALID = LocalText.of("このフォームはもう使えません。もう一度コマンドから開いてください。",
                                    "This form is no longer valid. Please open it again from the command.")
RESUBMITTING = LocalText.of("✏️ {number} を直して再申請します（番号とこれまでの経緯はそのまま残ります）",
                            "✏️ Fixing and resubmitting {number} (it keeps its number and its history)")
CANNOT_RESUBMIT = LocalText.of("{number} は差し戻されていないため、修正して再申請することはできません。",
                               "{number} has not been sent back to you, so it cannot be fixed and resubmitted.")
LEAVE_BALANCE = LocalText.of("有給残日数 {available} 日（申請中 {reserved} 日）",
                             "Paid leave left: {available} days ({reserved} pending)")
FIVE_DAY = LocalText.of("年5日取得 {taken}/{required}", "5 days a year: {taken}/{required} taken")
NOTE_JOIN = LocalText.of("・", " · ")
MY_REQUESTS = LocalText.of("あなたの申請（新しい順）", "Your requests (newest first)")
NO_REQUESTS = LocalText.of("まだ申請はありません。`{command}` で新しく申請できます。",
                           "You have no requests yet. Type `{command}` to file one.")
INBOX_TITLE = LocalText.of("あなたの対応待ち: {n} 件", "Waiting for you: {n}")
INBOX_EMPTY = LocalText.of("対応待ちの申請はありません。", "Nothing is waiting for you.")
INBOX_MORE = LocalText.of("…ほか {n} 件", "…and {n} more")
PICKER_TITLE = LocalText.of("新規申請", "New request")
PICKER_LABEL = LocalText.of("申請の種類", "Request type")
PICKER_NEXT = LocalText.of("次へ", "Next")
PICKER_CLOSE = LocalText.of("キャンセル", "Cancel")
PICKER_CHOOSE = LocalText.of("申請の種類を選んでください。", "Please choose a request type.")
PICK_CALLBACK = "pick_type"  # the shortcut's modal: its submission is answered with the chosen type's form
PICK_INPUT = "type"

ReasonAction = Literal["reject", "send_back"]


class Conversation:
    """The conversation over one engine (its database, policy, clock and calendar)."""

    def __init__(self, engine: Engine, command_name: str = "/madoguchi") -> None:
        self.engine = engine
        self.policy = engine.policy
        self.command_name = command_name

    # ------------------------------------------------------------------------------------------ commands

    def on_command(self, ev: CommandEvent) -> Response:
        """Typed words: open the picker or a form, list my requests or my inbox, or explain."""
        person = self._identify(ev.who)
        if person is None:
            return _not_registered(ev.who)
        if broadcast.is_command(normalize(ev.text).split(" ", 1)[0]):
            return broadcast.open_form(person)
        locale = person.locale
        command = parse_command(ev.text, self.policy)
        match command.kind:
            case "picker":
                return Reply(picker_message(self.policy, locale))
            case "form":
                return self._open_form(person, command)
            case "status":
                return Reply(self._status(person, ev.who))
            case "inbox":
                return Reply(self._inbox(person))
            case "help":
                return Reply(self._help(locale, ev))
            case "channel":
                return Reply(self._queue_channel(person, ev, command.rest))
            case "language":
                return Reply(self._language(person, ev.who, command.rest))
            case "notify":
                return Reply(self._notify(person, ev.who, command.rest))
        return Reply(unknown_message(command.text, self.policy, locale, self.command_for(ev.who)))

    def _help(self, locale: str, ev: CommandEvent) -> Message:
        """The help; in a team channel, with how to make it a queue's channel."""
        prefix_word = self.command_for(ev.who)
        shown = help_message(self.policy, locale, prefix_word)
        hint = queue_channel.channel_hint(self.policy, locale, prefix_word) if ev.place is not None else None
        return Message(shown.fallback, (*shown.blocks, hint)) if hint is not None else shown

    def _queue_channel(self, person: Employee, ev: CommandEvent, rest: str) -> Message:
        """`channel it` in a team channel: that channel becomes the IT queue's (see handlers/queue_channel.py)."""
        locale, prefix_word = person.locale, self.command_for(ev.who)
        if ev.place is None or ev.place.kind != "channel":
            return queue_channel.only_in_channel(self.policy, locale, prefix_word)
        type_key, named = queue_channel.requested_type(self.policy, rest)
        if named and type_key is None:
            outcome: Registered | Refused = Refused("no_type")
        else:
            with self.engine.db.unit_of_work() as conn:
                outcome = register_queue_channel(conn, self.policy, person, type_key, ev.who.platform,
                                                 ev.place.address, ev.place.name, self.engine.clock())
        return queue_channel.outcome_message(self.policy, outcome, locale, prefix_word, rest)

    def on_shortcut(self, who: Who) -> Response:
        """The "New request" shortcut: a modal whose one select chooses the request type."""
        person = self._identify(who)
        if person is None:
            return _not_registered(who)
        locale = person.locale
        options = tuple(Option(key, spec.title(locale)) for key, spec in self.policy.types.items())
        select = Input(PICK_INPUT, PICKER_LABEL(locale), "select", options=options)
        return OpenForm(Form(PICKER_TITLE(locale), PICK_CALLBACK, (select,), PICKER_NEXT(locale),
                             PICKER_CLOSE(locale), locale=locale))

    def _open_form(self, person: Employee, command: Command) -> Response:
        assert command.type_key is not None  # parse_command names a type for every "form"
        return OpenForm(self._request_form(person, command.type_key))

    def _request_form(self, person: Employee, type_key: str, request: Request | None = None) -> Form:
        """A request type's form; leave shows the balance; a sent-back request comes prefilled."""
        spec = self.policy.types[type_key]
        notes = [RESUBMITTING(person.locale).format(number=request.number)] if request is not None else []
        if spec.behaviour == "leave":
            notes.append(self._leave_note(person, request))
        note = "\n".join(notes) or None
        return form_for(type_key, spec, person.locale, note=note,
                        initial=request.payload if request else None, request_id=request.id if request else None)

    def _leave_note(self, person: Employee, request: Request | None) -> str:
        """"有給残日数 12.5 日（申請中 1 日）・年5日取得 3/5", as of today in the company's zone."""
        now = self.engine.clock()
        today = now.astimezone(self.engine.tz).date()
        with self.engine.db.unit_of_work() as conn:
            # grants due by law are stored lazily; without this a person hired years ago would see 0 days
            leave.sync_grants(conn, person, today, now)
            bal = leave.balance(conn, person, today, self.engine.calendar, self.policy.company.hours_per_day,
                                exclude_request_id=request.id if request else None)
        locale = person.locale
        parts = [LEAVE_BALANCE(locale).format(available=format_days(bal.available),
                                              reserved=format_days(bal.reserved))]
        if bal.five_day is not None:
            parts.append(FIVE_DAY(locale).format(taken=format_days(bal.five_day.taken),
                                                 required=format_days(bal.five_day.required)))
        return NOTE_JOIN(locale).join(parts)

    def command_for(self, who: Who) -> str:
        """The command name as this person types it: the slash command on Slack; nothing on Teams, where words
        typed to the bot are the commands (`休暇`, `leave`)."""
        return command_name(who.platform, self.command_name)

    def _status(self, person: Employee, who: Who) -> Message:
        """My latest requests, one line each: number, type, status."""
        locale = person.locale
        lines = self.status_lines(person)
        if not lines:
            command = self.command_for(who) or ("申請" if locale == "ja" else "new")
            return line(NO_REQUESTS(locale).format(command=command))
        title = MY_REQUESTS(locale)
        return Message(title, (Text(f"*{title}*"), Text("\n".join(lines), markdown=False)))

    def status_lines(self, person: Employee) -> list[str]:
        """"• LV-2026-0001  休暇申請  — 承認待ち" for my latest requests, newest first."""
        with self.engine.db.unit_of_work(write=False) as conn:
            mine = rq.requests_of(conn, person.id, limit=STATUS_LINES)
        return [self._status_line(r, person.locale) for r in mine]

    def _status_line(self, r: Request, locale: str) -> str:
        spec = self.policy.types.get(r.type)
        title = spec.title(locale) if spec else r.type
        status = REQUEST_STATUS[r.status](locale) if r.status in REQUEST_STATUS else r.status
        return f"• {r.number}  {title}  — {status}"

    def _inbox(self, person: Employee) -> Message:
        """What waits for me (and for those who delegated to me now), oldest first, as approval cards."""
        locale = person.locale
        waiting, cards = self.inbox_cards(person)
        if not waiting:
            return line(INBOX_EMPTY(locale))
        title = INBOX_TITLE(locale).format(n=waiting)
        blocks: list[Block] = [Text(f"*{title}*")]
        shown = 0
        for card in cards:
            if len(blocks) + 1 + len(card.blocks) > INBOX_BLOCKS:
                break
            blocks += [Divider(), *card.blocks]
            shown += 1
        if waiting > shown:
            blocks.append(Context(INBOX_MORE(locale).format(n=waiting - shown)))
        return Message(title, tuple(blocks))

    def inbox_cards(self, person: Employee) -> tuple[int, list[Message]]:
        """How many requests wait for me, and the approval cards of the oldest `INBOX_CARDS` of them."""
        with self.engine.db.unit_of_work(write=False) as conn:
            waiting = self._waiting_for(conn, person)
            cards = [card for a, r in waiting[:INBOX_CARDS] if (card := self._card(conn, a, r, person))]
        return len(waiting), cards

    def _waiting_for(self, conn: Connection, person: Employee) -> list[tuple[Assignment, Request]]:
        now = self.engine.clock()
        delegations = people.delegations_to(conn, person.id, now)
        givers = {d.from_id for d in delegations}
        found = rq.pending_for(conn, sorted({person.id} | givers))
        # a delegation may cover only some request types
        mine = [(a, r) for a, r in found if a.approver_id == person.id
                or any(d.from_id == a.approver_id and d.covers(now, r.type) for d in delegations)]
        # what an overdue approver's step escalated to me: I may decide in their place while it stays open
        seen = {a.id for a, _ in mine}
        escalated = [(a, r) for a, r in rq.open_assignments(conn, messaging.escalated_assignments(conn, person.id))
                     if a.id not in seen and r.requester_id != person.id]
        return sorted(mine + escalated, key=lambda ar: ar[0].id)

    def _card(self, conn: Connection, a: Assignment, r: Request, person: Employee) -> Message | None:
        spec = self.policy.types.get(r.type)
        details = load_details(conn, self.policy, r.id)
        if spec is None or details is None:
            return None
        card = approval_card(details, spec, a.id, person.locale, person.timezone)
        if a.approver_id == person.id or not any(isinstance(b, Actions) for b in card.blocks):
            return card
        found = details.person(a.id)
        name = found[1].approver_name(person.locale) if found else "?"
        # not theirs: say on whose behalf (an escalation, or a delegation), above the card's buttons
        note = Context(ON_BEHALF_OF(person.locale).format(name=escape(name)))
        at = next((i for i, b in enumerate(card.blocks) if isinstance(b, Context)), len(card.blocks) - 1)
        return Message(card.fallback, (*card.blocks[:at], note, *card.blocks[at:]))

    # ------------------------------------------------------------------------------------------ notify

    def _notify(self, person: Employee, who: Who, argument: str) -> Message:
        """`notify` alone says where messages go; `notify slack|teams|auto` chooses (audited, written only on a
        change) and says whether that platform can reach them yet; anything else lists the choices."""
        locale = person.locale
        if not normalize(argument):
            with self.engine.db.unit_of_work(write=False) as conn:
                chosen, reached = people.notify_platform(conn, person.id), delivery.reach(conn, person.id)
            return notify.current_message(chosen, reached.platform if reached else None, locale,
                                          self.command_for(who))
        choice = notify.notify_choice(argument)
        if choice is None:
            return notify.unknown_message(argument, locale)
        with self.engine.db.unit_of_work() as conn:
            choose_notify_platform(conn, person.id, None if choice == "auto" else choice, self.engine.clock(),
                                   person.id)
            now = delivery.reach(conn, person.id)
        return notify.set_message(choice, choice == "auto" or (now is not None and now.platform == choice), locale)

    # ------------------------------------------------------------------------------------------ language

    def _language(self, person: Employee, who: Who, argument: str) -> Message:
        """`language` alone says what it is and how to change it; `language en|ja|auto` (or the home's button)
        changes it and says so in the new language; anything else lists the choices and changes nothing."""
        if not normalize(argument):
            return language_message(person.locale, person.locale_source, who.platform, self.command_for(who))
        choice = language_choice(argument)
        if choice is None:
            return language_unknown_message(argument, person.locale, who.platform, self.command_for(who))
        with self.engine.db.unit_of_work() as conn:
            chosen = choose_language(conn, person.id, None if choice == "auto" else choice, self.engine.clock())
        if chosen is None:  # deactivated since they were recognised a moment ago
            return line(NOT_REGISTERED(person.locale))
        return language_set_message(chosen.locale, chosen.locale_source, who.platform, automatic=choice == "auto")

    # ------------------------------------------------------------------------------------------ clicks

    def on_click(self, ev: ClickEvent) -> Response:
        """A button: open a form, or have the engine apply the decision and say what happened."""
        person = self._identify(ev.who)
        if person is None:
            return _not_registered(ev.who)
        if ev.action == SET_LANGUAGE:
            return Reply(self._language(person, ev.who, ev.value))
        if ev.action in broadcast.ACTIONS:
            return broadcast.on_click(self.engine, person, ev.action, ev.value)
        if ev.action == "open_form":
            if ev.value not in self.policy.types:
                return _reply(NO_LONGER_VALID(person.locale))
            return OpenForm(self._request_form(person, ev.value))
        target = _integer(ev.value)
        if target is None:
            return _reply(NO_LONGER_VALID(person.locale))
        return self._act(person, ev.action, target)

    def _act(self, person: Employee, action: str, target: int) -> Response:
        engine = self.engine
        match action:
            case "approve":
                return _said(engine.decide(target, person.id, "approve", actor=person), person.locale)
            case "reject":
                return self._reason_form(person, "reject", target)
            case "send_back":
                return self._reason_form(person, "send_back", target)
            case "claim":
                with engine.db.unit_of_work(write=False) as conn:
                    mine = queue_assignment_for(conn, target, person.id)
                return _said(engine.claim(mine, person.id), person.locale)
            case "resolve":
                return _said(engine.resolve(target, person.id), person.locale)
            case "withdraw":
                return _said(engine.withdraw(target, person.id), person.locale)
            case "resubmit":
                return self._resubmit_form(person, target)
            case "snooze_nudges":  # handlers.nudges.SNOOZE
                return self._snooze(person, target)
            case "refresh_card":  # handlers.cards.REFRESH_CARD
                return self._card_now(person, target)
        return _reply(NO_LONGER_VALID(person.locale))

    def _card_now(self, person: Employee, assignment_id: int) -> Response:
        """An approver card as it stands now (its buttons only while someone can still act). Reads only."""
        read = self._details_of(assignment_id)
        if read is None:
            return _reply(NO_LONGER_VALID(person.locale))
        details, spec = read
        return CardNow(approval_card(details, spec, assignment_id, person.locale, person.timezone))

    def _details_of(self, assignment_id: int) -> tuple[RequestDetails, RequestTypeSpec] | None:
        """The request an assignment belongs to, as cards show it, and its type; None if either is gone."""
        with self.engine.db.unit_of_work(write=False) as conn:
            request = rq.request_of_assignment(conn, assignment_id)
            details = load_details(conn, self.policy, request.id) if request else None
        spec = self.policy.types.get(details.request.type) if details else None
        return (details, spec) if details is not None and spec is not None else None

    def _snooze(self, person: Employee, digest_id: int) -> Response:
        """"Remind me tomorrow" on a digest: answered only to them, with when that will be."""
        until = snooze(self.engine.db, self.engine.calendar, person, digest_id, self.engine.clock())
        return Reply(snoozed_message(until, person.locale, person.timezone))

    def _reason_form(self, person: Employee, action: ReasonAction, assignment_id: int) -> Response:
        """Ask why (and, for a send-back, to whom) only while the card can still be acted on; a stale click
        shows the card as it now stands instead (who decided, when)."""
        locale = person.locale
        read = self._details_of(assignment_id)
        if read is None:
            return _reply(NO_LONGER_VALID(locale))
        details, spec = read
        found = details.person(assignment_id)
        if found is None or found[1].status != "pending" or details.request.status != "pending":
            return Reply(decided_card(details, spec, locale, person.timezone))
        step = found[0]
        earlier: Sequence[tuple[str, LocalText]] = ()
        if action == "send_back":
            # only earlier approval steps can redo their part; an FYI step has nothing to redo
            upto = details.steps.index(step)
            earlier = [(s.key, s.title) for s in details.steps[:upto] if s.kind == "approval"]
        return OpenForm(reason_form(action, assignment_id, locale, earlier))

    def _resubmit_form(self, person: Employee, request_id: int) -> Response:
        """The form prefilled with what was sent back; only for its requester, only while it is sent back."""
        with self.engine.db.unit_of_work(write=False) as conn:
            request = rq.get_request(conn, request_id)
        if request is None or request.requester_id != person.id or request.type not in self.policy.types:
            return _reply(NO_LONGER_VALID(person.locale))
        if request.status != "sent_back":
            return _reply(CANNOT_RESUBMIT(person.locale).format(number=request.number))
        return OpenForm(self._request_form(person, request.type, request))

    # ------------------------------------------------------------------------------------------ submissions

    def on_submit(self, ev: SubmitEvent) -> Response:
        """A form submitted: a request (new or fixed) or a reason for a decision."""
        person = self._identify(ev.who)
        if person is None:
            return CloseForm(_not_registered(ev.who))
        if ev.callback == CALLBACK:
            return self._submit_request(person, ev)
        if ev.callback == "decide_with_reason":
            return self._submit_reason(person, ev)
        if ev.callback == PICK_CALLBACK:
            return self._picked(person, ev)
        if ev.callback == broadcast.CALLBACK:
            return broadcast.on_submit(self.engine, person, ev.values)
        return CloseForm(_reply(FORM_NO_LONGER_VALID(person.locale)))

    def _submit_request(self, person: Employee, ev: SubmitEvent) -> Response:
        locale = person.locale
        state = read_state(ev.state)
        spec = self.policy.types.get(state.type_key) if state else None
        if state is None or spec is None:
            return CloseForm(_reply(FORM_NO_LONGER_VALID(locale)))
        payload = payload_from(spec, ev.values)
        if state.request_id is not None:
            outcome = self.engine.resubmit(state.request_id, person.id, payload)
        else:
            outcome = self.engine.submit(person.id, state.type_key, payload)
        if outcome.ok:
            return CloseForm(Reply(_outcome_message(outcome, locale)))
        note = self._leave_note(person, None) if spec.behaviour == "leave" else None
        form = form_for(state.type_key, spec, locale, initial=payload, note=note, request_id=state.request_id)
        if outcome.errors:
            return FormErrors(input_errors(outcome.errors, locale, ev.values), form)
        # no field is wrong (e.g. no approver could be found): the form can show it only under an input
        return FormErrors({_first_input(state.type_key, spec, locale, ev.values): outcome.message(locale)}, form)

    def _picked(self, person: Employee, ev: SubmitEvent) -> Response:
        """The shortcut's picker submitted: the same modal becomes the chosen type's form."""
        chosen = ev.values.get(PICK_INPUT)
        if not isinstance(chosen, str) or chosen not in self.policy.types:
            picker = self.on_shortcut(ev.who)
            return FormErrors({PICK_INPUT: PICKER_CHOOSE(person.locale)},
                              picker.form if isinstance(picker, OpenForm) else None)
        return OpenForm(self._request_form(person, chosen))

    def _submit_reason(self, person: Employee, ev: SubmitEvent) -> Response:
        locale = person.locale
        try:
            action, assignment_id = reason_state(ev.state)
        except (ValueError, KeyError, TypeError, AttributeError):
            return CloseForm(_reply(FORM_NO_LONGER_VALID(locale)))
        comment = ev.values.get("comment")
        to_step = ev.values.get("to_step")
        outcome = self.engine.decide(assignment_id, person.id, action, comment if isinstance(comment, str) else None,
                                     to_step=to_step if isinstance(to_step, str) and to_step != TO_APPLICANT
                                     else None, actor=person)
        if not outcome.ok and outcome.errors:
            again = self._reason_form(person, action, assignment_id)
            return FormErrors(input_errors(outcome.errors, locale), again.form if isinstance(again, OpenForm) else None)
        return CloseForm(Reply(_outcome_message(outcome, locale)))

    # ------------------------------------------------------------------------------------------ identity

    def identify(self, who: Who) -> Employee | None:
        """The employee behind a chat identity, or None for someone HR has not registered."""
        return self._identify(who)

    def _identify(self, who: Who) -> Employee | None:
        now = self.engine.clock()
        # Usually a read (one statement, no transaction of its own): a write transaction only for a new identity,
        # a changed language or a stale "last seen"
        with self.engine.db.unit_of_work(write=False, transaction=False) as conn:
            person = recognised(conn, who.platform, who.workspace, who.user_id, now, who.locale)
        if person is not None:
            return person
        with self.engine.db.unit_of_work() as conn:
            return identify(conn, who.platform, who.workspace, who.user_id, who.email, now, who.locale)


# ---------------------------------------------------------------------------------------------- helpers


def _not_registered(who: Who) -> Reply:
    return _reply(NOT_REGISTERED(normalize_locale(who.locale)))


def _reply(text: str) -> Reply:
    return Reply(line(text))


def _outcome_message(outcome: Outcome, locale: str) -> Message:
    """The engine's answer, with its warnings (e.g. a doubtful invoice number) under it."""
    text = outcome.message(locale)
    blocks: list[Block] = [Text(text, markdown=False)]
    blocks += [Text(f"⚠️ {w(locale)}", markdown=False) for w in outcome.warnings]
    return Message(text, tuple(blocks))


def _said(outcome: Outcome, locale: str) -> Reply:
    """What the engine said about a click, only to the clicker (a refusal changed nothing)."""
    return Reply(_outcome_message(outcome, locale))


def _integer(value: str) -> int | None:
    """A button's id, or None when a client sent something else."""
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def _first_input(type_key: str, spec: RequestTypeSpec, locale: str, values: Mapping[str, Any]) -> str:
    """Where a message about the whole form goes: the first input of the form."""
    names = [b.name for b in form_for(type_key, spec, locale).blocks if isinstance(b, Input)]
    return names[0] if names else next(iter(values), "")

