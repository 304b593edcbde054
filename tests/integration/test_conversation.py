"""The platform-neutral conversation with the real engine, on SQLite and PostgreSQL: commands, clicks and form
submissions in, responses out; every view it returns rendered as Block Kit and checked by slack_sdk's models.

Form answers are given the way the Slack edge gives them: the form is rendered as a modal, filled in as Slack's
view.state.values, and read back with `read_submission` (so keyed by Input.name).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.slack.blockkit import read_submission, render_form, render_message
from config.policy import Policy
from handlers.conversation import Conversation
from handlers.events import (
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
from handlers.views import Actions, Button, Context, Form, Input, Message
from models import people
from models.base import metadata
from models.db import Database
from tests.conftest import Clock, Org
from tests.integration.test_engine import expense
from tests.unit.test_blockkit import valid_message, valid_view
from workflow.engine import Engine
from workflow.identity import identify
from workflow.nudges import Nudger

EMAILS = {"alice": "alice@example.jp", "bob": "bob@example.jp", "manager": "mgr@example.jp",
          "it1": "it1@example.jp", "it2": "it2@example.jp", "sales_head": "head@example.jp"}


@pytest.fixture
def talk(db: Database, policy: Policy, clock: Clock) -> Conversation:
    return Conversation(Engine(db, policy, clock=clock))


@pytest.fixture
def who(db: Database, org: Org, clock: Clock) -> dict[str, Who]:
    """Chat identities of some org people, remembered by their first contact (matched by email)."""
    found: dict[str, Who] = {}
    with db.unit_of_work() as conn:
        for name, email in EMAILS.items():
            assert identify(conn, "slack", "T1", f"U-{name}", email, clock()) is not None
            found[name] = Who("slack", "T1", f"U-{name}")  # later events carry no email
    return found


# ------------------------------------------------------------------------------------------------ helpers


def shown(response: Response) -> Response:
    """Render every view in a response as Block Kit and have slack_sdk check it."""
    match response:
        case OpenForm(form=form):
            valid_view(render_form(form))
        case Reply(message=message):
            valid_message(render_message(message))
        case CloseForm(reply=Reply(message=message)):
            valid_message(render_message(message))
    return response


def text_of(message: Message) -> str:
    return "\n".join([message.fallback, *(str(getattr(b, "text", "")) for b in message.blocks)])


def reply_text(response: Response) -> str:
    if isinstance(response, CloseForm):
        assert response.reply is not None
        response = response.reply
    assert isinstance(response, Reply), response
    return text_of(response.message)


def opened(response: Response) -> Form:
    assert isinstance(shown(response), OpenForm), response
    assert isinstance(response, OpenForm)
    return response.form


def slack_values(form: Form, answers: dict[str, Any]) -> dict[str, Any]:
    """The form as a modal, filled in as Slack reports it in view.state.values, read back as the edge does."""
    view = render_form(form)
    state: dict[str, Any] = {}
    for block in (b for b in view["blocks"] if b["type"] == "input"):
        element, answer = block["element"], answers.get(block["block_id"])
        kind = element["type"]
        if kind == "datepicker":
            value: dict[str, Any] = {"type": kind, "selected_date": answer}
        elif kind == "static_select":
            option = {"text": {"type": "plain_text", "text": str(answer)}, "value": answer} if answer else None
            value = {"type": kind, "selected_option": option}
        else:
            value = {"type": kind, "value": answer}
        state[block["block_id"]] = {element["action_id"]: value}
    return read_submission(state)


def submit(talk: Conversation, person: Who, form: Form, answers: dict[str, Any]) -> Response:
    return shown(talk.on_submit(SubmitEvent(person, form.callback, form.state, slack_values(form, answers))))


def buttons(message: Message) -> list[Button]:
    return [b for block in message.blocks if isinstance(block, Actions) for b in block.buttons]


def inbox_button(talk: Conversation, person: Who, action: str) -> Button:
    response = shown(talk.on_command(CommandEvent(person, "inbox")))
    assert isinstance(response, Reply)
    return next(b for b in buttons(response.message) if b.action == action)


def counts(db: Database) -> dict[str, int]:
    with db.unit_of_work(write=False) as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables}


def request_status(db: Database) -> list[str]:
    with db.unit_of_work(write=False) as conn:
        return list(conn.execute(sa.text("SELECT status FROM requests ORDER BY id")).scalars())


LEAVE = {"unit": "full", "period.start": "2026-06-08", "period.end": "2026-06-08"}


def file_leave(talk: Conversation, person: Who) -> str:
    form = opened(talk.on_command(CommandEvent(person, "休暇")))
    response = submit(talk, person, form, LEAVE)
    assert isinstance(response, CloseForm), response
    return reply_text(response)


# ------------------------------------------------------------------------------------------------ identity


def test_an_unknown_person_is_told_hr_has_not_registered_them_and_nothing_is_stored(
        talk: Conversation, db: Database, org: Org) -> None:
    before = counts(db)
    stranger = Who("slack", "T1", "U-x", email="stranger@example.jp")
    assert "人事部" in reply_text(shown(talk.on_command(CommandEvent(stranger, "休暇"))))
    english = Who("slack", "T1", "U-y", locale="en-US")
    assert "HR has not registered you" in reply_text(shown(talk.on_click(ClickEvent(english, "approve", "1"))))
    response = talk.on_submit(SubmitEvent(english, "submit_request", '{"t":"leave"}', {"unit": "full"}))
    assert "HR has not registered you" in reply_text(shown(response))
    assert counts(db) == before


def test_an_identity_is_remembered_on_first_contact(talk: Conversation, db: Database, org: Org) -> None:
    first = Who("slack", "T9", "U-alice", email="ALICE@example.jp")
    assert "あなたの申請" not in reply_text(talk.on_command(CommandEvent(first, "status")))  # none yet
    assert "人事部" not in reply_text(talk.on_command(CommandEvent(first, "status")))
    later = Who("slack", "T9", "U-alice")
    assert "人事部" not in reply_text(talk.on_command(CommandEvent(later, "status")))
    assert counts(db)["chat_identities"] == 1
    # the same user id in another workspace is another person, unknown until matched
    assert "人事部" in reply_text(talk.on_command(CommandEvent(Who("slack", "T8", "U-alice"), "status")))


def test_someone_who_left_is_not_recognised(talk: Conversation, db: Database, org: Org,
                                            who: dict[str, Who]) -> None:
    with db.unit_of_work() as conn:
        people.update_employee(conn, org.alice, active=False)
    assert "人事部" in reply_text(talk.on_command(CommandEvent(who["alice"], "status")))


# ------------------------------------------------------------------------------------------------ commands


def test_the_leave_form_shows_the_balance_in_the_persons_language(talk: Conversation,
                                                                   who: dict[str, Who]) -> None:
    ja = opened(talk.on_command(CommandEvent(who["alice"], "休暇")))
    note = next(b.text for b in ja.blocks if isinstance(b, Context))
    assert "有給残日数" in note and "申請中 0 日" in note and "年5日取得" in note
    en = opened(talk.on_command(CommandEvent(who["bob"], "leave")))
    assert en.title == "Leave request"
    assert any(isinstance(b, Context) and "Paid leave left" in b.text for b in en.blocks)


def test_picker_help_status_and_unknown(talk: Conversation, who: dict[str, Who]) -> None:
    picker = shown(talk.on_command(CommandEvent(who["alice"], "")))
    assert isinstance(picker, Reply) and {b.value for b in buttons(picker.message)} >= {"leave", "expense"}
    assert "How to use" in reply_text(shown(talk.on_command(CommandEvent(who["bob"], "help"))))
    assert "no requests yet" in reply_text(shown(talk.on_command(CommandEvent(who["bob"], "status"))))
    assert "Nothing is waiting" in reply_text(shown(talk.on_command(CommandEvent(who["bob"], "inbox"))))
    assert "did not understand" in reply_text(shown(talk.on_command(CommandEvent(who["bob"], "dance"))))
    form = opened(talk.on_click(ClickEvent(who["bob"], "open_form", "expense")))
    assert form.title == "Expense claim"


# ------------------------------------------------------------------------------------------------ the journey


def test_file_approve_and_a_second_click_says_who_already_approved(talk: Conversation, db: Database,
                                                                   who: dict[str, Who]) -> None:
    said = file_leave(talk, who["alice"])
    assert "LV-2026-0001 を申請しました" in said
    status = reply_text(shown(talk.on_command(CommandEvent(who["alice"], "状況"))))
    assert "LV-2026-0001" in status and "承認待ち" in status
    approve = inbox_button(talk, who["manager"], "approve")
    assert "承認しました" in reply_text(shown(talk.on_click(ClickEvent(who["manager"], "approve", approve.value))))
    again = reply_text(shown(talk.on_click(ClickEvent(who["manager"], "approve", approve.value))))
    assert "鈴木 一郎" in again and "承認済み" in again
    assert request_status(db) == ["approved"]
    assert "対応待ちの申請はありません" in reply_text(talk.on_command(CommandEvent(who["manager"], "inbox")))


def test_form_errors_come_back_under_the_inputs_and_nothing_is_stored(talk: Conversation, db: Database,
                                                                      who: dict[str, Who]) -> None:
    form = opened(talk.on_command(CommandEvent(who["bob"], "leave")))
    before = counts(db)
    response = submit(talk, who["bob"], form, {"unit": "am", "period.start": "2026-06-08",
                                               "period.end": "2026-06-09"})
    assert isinstance(response, FormErrors) and "one date" in response.errors["period"]
    inputs = {b.name for b in form.blocks if isinstance(b, Input)}
    assert set(response.errors) <= inputs
    assert counts(db) == before


def test_reject_asks_for_a_reason(talk: Conversation, db: Database, who: dict[str, Who]) -> None:
    file_leave(talk, who["alice"])
    reject = inbox_button(talk, who["manager"], "reject")
    form = opened(talk.on_click(ClickEvent(who["manager"], "reject", reject.value)))
    missing = submit(talk, who["manager"], form, {"comment": "  "})
    assert isinstance(missing, FormErrors) and "理由" in missing.errors["comment"]
    assert request_status(db) == ["pending"]
    done = submit(talk, who["manager"], form, {"comment": "繁忙期のため"})
    assert isinstance(done, CloseForm) and "却下しました" in reply_text(done)
    assert request_status(db) == ["rejected"]


def test_send_back_then_the_requester_fixes_and_resubmits(talk: Conversation, db: Database,
                                                          who: dict[str, Who]) -> None:
    file_leave(talk, who["alice"])
    send_back = inbox_button(talk, who["manager"], "send_back")
    reason = opened(talk.on_click(ClickEvent(who["manager"], "send_back", send_back.value)))
    assert "差し戻しました" in reply_text(submit(talk, who["manager"], reason, {"comment": "日付を確認してください"}))
    assert request_status(db) == ["sent_back"]
    with db.unit_of_work(write=False) as conn:
        request_id = str(conn.execute(sa.text("SELECT id FROM requests")).scalar_one())
    # only the requester may open the fix form
    assert "no longer valid" in reply_text(shown(talk.on_click(ClickEvent(who["bob"], "resubmit", request_id))))
    form = opened(talk.on_click(ClickEvent(who["alice"], "resubmit", request_id)))
    unit = next(b for b in form.blocks if isinstance(b, Input) and b.name == "unit")
    assert unit.initial == "full" and '"r":' in form.state
    # the form says which request it fixes (its number stays), above the leave balance
    notes = [b.text for b in form.blocks if isinstance(b, Context)]
    assert notes and notes[0].startswith("✏️ LV-2026-0001 を直して再申請します") and "有給残日数" in notes[0]
    response = submit(talk, who["alice"], form, {**LEAVE, "period.start": "2026-06-09", "period.end": "2026-06-09"})
    assert "LV-2026-0001 を再申請しました" in reply_text(response)
    assert request_status(db) == ["pending"]
    again = reply_text(shown(talk.on_click(ClickEvent(who["alice"], "resubmit", request_id))))
    assert "差し戻されていない" in again


def test_withdraw(talk: Conversation, db: Database, who: dict[str, Who]) -> None:
    file_leave(talk, who["alice"])
    with db.unit_of_work(write=False) as conn:
        request_id = str(conn.execute(sa.text("SELECT id FROM requests")).scalar_one())
    assert "申請者本人だけ" in reply_text(shown(talk.on_click(ClickEvent(who["manager"], "withdraw", request_id))))
    assert "取り下げました" in reply_text(shown(talk.on_click(ClickEvent(who["alice"], "withdraw", request_id))))
    assert request_status(db) == ["withdrawn"]


def test_it_help_is_claimed_and_resolved_from_the_queue(talk: Conversation, db: Database,
                                                        who: dict[str, Who]) -> None:
    form = opened(talk.on_command(CommandEvent(who["bob"], "it")))
    filed = submit(talk, who["bob"], form, {"category": "device", "subject": "PC won't start",
                                            "details": "Black screen since this morning", "urgency": "high"})
    assert "Submitted IT-2026-0001" in reply_text(filed)
    claim = inbox_button(talk, who["it1"], "claim")
    assert "担当になりました" in reply_text(shown(talk.on_click(ClickEvent(who["it1"], "claim", claim.value))))
    # it2's copy of the queue item is over: nothing left to claim
    assert "対応待ちの申請はありません" in reply_text(talk.on_command(CommandEvent(who["it2"], "inbox")))
    resolve = inbox_button(talk, who["it1"], "resolve")
    assert "対応済み" in reply_text(shown(talk.on_click(ClickEvent(who["it1"], "resolve", resolve.value))))
    assert request_status(db) == ["resolved"]


def test_the_inbox_caps_cards_and_counts_the_rest(talk: Conversation, who: dict[str, Who]) -> None:
    for _ in range(12):
        form = opened(talk.on_command(CommandEvent(who["bob"], "it")))
        submit(talk, who["bob"], form, {"category": "other", "subject": "help", "details": "x", "urgency": "low"})
    response = shown(talk.on_command(CommandEvent(who["it1"], "承認")))
    assert isinstance(response, Reply)
    claims = [b for b in buttons(response.message) if b.action == "claim"]
    assert 1 <= len(claims) <= 10
    assert f"ほか {12 - len(claims)} 件" in text_of(response.message)
    assert claims[0].value < claims[-1].value or len(claims) == 1  # oldest first


# ------------------------------------------------------------------------------------------------ bad clicks


def test_malformed_and_foreign_clicks_change_nothing(talk: Conversation, db: Database,
                                                     who: dict[str, Who]) -> None:
    file_leave(talk, who["alice"])
    approve = inbox_button(talk, who["manager"], "approve")
    before = counts(db)
    for action, value in [("approve", "abc"), ("approve", ""), ("dance", approve.value), ("open_form", "nope"),
                          ("approve", "99999")]:
        response = shown(talk.on_click(ClickEvent(who["bob"], action, value)))
        assert isinstance(response, Reply)
    assert "no longer valid" in reply_text(talk.on_click(ClickEvent(who["bob"], "approve", "abc")))
    assert "may not act" in reply_text(shown(talk.on_click(ClickEvent(who["bob"], "approve", approve.value))))
    assert "自分の申請" in reply_text(shown(talk.on_click(ClickEvent(who["alice"], "approve", approve.value))))
    bad_form = talk.on_submit(SubmitEvent(who["bob"], "decide_with_reason", "not json", {"comment": "x"}))
    assert "no longer valid" in reply_text(shown(bad_form))
    stray = talk.on_submit(SubmitEvent(who["bob"], "submit_request", '{"t":"nope"}', {}))
    assert "no longer valid" in reply_text(shown(stray))
    assert "no longer valid" in reply_text(shown(talk.on_submit(SubmitEvent(who["bob"], "other", "", {}))))
    assert counts(db) == before
    assert request_status(db) == ["pending"]


# ------------------------------------------------------------------------------------------------ escalation


def test_an_escalated_request_waits_in_the_inbox_of_whom_it_escalated_to(talk: Conversation, db: Database,
                                                                         policy: Policy, clock: Clock, org: Org,
                                                                         who: dict[str, Who]) -> None:
    outcome = talk.engine.submit(org.alice, "expense", expense(5000))
    assert outcome.ok and outcome.request is not None
    empty = shown(talk.on_command(CommandEvent(who["sales_head"], "inbox")))
    assert isinstance(empty, Reply) and not [b for b in buttons(empty.message) if b.action == "approve"]
    # a week later (the shipped expense SLA is 3 business days; escalation follows overdue): the manager's step
    # escalated to their own manager, the sales head
    later = datetime(2026, 6, 16, 1, 0, tzinfo=UTC)
    assert Nudger(db, policy).tick(later).escalated == 1
    clock.now = later
    response = shown(talk.on_command(CommandEvent(who["sales_head"], "承認")))
    assert isinstance(response, Reply)
    approve = next(b for b in buttons(response.message) if b.action == "approve")
    assert approve.value == str(outcome.open_assignments[0])
    assert "代わりに判断できます" in text_of(response.message)
    # the manager's own inbox shows the same item without the note (it is theirs)
    own = shown(talk.on_command(CommandEvent(who["manager"], "inbox")))
    assert isinstance(own, Reply) and "代わりに" not in text_of(own.message)
    # the sales head acts from their inbox; then it is gone from it
    clicked = talk.on_click(ClickEvent(who["sales_head"], "approve", approve.value))
    assert "EXP-2026-0001" in reply_text(clicked)
    after = shown(talk.on_command(CommandEvent(who["sales_head"], "inbox")))
    assert isinstance(after, Reply) and not [b for b in buttons(after.message) if b.action == "approve"]


# ------------------------------------------------------------------------------------------------ where messages go


def test_a_person_chooses_where_their_messages_go(talk: Conversation, db: Database, org: Org, clock: Clock,
                                                  who: dict[str, Who]) -> None:
    from models import people as staff
    from workflow import delivery

    def reached() -> str | None:
        with db.unit_of_work(write=False) as conn:
            found = delivery.reach(conn, org.manager)
        return found.platform if found else None

    def chosen_events() -> int:
        with db.unit_of_work(write=False) as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM audit_events WHERE kind = "
                                            "'employee.notify_platform_chosen'")).scalar_one())

    manager = who["manager"]
    assert reached() == "slack"
    # Teams not installed yet: the choice is kept, the reply says Teams cannot reach them yet, Slack still does
    answer = reply_text(shown(talk.on_command(CommandEvent(manager, "通知 Teams"))))
    assert "Teams" in answer and "まだ" in answer and reached() == "slack"
    with db.unit_of_work() as conn:  # now the manager has the Teams app (a conversation reference), used earlier
        staff.remember_identity(conn, org.manager, "teams", "tenant", "aad-manager", clock() - timedelta(days=3))
        staff.set_identity_address(conn, "teams", "tenant", "aad-manager", {"conversation": {"id": "a:m"}})
    assert reached() == "teams"  # chosen, and reachable there: wins over the Slack he used last
    assert "Teams" in reply_text(shown(talk.on_command(CommandEvent(manager, "notify"))))
    again = reply_text(shown(talk.on_command(CommandEvent(manager, "notify teams"))))
    assert "まだ" not in again and chosen_events() == 1  # the same choice again: no second audit event
    talk.on_command(CommandEvent(manager, "通知 自動"))
    assert reached() == "slack" and chosen_events() == 2  # automatic: where he was last seen
    before = chosen_events()
    unknown = reply_text(shown(talk.on_command(CommandEvent(manager, "notify carrier-pigeon"))))
    assert "carrier-pigeon" in unknown and chosen_events() == before and reached() == "slack"
