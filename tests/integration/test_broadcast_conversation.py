"""Broadcasts through the neutral conversation (both backends): the command opens the form for HR only, bad
answers come back under their inputs with nothing stored, a good one sends; each DM is in the recipient's
language with the "I have read" button, which acknowledges once; HR's home shows the counts and a remind
button; the 年5日 messages. Every view is Block Kit checked by slack_sdk."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from bot.slack.blockkit import read_submission, render_form, render_home, render_message
from config.policy import Policy
from handlers import broadcast, notifications
from handlers.conversation import Conversation
from handlers.events import ClickEvent, CloseForm, CommandEvent, FormErrors, OpenForm, Reply, SubmitEvent, Who
from handlers.home import home_for
from handlers.views import Actions, Form, Input, Message
from models import broadcasts as rows
from models.db import Database
from models.messaging import OutboxMessage, outbox
from tests.conftest import Clock, Org
from tests.unit.test_blockkit import valid_message, valid_view
from workflow import five_day_campaign as campaign
from workflow.engine import Engine
from workflow.identity import identify

EMAILS = {"hr": "hr@example.jp", "alice": "alice@example.jp", "bob": "bob@example.jp", "manager": "mgr@example.jp"}


@pytest.fixture
def talk(db: Database, policy: Policy, clock: Clock) -> Conversation:
    return Conversation(Engine(db, policy, clock=clock))


@pytest.fixture
def who(db: Database, org: Org, clock: Clock) -> dict[str, Who]:
    with db.unit_of_work() as conn:
        for name, email in EMAILS.items():
            assert identify(conn, "slack", "T1", f"U-{name}", email, clock()) is not None
    return {name: Who("slack", "T1", f"U-{name}") for name in EMAILS}


def answers(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"audience": "people", "targets": "alice@example.jp, bob@example.jp",
                            "message_ja": "健康診断の予約をお願いします", "message_en": "Please book your health check",
                            "ack": "yes", "send_date": None, "send_time": None, "repeat": "none", "until": None}
    return {**base, **values}


def rows_of(db: Database, *kinds: str) -> list[OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        found = conn.execute(sa.select(outbox).where(outbox.c.kind.in_(kinds)).order_by(outbox.c.id))
        return [OutboxMessage(**r._mapping) for r in found]


def rendered(db: Database, policy: Policy, row: OutboxMessage) -> tuple[Message, str]:
    with db.unit_of_work(write=False) as conn:
        found = notifications.message_for(conn, policy, policy.company.timezone, row)
    assert found is not None
    valid_message(render_message(*found))
    return found


def buttons(message: Message) -> list[tuple[str, str, str]]:
    return [(b.label, b.action, b.value) for block in message.blocks if isinstance(block, Actions)
            for b in block.buttons]


@pytest.mark.parametrize("words", ["broadcast", "一斉送信", "お知らせ", "Broadcast"])
def test_hr_opens_the_form(talk: Conversation, who: dict[str, Who], words: str) -> None:
    response = talk.on_command(CommandEvent(who["hr"], words))
    assert isinstance(response, OpenForm) and response.form.callback == broadcast.CALLBACK
    view = valid_view(render_form(response.form))
    assert {b["block_id"] for b in view["blocks"] if b["type"] == "input"} >= {
        "audience", "targets", "message_ja", "message_en", "ack", "send_date", "send_time", "repeat", "until"}


def test_others_get_a_polite_refusal(talk: Conversation, who: dict[str, Who]) -> None:
    response = talk.on_command(CommandEvent(who["alice"], "broadcast"))
    assert isinstance(response, Reply)
    valid_message(render_message(response.message))
    assert "人事部または管理者" in response.message.fallback
    # and a forged submission changes nothing
    forged = talk.on_submit(SubmitEvent(who["alice"], broadcast.CALLBACK, "", answers()))
    assert isinstance(forged, CloseForm)


@pytest.mark.parametrize(("values", "field"), [
    ({"targets": "ghost@example.jp"}, "targets"),
    ({"audience": "departments", "targets": "NOPE"}, "targets"),
    ({"audience": "roles", "targets": "astronaut"}, "targets"),
    ({"message_ja": "", "message_en": "  "}, "message_ja"),
    ({"send_date": date(2026, 6, 1), "send_time": "09:00"}, "send_date"),
    ({"send_time": "25:00"}, "send_time"),
    ({"send_date": date(2026, 6, 10), "repeat": "weekly", "until": date(2026, 6, 9)}, "until"),
    ({"until": date(2026, 6, 30)}, "until"),  # an end without a repeat
])
def test_bad_answers_come_back_under_their_input(talk: Conversation, who: dict[str, Who], db: Database,
                                                 values: dict[str, Any], field: str) -> None:
    response = talk.on_submit(SubmitEvent(who["hr"], broadcast.CALLBACK, "", answers(**values)))
    assert isinstance(response, FormErrors), response
    assert list(response.errors) == [field]
    with db.unit_of_work(write=False) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rows.broadcasts)).scalar_one() == 0


def test_send_acknowledge_and_home(talk: Conversation, who: dict[str, Who], db: Database, policy: Policy,
                                   org: Org) -> None:
    # the form's own Block Kit, submitted as Slack would send it back, reads into the same answers
    form = talk.on_command(CommandEvent(who["hr"], "broadcast"))
    assert isinstance(form, OpenForm)
    assert set(answers()) <= {b.name for b in form.form.blocks if isinstance(b, Input)}
    done = talk.on_submit(SubmitEvent(who["hr"], broadcast.CALLBACK, "", answers()))
    assert isinstance(done, CloseForm) and done.reply is not None
    valid_message(render_message(done.reply.message))
    assert "2 人" in done.reply.message.fallback

    dms = {r.recipient_id: r for r in rows_of(db, "broadcast")}
    alice_dm, _ = rendered(db, policy, dms[org.alice])
    bob_dm, locale = rendered(db, policy, dms[org.bob])
    assert locale == "en" and "Please book your health check" in bob_dm.fallback
    assert "健康診断" in alice_dm.fallback
    [(label, action, value)] = buttons(alice_dm)
    assert (label, action) == ("確認しました", broadcast.ACK)

    assert isinstance(talk.on_click(ClickEvent(who["bob"], action, value)), Reply)  # not Bob's button
    first = talk.on_click(ClickEvent(who["alice"], action, value))
    second = talk.on_click(ClickEvent(who["alice"], action, value))
    assert isinstance(first, Reply) and isinstance(second, Reply)
    assert "ありがとうございます" in first.message.fallback and "確認済み" in second.message.fallback
    after, _ = rendered(db, policy, dms[org.alice])
    assert buttons(after) == [] and "✅ 確認済み" in "\n".join(str(getattr(b, "text", "")) for b in after.blocks)
    [update] = rows_of(db, "broadcast_update")
    assert update.payload["updates"] == dms[org.alice].id

    home = home_for(talk, who["hr"])
    valid_view(render_home(home))
    [(label, action, value)] = [b for b in buttons(Message("", home.blocks)) if b[1] == broadcast.REMIND]
    assert label == "未確認者に再送"
    reminded = talk.on_click(ClickEvent(who["hr"], action, value))
    assert isinstance(reminded, Reply) and "1 人" in reminded.message.fallback
    [reminder] = rows_of(db, "broadcast_reminder")
    assert reminder.recipient_id == org.bob
    again, _ = rendered(db, policy, reminder)
    assert "Reminder" in again.blocks[0].text  # type: ignore[union-attr]
    assert [b for b in buttons(Message("", home_for(talk, who["alice"]).blocks)) if b[1] == broadcast.REMIND] == []


def test_five_day_messages(talk: Conversation, who: dict[str, Who], db: Database, policy: Policy, org: Org,
                           clock: Clock) -> None:
    assert campaign.run(db, policy, clock.now) > 0
    nudge = next(r for r in rows_of(db, campaign.NUDGE_KIND) if r.recipient_id == org.bob)
    message, locale = rendered(db, policy, nudge)
    assert locale == "en" and "5 days" in message.fallback
    [(label, action, value)] = buttons(message)
    assert label == "Request leave"
    opened = talk.on_click(ClickEvent(who["bob"], action, value))
    assert isinstance(opened, OpenForm) and isinstance(opened.form, Form)
    digest = next(r for r in rows_of(db, campaign.DIGEST_KIND) if r.recipient_id == org.manager)
    text, _ = rendered(db, policy, digest)
    body = "\n".join(str(getattr(b, "text", "")) for b in text.blocks)
    assert "高橋 愛" in body and "田中 健" in body


def test_read_submission_of_the_form_matches(talk: Conversation, who: dict[str, Who]) -> None:
    form = talk.on_command(CommandEvent(who["hr"], "お知らせ"))
    assert isinstance(form, OpenForm)
    view = render_form(form.form)
    state = {b["block_id"]: {"value": {"type": "plain_text_input", "value": None}}
             for b in view["blocks"] if b["type"] == "input"}
    assert set(read_submission(state)) >= set(answers())
