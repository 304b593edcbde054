"""handlers.commands: what a person typed, understood (Japanese and English, full-width, a company's own
types), and the help / picker / not-understood messages rendered as Block Kit and validated by slack_sdk."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block as SlackBlock

from bot.slack.blockkit import render_message
from config.policy import Policy, load_policy, parse_policy
from config.settings import DEFAULT_WORKFLOWS
from handlers.commands import (
    OPEN_FORM,
    SET_LANGUAGE,
    Command,
    help_message,
    language_buttons,
    language_choice,
    language_line,
    language_message,
    language_set_message,
    language_unknown_message,
    parse_command,
    picker_message,
    type_words,
    unknown_message,
)
from handlers.views import Actions, Context, Message

POLICY: Policy = load_policy(DEFAULT_WORKFLOWS)
LOCALES = ("ja", "en")


def _raw() -> dict[str, Any]:
    with open(DEFAULT_WORKFLOWS, encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def _without_stamp() -> Policy:
    data = _raw()
    del data["types"]["stamp"]
    return parse_policy(data)


def _with_ringi() -> Policy:
    data = _raw()
    ringi = copy.deepcopy(data["types"]["stamp"])
    ringi.update(prefix="RG", title={"ja": "稟議", "en": "Approval request"}, area="general_affairs",
                 description={"ja": "決裁が必要な案件の稟議書です。", "en": "For decisions that need sign-off."})
    data["types"]["ringi"] = ringi
    return parse_policy(data)


NO_STAMP = _without_stamp()
RINGI = _with_ringi()


# ------------------------------------------------------------------------------------------------ parsing

CASES: list[tuple[str, str, str | None, str]] = [
    # text, kind, type key, rest
    ("", "picker", None, ""),
    ("   ", "picker", None, ""),
    ("\u3000", "picker", None, ""),
    ("new", "picker", None, ""),
    ("申請", "picker", None, ""),
    ("NEW", "picker", None, ""),
    ("leave", "form", "leave", ""),
    ("休暇", "form", "leave", ""),
    ("ＬＥＡＶＥ", "form", "leave", ""),
    ("Leave", "form", "leave", ""),
    ("  leave   2026-06-08  ", "form", "leave", "2026-06-08"),
    ("休暇\u30002026-06-08\u3000通院", "form", "leave", "2026-06-08 通院"),
    ("leave Doctor Visit", "form", "leave", "Doctor Visit"),
    ("休暇申請", "form", "leave", ""),
    ("leave request", "form", "leave", ""),
    ("expense", "form", "expense", ""),
    ("経費", "form", "expense", ""),
    ("経費精算", "form", "expense", ""),
    ("stamp", "form", "stamp", ""),
    ("押印", "form", "stamp", ""),
    ("it", "form", "it", ""),
    ("IT", "form", "it", ""),
    ("ＩＴ", "form", "it", ""),
    ("IT help", "form", "it", ""),
    ("status", "status", None, ""),
    ("状況", "status", None, ""),
    ("STATUS", "status", None, ""),
    ("inbox", "inbox", None, ""),
    ("承認", "inbox", None, ""),
    ("help", "help", None, ""),
    ("ヘルプ", "help", None, ""),
    ("?", "help", None, ""),
    ("？", "help", None, ""),
    ("Help me", "help", None, "me"),
    ("language", "language", None, ""),
    ("Language en", "language", None, "en"),
    ("言語", "language", None, ""),
    ("言語 英語", "language", None, "英語"),
    ("言語\u3000日本語", "language", None, "日本語"),
    ("ｌａｎｇｕａｇｅ　ａｕｔｏ", "language", None, "auto"),
]


@pytest.mark.parametrize(("text", "kind", "type_key", "rest"), CASES)
def test_parse_command(text: str, kind: str, type_key: str | None, rest: str) -> None:
    command = parse_command(text, POLICY)
    assert (command.kind, command.type_key, command.rest) == (kind, type_key, rest)


@pytest.mark.parametrize("text", ["hello", "休み", "leaves", "ringi", "稟議", "/madoguchi", "??", "leave-request"])
def test_unknown_words(text: str) -> None:
    assert parse_command(text, POLICY) == Command(kind="unknown", text=text)


def test_unknown_keeps_the_normalized_text() -> None:
    assert parse_command("  ｈｅｌｌｏ\u3000 world ", POLICY) == Command(kind="unknown", text="hello world")


@pytest.mark.parametrize("text", ["押印", "stamp", "押印申請"])
def test_a_type_missing_from_the_policy_is_unknown(text: str) -> None:
    assert parse_command(text, NO_STAMP).kind == "unknown"
    assert parse_command("休暇", NO_STAMP) == Command(kind="form", type_key="leave", text="休暇")


@pytest.mark.parametrize(("text", "rest"), [("ringi", ""), ("RINGI", ""), ("稟議", ""), ("稟議 契約書の件", "契約書の件"),
                                            ("approval request", ""), ("Approval Request x", "x")])
def test_a_company_type_by_key_and_title(text: str, rest: str) -> None:
    command = parse_command(text, RINGI)
    assert (command.kind, command.type_key, command.rest) == ("form", "ringi", rest)


def test_action_words_win_over_a_type_of_the_same_name() -> None:
    data = _raw()
    data["types"]["help"] = copy.deepcopy(data["types"]["it"])
    policy = parse_policy(data)
    assert parse_command("help", policy).kind == "help"


@given(st.text())
def test_parse_command_never_raises(text: str) -> None:
    command = parse_command(text, RINGI)
    assert command.kind in ("picker", "form", "status", "inbox", "help", "language", "unknown")
    assert (command.type_key is not None) == (command.kind == "form")


@pytest.mark.parametrize(("rest", "choice"), [
    ("en", "en"), ("EN", "en"), ("english", "en"), ("English", "en"), ("ＥＮＧＬＩＳＨ", "en"), ("英語", "en"),
    ("ja", "ja"), ("Japanese", "ja"), ("日本語", "ja"), ("ｊａ", "ja"),
    ("auto", "auto"), ("Automatic", "auto"), ("自動", "auto"), ("  自動\u3000", "auto"),
])
def test_language_choice(rest: str, choice: str) -> None:
    assert language_choice(rest) == choice
    assert parse_command(f"language {rest}", POLICY).kind == "language"


@pytest.mark.parametrize("rest", ["", "fr", "français", "英語 日本語", "en-US", "nihongo", "言語"])
def test_language_choice_of_anything_else_is_none(rest: str) -> None:
    assert language_choice(rest) is None


# ------------------------------------------------------------------------------------------------ messages


def _valid_blocks(message: Message, locale: str) -> list[dict[str, Any]]:
    """The message as Block Kit, every block accepted by slack_sdk's models."""
    payload = render_message(message, locale)
    assert payload["text"].strip()
    for block in payload["blocks"]:
        parsed = SlackBlock.parse(block)
        assert parsed is not None
        parsed.validate_json()
    blocks: list[dict[str, Any]] = payload["blocks"]
    return blocks


def _all_text(blocks: list[dict[str, Any]]) -> str:
    return str(blocks)


@pytest.mark.parametrize("policy", [POLICY, RINGI, NO_STAMP], ids=["shipped", "ringi", "no-stamp"])
@pytest.mark.parametrize("locale", LOCALES)
def test_help_lists_every_type_and_every_word_in_it_works(policy: Policy, locale: str) -> None:
    text = _all_text(_valid_blocks(help_message(policy, locale), locale))
    for key, spec in policy.types.items():
        assert spec.title(locale) in text
        for word in type_words(policy, key):
            # words that differ only in case (IT / it) are shown once
            assert f"/madoguchi {word}".casefold() in text.casefold() or f"`{word}`".casefold() in text.casefold()
            assert parse_command(word, policy) == Command(kind="form", type_key=key, text=word)
    for word in ("状況", "status", "承認", "inbox", "ヘルプ", "help", "言語 英語", "language en"):
        assert word in text


def test_help_puts_the_readers_language_first() -> None:
    ja = _all_text(_valid_blocks(help_message(POLICY, "ja"), "ja"))
    en = _all_text(_valid_blocks(help_message(POLICY, "en-US"), "en"))
    assert "`/madoguchi 休暇` (`leave`) — 休暇申請" in ja
    assert "`/madoguchi leave` (`休暇`) — Leave request" in en
    assert "`/madoguchi 状況` (`status`)" in ja and "`/madoguchi status` (`状況`)" in en
    assert "使い方" in ja and "How to use" in en
    assert "ヒント" in ja and "Tip" in en


def test_help_uses_the_configured_command_name() -> None:
    text = _all_text(_valid_blocks(help_message(RINGI, "ja", command_name="/wf"), "ja"))
    assert "`/wf 稟議` (`ringi`) — 稟議" in text
    assert "/madoguchi" not in text


@pytest.mark.parametrize("policy", [POLICY, RINGI], ids=["shipped", "ringi"])
@pytest.mark.parametrize("locale", LOCALES)
def test_picker_has_one_button_per_type(policy: Policy, locale: str) -> None:
    message = picker_message(policy, locale)
    blocks = _valid_blocks(message, locale)
    rows = [b for b in message.blocks if isinstance(b, Actions)]
    assert all(1 <= len(r.buttons) <= 5 for r in rows)
    buttons = [button for row in rows for button in row.buttons]
    assert [b.value for b in buttons] == list(policy.types)
    assert {b.action for b in buttons} == {OPEN_FORM}
    assert [b.label for b in buttons] == [s.title(locale) for s in policy.types.values()]
    question = "何を申請しますか？" if locale == "ja" else "What would you like to request?"
    assert message.fallback == question and question in _all_text(blocks)


def test_picker_rows_of_five_and_descriptions() -> None:
    data = _raw()
    for n in range(4):
        data["types"][f"extra{n}"] = copy.deepcopy(data["types"]["it"]) | {"prefix": f"EX{n}"}
    data["types"]["it"]["description"] = {"ja": "PCやアカウントの困りごと", "en": "Computer and account trouble"}
    policy = parse_policy(data)
    for locale, description in (("ja", "PCやアカウントの困りごと"), ("en", "Computer and account trouble")):
        message = picker_message(policy, locale)
        _valid_blocks(message, locale)
        assert [len(b.buttons) for b in message.blocks if isinstance(b, Actions)] == [5, 3]
        notes = [b.text for b in message.blocks if isinstance(b, Context)]
        assert len(notes) == 1 and description in notes[0]


def test_picker_without_descriptions_has_no_context() -> None:
    assert not [b for b in picker_message(POLICY, "ja").blocks if isinstance(b, Context)]


@pytest.mark.parametrize("locale", LOCALES)
def test_unknown_quotes_the_text_and_appends_help(locale: str) -> None:
    message = unknown_message("hello <!channel>", POLICY, locale)
    blocks = _valid_blocks(message, locale)
    first = blocks[0]["text"]
    assert first["type"] == "plain_text" and "hello <!channel>" in first["text"]
    help_blocks = _valid_blocks(help_message(POLICY, locale), locale)
    assert blocks[1:] == help_blocks
    assert ("分かりません" if locale == "ja" else "did not understand") in message.fallback


def test_unknown_cuts_a_long_text() -> None:
    message = unknown_message("x" * 5000, POLICY, "en")
    _valid_blocks(message, "en")
    assert "x" * 99 + "…" in message.fallback
    assert "x" * 100 not in message.fallback


@given(st.text(max_size=300))
def test_unknown_message_is_always_valid_block_kit(text: str) -> None:
    _valid_blocks(unknown_message(text, RINGI, "ja"), "ja")


# ------------------------------------------------------------------------------------------------ language


@pytest.mark.parametrize(("locale", "source", "line"), [
    ("ja", "org", "表示言語: 日本語（会社の設定）"),
    ("ja", "platform", "表示言語: 日本語（Slack の言語設定）"),
    ("ja", "choice", "表示言語: 日本語（あなたが選んだ言語）"),
    ("en", "org", "Language: English (the company's setting)"),
    ("en-US", "platform", "Language: English (from your Slack language setting)"),
    ("en", "choice", "Language: English (your choice)"),
])
def test_language_line_says_what_and_where_from(locale: str, source: Any, line: str) -> None:
    assert language_line(locale, source, "slack") == line
    message = language_message(locale, source, "slack", "/wf")
    text = _all_text(_valid_blocks(message, locale))
    assert line in text and ("/wf 言語 自動" in text or "/wf language auto" in text)


def test_language_set_message_is_in_the_new_language() -> None:
    assert language_set_message("en", "choice", "slack", automatic=False).fallback == "Your language is now English."
    assert language_set_message("ja", "choice", "slack", automatic=False).fallback == "表示言語を日本語にしました。"
    auto = language_set_message("ja", "platform", "teams", automatic=True)
    assert auto.fallback == "表示言語を自動にしました。今は日本語です（Teams の言語設定）。"
    _valid_blocks(auto, "ja")


@pytest.mark.parametrize("locale", LOCALES)
def test_language_unknown_quotes_plainly_and_lists_the_choices(locale: str) -> None:
    message = language_unknown_message("<!channel> " + "x" * 500, locale, "slack")
    blocks = _valid_blocks(message, locale)
    assert blocks[0]["text"]["type"] == "plain_text" and "<!channel>" in blocks[0]["text"]["text"]
    assert "x" * 200 not in message.fallback
    choices = blocks[1]["text"]["text"]
    words = ("英語", "日本語", "自動") if locale == "ja" else ("en", "ja", "auto")
    assert all(f"/madoguchi {'言語' if locale == 'ja' else 'language'} {w}`" in choices for w in words)


def test_language_buttons_offer_the_other_language_and_auto_after_a_choice() -> None:
    ja = language_buttons("ja", "platform", "slack")
    assert [(b.label, b.action, b.value) for b in ja.buttons] == [("English", SET_LANGUAGE, "en")]
    en = language_buttons("en", "choice", "slack")
    assert [(b.label, b.value) for b in en.buttons] == [("日本語", "ja"), ("Automatic (Slack setting)", "auto")]
    assert all(language_choice(b.value) == b.value for b in (*ja.buttons, *en.buttons))


def test_notify_is_understood_in_both_languages() -> None:
    from handlers.notify_choice import notify_choice

    for text, rest in (("notify teams", "teams"), ("通知 Teams", "Teams"), ("ＮＯＴＩＦＹ　ｓｌａｃｋ", "slack"),
                       ("通知", "")):
        command = parse_command(text, POLICY)
        assert (command.kind, command.rest) == ("notify", rest)
    assert [notify_choice(w) for w in ("Teams", "チームズ", "slack", "スラック", "自動", "AUTO", "fax", "")] == \
        ["teams", "teams", "slack", "slack", "auto", "auto", None, None]
