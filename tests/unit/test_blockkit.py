"""Unit tests for bot.slack.blockkit: neutral views to Block Kit, and modal submissions back.

Every payload rendered here is checked by slack_sdk's own models (which encode Slack's limits): the surface,
then every block, element, text object, option and confirm dialog inside it, since `View.validate_json()`
alone checks only the view's own fields. A round trip through the models must also give back the payload,
so no key we send is one slack_sdk does not know.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block, StaticSelectElement
from slack_sdk.models.blocks import Option as SlackOption
from slack_sdk.models.views import View

from bot.slack.blockkit import (
    action_name,
    errors_response,
    read_submission,
    render_form,
    render_home,
    render_message,
    truncate_mrkdwn,
)
from handlers.views import (
    Actions,
    Button,
    Confirm,
    Context,
    Divider,
    Fields,
    Form,
    Header,
    Home,
    Input,
    Message,
    Option,
    Text,
)

# --- validation by slack_sdk ---------------------------------------------------------------------------


def validate_deep(obj: object) -> None:
    """validate_json() on a model and on every model it holds (select options are kept as raw dicts)."""
    if isinstance(obj, list):
        for item in obj:
            validate_deep(item)
        return
    if not isinstance(obj, JsonObject):
        return
    obj.validate_json()
    for key in obj.attributes:
        validate_deep(getattr(obj, key, None))
    if isinstance(obj, StaticSelectElement):
        validate_deep(SlackOption.parse_all(obj.options))
        if obj.initial_option is not None:
            validate_deep(SlackOption.parse_all([obj.initial_option]))


def assert_texts_not_blank(payload: Any) -> None:
    """Slack rejects empty text objects; slack_sdk does not check that."""
    if isinstance(payload, dict):
        if payload.get("type") in ("plain_text", "mrkdwn"):
            assert payload["text"].strip(), payload
        for value in payload.values():
            assert_texts_not_blank(value)
    elif isinstance(payload, list):
        for item in payload:
            assert_texts_not_blank(item)


def valid_view(payload: dict[str, Any]) -> dict[str, Any]:
    view = View(**payload)
    validate_deep(view)
    assert view.blocks is not None and 1 <= len(view.blocks) <= 100
    # slack_sdk leaves out empty strings; an empty private_metadata is what Slack echoes back anyway.
    assert view.to_dict() == {key: value for key, value in payload.items() if value != ""}
    assert_texts_not_blank(payload)
    return payload


def valid_message(payload: dict[str, Any]) -> dict[str, Any]:
    assert set(payload) == {"text", "blocks"}
    assert payload["text"].strip()
    assert 1 <= len(payload["blocks"]) <= 50
    for raw in payload["blocks"]:
        block = Block.parse(raw)
        assert block is not None, raw
        validate_deep(block)
        assert block.to_dict() == raw
    assert_texts_not_blank(payload)
    return payload


def form(*blocks: Any, **kwargs: Any) -> Form:
    fields = {"title": "休暇申請", "callback": "submit_leave", "submit": "申請", "close": "キャンセル"}
    return Form(blocks=blocks, **(fields | kwargs))


def only_input(payload: dict[str, Any]) -> dict[str, Any]:
    inputs = [b for b in payload["blocks"] if b["type"] == "input"]
    assert len(inputs) == 1
    return inputs[0]


# --- display blocks ------------------------------------------------------------------------------------


class TestDisplayBlocks:
    def test_each_kind_renders(self) -> None:
        message = Message(
            "山田さんから休暇申請",
            (
                Header("休暇申請 #L-2026-0042"),
                Text("*山田 太郎* さんが休暇を申請しました。"),
                Text("plain *not bold*", markdown=False),
                Fields((("種類", "年次有給休暇"), ("期間", "2026-06-08 〜 2026-06-10"))),
                Context("申請日 2026-06-01 / 期限 2営業日"),
                Divider(),
            ),
        )
        blocks = valid_message(render_message(message))["blocks"]
        assert [b["type"] for b in blocks] == [
            "header",
            "section",
            "section",
            "section",
            "context",
            "divider",
        ]
        assert blocks[0]["text"] == {"type": "plain_text", "text": "休暇申請 #L-2026-0042"}
        assert blocks[1]["text"]["type"] == "mrkdwn"
        assert blocks[2]["text"] == {"type": "plain_text", "text": "plain *not bold*"}
        assert blocks[3]["fields"][0] == {"type": "mrkdwn", "text": "*種類*\n年次有給休暇"}
        assert blocks[4]["elements"] == [{"type": "mrkdwn", "text": "申請日 2026-06-01 / 期限 2営業日"}]

    def test_fallback_text_is_the_notification(self) -> None:
        payload = valid_message(render_message(Message("承認待ち: 経費精算", (Text("x"),))))
        assert payload["text"] == "承認待ち: 経費精算"

    def test_more_than_ten_fields_split_into_sections(self) -> None:
        pairs = tuple((f"項目{i}", f"値{i}") for i in range(23))
        blocks = valid_message(render_message(Message("f", (Fields(pairs),))))["blocks"]
        assert [len(b["fields"]) for b in blocks] == [10, 10, 3]
        assert blocks[2]["fields"][2]["text"] == "*項目22*\n値22"

    def test_field_values_are_data_not_markup(self) -> None:
        blocks = render_message(Message("f", (Fields((("目的", "<!channel> & <@U123>"),)),)))["blocks"]
        assert blocks[0]["fields"][0]["text"] == "*目的*\n&lt;!channel&gt; &amp; &lt;@U123&gt;"

    def test_field_without_label_is_just_the_value(self) -> None:
        blocks = render_message(Message("f", (Fields((("", "値"),)),)))["blocks"]
        assert blocks[0]["fields"][0]["text"] == "値"

    def test_blank_texts_still_render(self) -> None:
        message = Message("", (Header(""), Text("   "), Context(""), Fields((("", ""),))))
        valid_message(render_message(message))

    def test_empty_message_shows_its_fallback(self) -> None:
        blocks = valid_message(render_message(Message("お知らせ")))["blocks"]
        assert blocks == [{"type": "section", "text": {"type": "plain_text", "text": "お知らせ"}}]

    def test_japanese_text_is_kept_as_is(self) -> None:
        text = "年次有給休暇の取得義務（年5日）について：残り3日です。🗓"
        blocks = valid_message(render_message(Message(text, (Header("人事からのお知らせ"), Text(text)))))
        assert blocks["blocks"][1]["text"]["text"] == text


# --- buttons -------------------------------------------------------------------------------------------


APPROVE = Button("承認", "approve", "assignment:17", "primary")
REJECT = Button(
    "却下",
    "reject",
    "assignment:17",
    "danger",
    Confirm("却下しますか？", "理由の入力に進みます。", "却下する", "戻る"),
)
LINK = Button("領収書を開く", "open_receipt", url="https://files.example.com/r/42.pdf")


class TestButtons:
    def test_styles_confirm_and_url(self) -> None:
        blocks = valid_message(render_message(Message("承認", (Actions((APPROVE, REJECT, LINK)),))))["blocks"]
        approve, reject, link = blocks[0]["elements"]
        assert approve == {
            "type": "button",
            "text": {"type": "plain_text", "text": "承認"},
            "action_id": "approve#0",
            "value": "assignment:17",
            "style": "primary",
        }
        assert reject["style"] == "danger"
        assert reject["confirm"] == {
            "title": {"type": "plain_text", "text": "却下しますか？"},
            "text": {"type": "plain_text", "text": "理由の入力に進みます。"},
            "confirm": {"type": "plain_text", "text": "却下する"},
            "deny": {"type": "plain_text", "text": "戻る"},
            "style": "danger",
        }
        assert link["url"] == "https://files.example.com/r/42.pdf"
        assert "style" not in link and "value" not in link

    def test_action_ids_are_unique_in_a_block_and_map_back(self) -> None:
        picks = tuple(Button(f"案{i}", "pick", str(i)) for i in range(4))
        elements = render_message(Message("p", (Actions(picks),)))["blocks"][0]["elements"]
        ids = [e["action_id"] for e in elements]
        assert len(set(ids)) == 4
        assert {action_name(i) for i in ids} == {"pick"}
        assert [e["value"] for e in elements] == ["0", "1", "2", "3"]

    def test_action_name_of_an_unsuffixed_id(self) -> None:
        assert action_name("value") == "value"
        assert action_name("a#b") == "a#b"
        assert action_name("send#back#3") == "send#back"

    def test_more_than_25_buttons_make_more_rows(self) -> None:
        buttons = tuple(Button(str(i), "pick", str(i)) for i in range(30))
        blocks = valid_message(render_message(Message("p", (Actions(buttons),))))["blocks"]
        assert [len(b["elements"]) for b in blocks] == [25, 5]

    def test_long_button_parts_are_truncated(self) -> None:
        button = Button(
            "承" * 100,
            "approve",
            "v" * 2500,
            "danger",
            Confirm("t" * 150, "x" * 400, "c" * 40, "d" * 40),
            url="https://example.com/" + "p" * 3100,
        )
        blocks = valid_message(render_message(Message("b", (Actions((button,)),))))["blocks"]
        element = blocks[0]["elements"][0]
        assert len(element["text"]["text"]) == 75 and element["text"]["text"].endswith("…")
        assert len(element["value"]) == 2000
        assert len(element["url"]) == 3000
        dialog = element["confirm"]
        assert [len(dialog[k]["text"]) for k in ("title", "text", "confirm", "deny")] == [100, 300, 30, 30]


# --- inputs --------------------------------------------------------------------------------------------


class TestInputs:
    def test_text(self) -> None:
        field = Input("purpose", "目的", "text", placeholder="例: 出張", max_length=200, initial="出張")
        block = only_input(valid_view(render_form(form(field))))
        assert block == {
            "type": "input",
            "block_id": "purpose",
            "label": {"type": "plain_text", "text": "目的"},
            "optional": False,
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "placeholder": {"type": "plain_text", "text": "例: 出張"},
                "max_length": 200,
                "initial_value": "出張",
            },
        }

    def test_multiline_optional_with_hint(self) -> None:
        field = Input("note", "備考", "multiline", required=False, hint="任意です")
        block = only_input(valid_view(render_form(form(field))))
        assert block["element"]["multiline"] is True
        assert block["optional"] is True
        assert block["hint"] == {"type": "plain_text", "text": "任意です"}

    def test_number_allows_decimals(self) -> None:
        field = Input("hours", "時間数", "number", min_value="0.5", max_value="8", initial="1.5")
        element = only_input(valid_view(render_form(form(field))))["element"]
        assert element == {
            "type": "number_input",
            "action_id": "value",
            "is_decimal_allowed": True,
            "min_value": "0.5",
            "max_value": "8",
            "initial_value": "1.5",
        }

    def test_money_is_whole_and_not_negative(self) -> None:
        element = only_input(valid_view(render_form(form(Input("amount", "金額", "money")))))["element"]
        assert element["is_decimal_allowed"] is False
        assert element["min_value"] == "0"
        assert "max_value" not in element

    def test_date(self) -> None:
        field = Input("day", "日付", "date", initial=date(2026, 6, 8))
        element = only_input(valid_view(render_form(form(field))))["element"]
        assert element == {"type": "datepicker", "action_id": "value", "initial_date": "2026-06-08"}

    def test_date_from_iso_string_and_a_bad_prefill_is_ignored(self) -> None:
        good = only_input(render_form(form(Input("d", "日付", "date", initial="2026-06-08"))))
        bad = only_input(valid_view(render_form(form(Input("d", "日付", "date", initial="6/8")))))
        assert good["element"]["initial_date"] == "2026-06-08"
        assert "initial_date" not in bad["element"]

    def test_date_range_is_two_pickers(self) -> None:
        field = Input(
            "period", "期間", "date_range", initial=(date(2026, 6, 8), date(2026, 6, 10)), dispatch=True
        )
        blocks = valid_view(render_form(form(field)))["blocks"]
        assert [b["block_id"] for b in blocks] == ["period.start", "period.end"]
        assert [b["label"]["text"] for b in blocks] == ["期間（開始）", "期間（終了）"]
        assert [b["element"]["initial_date"] for b in blocks] == ["2026-06-08", "2026-06-10"]
        assert all(b["dispatch_action"] is True and b["element"]["action_id"] == "value" for b in blocks)

    def test_date_range_labels_in_english(self) -> None:
        payload = render_form(form(Input("period", "Period", "date_range")), locale="en-US")
        blocks = valid_view(payload)["blocks"]
        assert [b["label"]["text"] for b in blocks] == ["Period (Start)", "Period (End)"]

    def test_date_range_suffix_survives_a_long_label(self) -> None:
        blocks = valid_view(render_form(form(Input("period", "期" * 2500, "date_range"))))["blocks"]
        assert all(len(b["label"]["text"]) == 2000 for b in blocks)
        assert blocks[1]["label"]["text"].endswith("…（終了）")

    def test_select_with_initial(self) -> None:
        options = (Option("annual", "年次有給休暇"), Option("special", "特別休暇"))
        field = Input("kind", "種類", "select", options=options, initial="special")
        element = only_input(valid_view(render_form(form(field))))["element"]
        assert element["type"] == "static_select"
        assert element["options"][0] == {
            "text": {"type": "plain_text", "text": "年次有給休暇"},
            "value": "annual",
        }
        assert element["initial_option"] == element["options"][1]

    def test_user(self) -> None:
        field = Input("delegate", "代理人", "user", initial="U024BE7LH")
        element = only_input(valid_view(render_form(form(field))))["element"]
        assert element == {"type": "users_select", "action_id": "value", "initial_user": "U024BE7LH"}

    def test_file_is_a_url(self) -> None:
        field = Input(
            "receipt", "領収書URL", "file", placeholder="https://", initial="https://files.example.com/1"
        )
        element = only_input(valid_view(render_form(form(field))))["element"]
        assert element["type"] == "url_text_input"
        assert element["initial_value"] == "https://files.example.com/1"

    def test_error_is_shown_as_the_hint(self) -> None:
        field = Input("amount", "金額", "money", hint="税込", error="金額を入力してください")
        block = only_input(valid_view(render_form(form(field))))
        assert block["hint"]["text"] == "⚠ 金額を入力してください\n税込"

    def test_dispatch(self) -> None:
        field = Input("unit", "単位", "select", options=(Option("d", "日"),), dispatch=True)
        block = only_input(valid_view(render_form(form(field))))
        assert block["dispatch_action"] is True

    def test_every_kind_in_one_form(self) -> None:
        kinds = ("text", "multiline", "number", "money", "date", "date_range", "select", "user", "file")
        inputs = [Input(k, k, k, options=(Option("a", "A"),)) for k in kinds]  # type: ignore[arg-type]
        payload = valid_view(render_form(form(Header("申請"), *inputs, Divider(), Actions((APPROVE,)))))
        assert len(payload["blocks"]) == 1 + len(kinds) + 1 + 2

    def test_overlong_input_texts_are_truncated(self) -> None:
        field = Input("x", "ラ" * 2500, "text", hint="ヒ" * 2500, placeholder="プ" * 200)
        block = only_input(valid_view(render_form(form(field))))
        assert len(block["label"]["text"]) == 2000
        assert len(block["hint"]["text"]) == 2000
        assert len(block["element"]["placeholder"]["text"]) == 150


# --- surfaces and limits -------------------------------------------------------------------------------


class TestSurfaces:
    def test_form_payload(self) -> None:
        payload = valid_view(render_form(form(Text("本文"), state='{"type":"leave"}')))
        assert payload["type"] == "modal"
        assert payload["callback_id"] == "submit_leave"
        assert payload["title"] == {"type": "plain_text", "text": "休暇申請"}
        assert payload["submit"]["text"] == "申請" and payload["close"]["text"] == "キャンセル"
        assert payload["private_metadata"] == '{"type":"leave"}'

    def test_home_payload(self) -> None:
        payload = valid_view(render_home(Home((Header("あなたの申請"), Text("ありません")))))
        assert payload == {
            "type": "home",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "あなたの申請"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "ありません"}},
            ],
        }

    def test_empty_home_and_form_are_still_valid(self) -> None:
        valid_view(render_home(Home()))
        valid_view(render_form(form()))

    def test_long_titles_are_truncated(self) -> None:
        payload = valid_view(render_form(form(Text("x"), title="t" * 40, submit="s" * 40, close="c" * 40)))
        assert payload["title"]["text"] == "t" * 23 + "…"
        assert len(payload["submit"]["text"]) == len(payload["close"]["text"]) == 24

    def test_long_state_raises(self) -> None:
        valid_view(render_form(form(Text("x"), state="s" * 3000)))
        with pytest.raises(ValueError, match="3000"):
            render_form(form(Text("x"), state="s" * 3001))

    def test_overlong_identifiers_raise(self) -> None:
        with pytest.raises(ValueError):
            render_form(form(Text("x"), callback="c" * 256))
        with pytest.raises(ValueError):
            render_form(form(Input("n" * 256, "名前", "text")))

    def test_5000_characters_of_text(self) -> None:
        message = Message("t", (Text("あ" * 5000), Text("a" * 5000, False)))
        blocks = valid_message(render_message(message))["blocks"]
        assert [len(b["text"]["text"]) for b in blocks] == [3000, 3000]
        assert blocks[0]["text"]["text"].endswith("あ…")

    def test_long_header_field_and_context(self) -> None:
        message = Message("t", (Header("見" * 200), Fields((("項目", "値" * 2500),)), Context("小" * 3500)))
        blocks = valid_message(render_message(message))["blocks"]
        assert len(blocks[0]["text"]["text"]) == 150
        assert len(blocks[1]["fields"][0]["text"]) == 2000
        assert len(blocks[2]["elements"][0]["text"]) == 3000

    def test_truncation_never_cuts_a_link_in_half(self) -> None:
        text = "a" * 2990 + "<https://example.com/requests/42|申請 #42>"
        cut = render_message(Message("t", (Text(text),)))["blocks"][0]["text"]["text"]
        assert cut == "a" * 2990 + "…"
        assert truncate_mrkdwn("ab&amp;cd", 5) == "ab…"
        assert truncate_mrkdwn("ab&amp;cd", 8) == "ab&amp;…"

    def test_escaped_field_is_not_cut_inside_an_entity(self) -> None:
        blocks = render_message(Message("t", (Fields((("", "x" * 1997 + "<<<"),)),)))["blocks"]
        text = blocks[0]["fields"][0]["text"]
        assert text == "x" * 1997 + "…"

    def test_120_options_keep_100_and_the_chosen_one(self) -> None:
        options = tuple(Option(f"o{i}", f"選択肢{i}") for i in range(120))
        field = Input("choice", "選択", "select", options=options, initial="o110")
        element = only_input(valid_view(render_form(form(field))))["element"]
        assert len(element["options"]) == 100
        assert element["options"][-1]["value"] == "o110"
        assert element["initial_option"]["value"] == "o110"

    def test_long_options_are_truncated(self) -> None:
        field = Input("c", "選択", "select", options=(Option("v" * 200, "l" * 100),))
        option = only_input(valid_view(render_form(form(field))))["element"]["options"][0]
        assert len(option["text"]["text"]) == 75 and len(option["value"]) == 150

    def test_60_message_blocks(self) -> None:
        blocks = valid_message(render_message(Message("t", tuple(Text(str(i)) for i in range(60)))))["blocks"]
        assert len(blocks) == 50
        assert blocks[48]["text"]["text"] == "48"
        assert blocks[49] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "…ほか 11 件"}]}

    def test_120_view_blocks_in_english(self) -> None:
        home = Home(tuple(Text(str(i)) for i in range(120)))
        blocks = valid_view(render_home(home, locale="en"))["blocks"]
        assert len(blocks) == 100
        assert blocks[-1]["elements"][0]["text"] == "… 21 more"

    def test_120_form_blocks(self) -> None:
        inputs = tuple(Input(f"item{i}", f"項目{i}", "text") for i in range(120))
        assert len(valid_view(render_form(form(*inputs)))["blocks"]) == 100

    def test_limits_count_rendered_blocks(self) -> None:
        # 30 date ranges are 60 Slack blocks.
        ranges = tuple(Input(f"p{i}", "期間", "date_range") for i in range(30))
        blocks = valid_message(render_message(Message("t", ranges)))["blocks"]
        assert len(blocks) == 50 and blocks[-1]["elements"][0]["text"] == "…ほか 11 件"


# --- submissions ---------------------------------------------------------------------------------------


LEAVE_STATE: dict[str, Any] = {
    "purpose": {"value": {"type": "plain_text_input", "value": "出張"}},
    "period.start": {"value": {"type": "datepicker", "selected_date": "2026-06-08"}},
    "period.end": {"value": {"type": "datepicker", "selected_date": "2026-06-10"}},
    "kind": {
        "value": {
            "type": "static_select",
            "selected_option": {
                "text": {"type": "plain_text", "text": "年次有給休暇", "emoji": True},
                "value": "annual",
            },
        }
    },
    "delegate": {"value": {"type": "users_select", "selected_user": "U024BE7LH"}},
    "amount": {"value": {"type": "number_input", "value": "12800"}},
    "hours": {"value": {"type": "number_input", "value": "1.5"}},
    "receipt": {"value": {"type": "url_text_input", "value": "https://files.example.com/r/1"}},
    "note": {"value": {"type": "plain_text_input", "value": None}},
    "blank": {"value": {"type": "plain_text_input", "value": "   "}},
    "day": {"value": {"type": "datepicker", "selected_date": None}},
    "other.start": {"value": {"type": "datepicker", "selected_date": None}},
    "other.end": {"value": {"type": "datepicker", "selected_date": None}},
    "half.start": {"value": {"type": "datepicker", "selected_date": "2026-07-01"}},
    "half.end": {"value": {"type": "datepicker", "selected_date": None}},
    "unit": {"value": {"type": "static_select", "selected_option": None}},
    "approver": {"value": {"type": "users_select", "selected_user": None}},
    "items[0].amount": {"value": {"type": "number_input", "value": "500"}},
}


class TestReadSubmission:
    def test_realistic_state(self) -> None:
        assert read_submission(LEAVE_STATE) == {
            "purpose": "出張",
            "period": {"start": date(2026, 6, 8), "end": date(2026, 6, 10)},
            "kind": "annual",
            "delegate": "U024BE7LH",
            "amount": "12800",
            "hours": "1.5",
            "receipt": "https://files.example.com/r/1",
            "note": None,
            "blank": None,
            "day": None,
            "other": None,
            "half": {"start": date(2026, 7, 1), "end": None},
            "unit": None,
            "approver": None,
            "items[0].amount": "500",
        }

    def test_multi_selects_and_foreign_action_ids(self) -> None:
        state = {
            "tags": {
                "value": {
                    "type": "multi_static_select",
                    "selected_options": [{"text": {"type": "plain_text", "text": "A"}, "value": "a"}],
                }
            },
            "people": {"other_id": {"type": "multi_users_select", "selected_users": []}},
        }
        assert read_submission(state) == {"tags": ["a"], "people": None}

    def test_round_trip_of_a_rendered_form(self) -> None:
        rendered = render_form(form(Input("purpose", "目的", "text"), Input("period", "期間", "date_range")))
        state = {
            b["block_id"]: {b["element"]["action_id"]: {"type": b["element"]["type"], "value": None}}
            for b in rendered["blocks"]
        }
        assert read_submission(state) == {"purpose": None, "period": None}


class TestErrorsResponse:
    def test_errors_by_name(self) -> None:
        assert errors_response({"purpose": "目的を入力してください"}) == {
            "response_action": "errors",
            "errors": {"purpose": "目的を入力してください"},
        }

    def test_date_range_goes_to_its_start_picker(self) -> None:
        body = errors_response(
            {"period": "終了日は開始日以降にしてください", "period.end": "祝日です", "purpose": "必須です"},
            LEAVE_STATE,
        )
        assert body["errors"] == {
            "period.start": "終了日は開始日以降にしてください",
            "period.end": "祝日です",
            "purpose": "必須です",
        }

    def test_a_name_without_an_input_lands_on_the_first_input(self) -> None:
        body = errors_response({"purpose": "必須です", "__all__": "残日数が足りません"}, LEAVE_STATE)
        assert body["errors"] == {"purpose": "必須です\n残日数が足りません"}

    def test_long_message_is_truncated(self) -> None:
        message = errors_response({"purpose": "エ" * 3000})["errors"]["purpose"]
        assert len(message) == 2000 and message.endswith("…")


# --- any text ------------------------------------------------------------------------------------------

ANY_TEXT = st.text(max_size=6000) | st.sampled_from(["", " ", "\n", "<", "&", "<<<" * 2000, "&amp;" * 1000])


class TestAnyText:
    @settings(max_examples=150, deadline=None)
    @given(text=ANY_TEXT, markdown=st.booleans())
    def test_section(self, text: str, markdown: bool) -> None:
        valid_message(render_message(Message(text, (Text(text, markdown),))))

    @settings(max_examples=150, deadline=None)
    @given(text=ANY_TEXT)
    def test_header_context_and_fields(self, text: str) -> None:
        valid_message(render_message(Message(text, (Header(text), Context(text), Fields(((text, text),))))))

    @settings(max_examples=150, deadline=None)
    @given(label=ANY_TEXT, value=ANY_TEXT, title=ANY_TEXT)
    def test_button(self, label: str, value: str, title: str) -> None:
        button = Button(label, "approve", value, "danger", Confirm(title, title, title, title))
        valid_message(render_message(Message("b", (Actions((button,)),))))

    @settings(max_examples=100, deadline=None)
    @given(text=ANY_TEXT)
    def test_form_texts(self, text: str) -> None:
        field = Input(
            "x", text, "select", hint=text, placeholder=text, error=text, options=(Option(text or "v", text),)
        )
        valid_view(render_form(form(Header(text), field, title=text, submit=text, close=text)))


def test_a_form_in_the_readers_own_language_overrides_the_platforms() -> None:
    # someone who chose English while their Slack says ja-JP: the renderer's own words follow the form
    period = Input("period", "Period", "date_range")
    form = Form("Leave", "request_form", (period,), "Submit", "Cancel", locale="en")
    labels = [b["label"]["text"] for b in valid_view(render_form(form, "ja"))["blocks"]]
    assert labels == ["Period (Start)", "Period (End)"]
    same = Form("休暇", "request_form", (Input("period", "期間", "date_range"),), "申請", "キャンセル")
    assert [b["label"]["text"] for b in render_form(same, "ja")["blocks"]] == ["期間（開始）", "期間（終了）"]
