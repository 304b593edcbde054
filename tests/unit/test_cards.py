"""handlers.cards: request cards built from hand-made RequestDetails, rendered to Block Kit and checked by
slack_sdk's models in both languages: buttons and their values, delegate naming, queue buttons, escaping,
long comments, and the reason modal."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.slack.blockkit import render_form, render_message
from config.i18n import LocalText
from config.policy import Policy
from handlers.cards import (
    REASON_CALLBACK,
    TO_APPLICANT,
    approval_card,
    decided_card,
    reason_form,
    reason_state,
    requester_card,
)
from handlers.views import Actions, Button, Message
from models.requests import Request
from workflow.queries import PersonDecision, RequestDetails, StepView

TZ = "Asia/Tokyo"
LOCALES = ("ja", "en")
SUZUKI = LocalText.of("鈴木 一郎", "Ichiro Suzuki")
SATO = LocalText.of("佐藤 花子", "Hanako Sato")
ITO = LocalText.of("伊藤 誠", "Makoto Ito")
FILED = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)  # 10:00 JST, a Tuesday
DECIDED = datetime(2026, 6, 2, 1, 32, tzinfo=UTC)  # 10:32 JST
DUE = datetime(2026, 6, 5, 1, 0, tzinfo=UTC)  # Friday 10:00 JST


def person(aid: int, who: int, name: LocalText, status: str, *, actor: LocalText | None = None,
           when: datetime | None = None, comment: str | None = None) -> PersonDecision:
    return PersonDecision(who, name, status, actor, when, comment, assignment_id=aid,
                          acted_by_id=(99 if actor else who) if when else None)


def expense_details(status: str = "pending", *steps: StepView, comment: str | None = None) -> RequestDetails:
    payload: dict[str, Any] = {"purpose": "大阪出張 <!channel> & co", "items": [
        {"date": "2026-06-01", "payee": "JR東日本", "amount": 150000, "tax_rate": "10", "category": "travel",
         "receipt": "https://files.example.jp/r?a=1&b=<2>"}]}
    request = Request(id=7, number="EXP-2026-0001", type="expense", fiscal_year=2026, requester_id=4,
                      payload=payload, warnings=None, status=status, version=3, round=1, created_at=FILED,
                      updated_at=DECIDED, decided_at=DECIDED if status != "pending" else None)
    route = steps or (
        StepView("manager", LocalText.of("上長承認", "Manager"), "approval", "approved",
                 (person(11, 3, SUZUKI, "approved", when=DECIDED, comment=comment),), None),
        StepView("department_head", LocalText.of("部門長承認", "Department head"), "approval", "active",
                 (person(12, 2, SATO, "pending"),), DUE),
        StepView("finance", LocalText.of("経理確認", "Finance"), "approval", "waiting",
                 (person(13, 6, ITO, "waiting"), person(14, 7, LocalText.of("渡辺 恵", "Megumi Watanabe"),
                                                       "waiting")), None),
    )
    return RequestDetails(request, LocalText.of("経費精算", "Expense claim"), LocalText.of("高橋 愛", "Ai Takahashi"),
                          tuple(route), 0)


def rendered(message: Message, locale: str) -> dict[str, Any]:
    """The Block Kit payload, every block validated by slack_sdk."""
    payload = render_message(message, locale)
    assert 0 < len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    return payload


def buttons(message: Message) -> list[Button]:
    return [b for block in message.blocks if isinstance(block, Actions) for b in block.buttons]


@pytest.mark.parametrize("locale", LOCALES)
def test_approver_card_has_the_request_progress_due_date_and_three_buttons(policy: Policy, locale: str) -> None:
    card = approval_card(expense_details(), policy.types["expense"], 12, locale, TZ)
    payload = rendered(card, locale)
    assert [(b.action, b.value, b.style) for b in buttons(card)] == [
        ("approve", "12", "primary"), ("reject", "12", "danger"), ("send_back", "12", "default")]
    assert all(b.confirm is None for b in buttons(card))  # Reject's reason modal is the confirmation
    text = json.dumps(payload["blocks"], ensure_ascii=False)
    assert payload["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": (
        "経費精算 EXP-2026-0001" if locale == "ja" else "Expense claim EXP-2026-0001")}}
    if locale == "ja":
        assert "2026-06-05 (金) 10:00" in text and "高橋 愛" in text
        assert "✅ 上長承認 鈴木 一郎 → ⏳ 部門長承認 佐藤 花子 → ・ 経理確認" in text
    else:
        assert "2026-06-05 (Fri) 10:00" in text and "Ai Takahashi" in text
        assert "✅ Manager Ichiro Suzuki → ⏳ Department head Hanako Sato → ・ Finance" in text
    # user text is escaped: no mention, no broken link
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; co" in text
    assert "<https://files.example.jp/r?a=1&amp;b=&lt;2&gt;|" in text


@pytest.mark.parametrize("locale", LOCALES)
def test_a_card_the_reader_can_no_longer_act_on_is_the_decided_card(policy: Policy, locale: str) -> None:
    d = expense_details()
    card = approval_card(d, policy.types["expense"], 11, locale, TZ)  # the manager's card, approved already
    assert buttons(card) == [] and card == decided_card(d, policy.types["expense"], locale, TZ)
    text = json.dumps(rendered(card, locale)["blocks"], ensure_ascii=False)
    assert ("上長承認: 承認済み — 鈴木 一郎 2026-06-02 10:32" if locale == "ja"
            else "Manager: Approved — Ichiro Suzuki 2026-06-02 10:32") in text
    assert buttons(approval_card(d, policy.types["expense"], 999, locale, TZ)) == []  # not on this route


@pytest.mark.parametrize("locale", LOCALES)
def test_final_approval_by_a_delegate_names_both(policy: Policy, locale: str) -> None:
    step = StepView("manager", LocalText.of("上長承認", "Manager"), "approval", "approved",
                    (person(11, 2, SUZUKI, "approved", actor=SATO, when=DECIDED),), None)
    d = expense_details("approved", step)
    card = decided_card(d, policy.types["expense"], locale, TZ, note=LocalText.of("注記 <x>", "Note <x>"))
    text = json.dumps(rendered(card, locale)["blocks"], ensure_ascii=False)
    assert ("承認済み — 佐藤 花子（鈴木 一郎 の代理） 2026-06-02 10:32" if locale == "ja"
            else "Approved — Hanako Sato (on behalf of Ichiro Suzuki) 2026-06-02 10:32") in text
    assert "&lt;x&gt;" in text and buttons(card) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_a_3000_character_reason_does_not_break_the_card(policy: Policy, locale: str) -> None:
    reason = "<@U123> " + "長い理由" * 750
    step = StepView("manager", LocalText.of("上長承認", "Manager"), "approval", "rejected",
                    (person(11, 3, SUZUKI, "rejected", when=DECIDED, comment=reason),), None)
    d = expense_details("rejected", step)
    for card in (decided_card(d, policy.types["expense"], locale, TZ),
                 requester_card(d, policy.types["expense"], locale, TZ)):
        text = json.dumps(rendered(card, locale)["blocks"], ensure_ascii=False)
        assert "&lt;@U123&gt;" in text and "…" in text
        assert buttons(card) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_queue_cards_claim_then_resolve(policy: Policy, locale: str) -> None:
    kato, yoshida = LocalText.of("加藤 翔", "Sho Kato"), LocalText.of("吉田 優", "Yu Yoshida")
    title = LocalText.of("情報システム対応", "IT team")
    open_ = StepView("it_queue", title, "queue", "active",
                     (person(21, 10, kato, "pending"), person(22, 11, yoshida, "pending")), DUE)
    d = replace(expense_details("pending", open_), type_title=LocalText.of("ITサポート", "IT help"))
    spec = policy.types["it"]
    card = approval_card(d, spec, 21, locale, TZ)
    rendered(card, locale)
    assert [(b.action, b.value) for b in buttons(card)] == [("claim", "21")]
    taken = replace(open_, status="claimed", people=(person(21, 10, kato, "claimed", when=DECIDED),
                                                     person(22, 11, yoshida, "cancelled")))
    d = replace(d, steps=(taken,))
    assert [(b.action, b.value) for b in buttons(approval_card(d, spec, 21, locale, TZ))] == [("resolve", "21")]
    other = approval_card(d, spec, 22, locale, TZ)
    assert buttons(other) == []
    text = json.dumps(rendered(other, locale)["blocks"], ensure_ascii=False)
    assert ("対応中 — 加藤 翔" if locale == "ja" else "Claimed — Sho Kato") in text


@pytest.mark.parametrize("locale", LOCALES)
def test_requester_card_withdraw_and_resubmit(policy: Policy, locale: str) -> None:
    spec = policy.types["expense"]
    pending = requester_card(expense_details(), spec, locale, TZ)
    rendered(pending, locale)
    [withdraw] = buttons(pending)
    assert (withdraw.action, withdraw.value, withdraw.confirm is not None) == ("withdraw", "7", True)
    step = StepView("manager", LocalText.of("上長承認", "Manager"), "approval", "sent_back",
                    (person(11, 3, SUZUKI, "sent_back", when=DECIDED, comment="内訳を追記してください"),), None)
    back = requester_card(expense_details("sent_back", step), spec, locale, TZ)
    text = json.dumps(rendered(back, locale)["blocks"], ensure_ascii=False)
    assert [(b.action, b.value) for b in buttons(back)] == [("resubmit", "7"), ("withdraw", "7")]
    assert "内訳を追記してください" in text
    assert ("差し戻し — 鈴木 一郎" if locale == "ja" else "Sent back — Ichiro Suzuki") in text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("action", ["reject", "send_back"])
def test_reason_form(locale: str, action: Any) -> None:
    earlier = [("manager", LocalText.of("上長承認", "Manager"))]
    form = reason_form(action, 12, locale, earlier)
    view = render_form(form, locale)
    View(**view).validate_json()
    for block in view["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    assert view["callback_id"] == REASON_CALLBACK and reason_state(view["private_metadata"]) == (action, 12)
    names = [b["block_id"] for b in view["blocks"]]
    assert names == (["comment", "to_step"] if action == "send_back" else ["comment"])
    assert view["blocks"][0]["element"]["multiline"] is True and view["blocks"][0].get("optional") is not True
    if action == "send_back":
        values = [o["value"] for o in view["blocks"][1]["element"]["options"]]
        assert values == [TO_APPLICANT, "manager"]
    with pytest.raises(ValueError):
        reason_state('{"action": "approve", "assignment_id": 1}')
