"""Request forms from the shipped workflows.yaml: the Form of each type, prefill, errors under the right
inputs, the answers back as a payload that the REAL engine validation accepts (or rejects with errors that
land on inputs), and the few fields a card shows of a request."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from config.i18n import LocalText
from config.policy import Policy, RequestTypeSpec, load_policy
from config.settings import DEFAULT_WORKFLOWS
from handlers.request_forms import (
    CALLBACK,
    MAX_FORM_BLOCKS,
    FormState,
    form_for,
    form_state,
    input_errors,
    payload_from,
    read_state,
)
from handlers.summaries import attachments, cut, summary_fields
from handlers.views import Context, Form, Header, Input, Text
from workflow.forms import validate_payload

POLICY: Policy = load_policy(DEFAULT_WORKFLOWS)
TYPES = sorted(POLICY.types)
LOCALES = ("ja", "en")
Values = dict[str, Any]

# Well-filled answers per shipped type, keyed by input name, as a renderer hands them over.
GOOD: dict[str, Values] = {
    "leave": {"unit": "hourly", "period": {"start": date(2026, 6, 8), "end": date(2026, 6, 8)}, "hours": "3",
              "reason": "通院のため"},
    "expense": {
        "purpose": "大阪出張",
        "items[0].date": date(2026, 6, 1), "items[0].payee": "JR東海", "items[0].amount": "14,720",
        "items[0].tax_rate": "10", "items[0].category": "travel", "items[0].invoice_number": None,
        "items[0].receipt": "https://files.example.com/r1.pdf",
        "items[1].date": None, "items[1].payee": "", "items[1].amount": None, "items[1].tax_rate": None,
        "items[1].category": None, "items[1].invoice_number": "  ", "items[1].receipt": None,
        "items[2].date": "2026-06-02", "items[2].payee": "喫茶ひまわり", "items[2].amount": "1280",
        "items[2].tax_rate": "8", "items[2].category": "meeting", "items[2].invoice_number": None,
        "items[2].receipt": None,
    },
    "stamp": {"document": "業務委託契約書", "counterparty": "株式会社テスト", "seal": "representative",
              "copies": "2", "needed_by": date(2026, 6, 10), "file": "https://files.example.com/contract.pdf",
              "notes": None},
    "it": {"category": "device", "subject": "PCが起動しない", "details": "電源ボタンを押しても反応がありません。",
           "urgency": "high"},
}


def spec_of(key: str) -> RequestTypeSpec:
    return POLICY.types[key]


def inputs(form: Form) -> list[Input]:
    return [b for b in form.blocks if isinstance(b, Input)]


def by_name(form: Form) -> dict[str, Input]:
    return {i.name: i for i in inputs(form)}


def values_from_form(form: Form) -> Values:
    """What a renderer would hand back if the person submitted the prefilled form unchanged."""
    values: Values = {}
    for field in inputs(form):
        initial = field.initial
        if isinstance(initial, tuple):
            values[field.name] = {"start": initial[0], "end": initial[1]}
        else:
            values[field.name] = initial
    return values


def expected_inputs(spec: RequestTypeSpec, slots: int = 3) -> list[tuple[str, str, bool]]:
    """(name, kind, required) of every input the form of `spec` should have, in order."""
    out: list[tuple[str, str, bool]] = []
    for f in spec.fields:
        if f.type != "line_items":
            out.append((f.id, f.type, f.required and not f.shown_when))
            continue
        for i in range(slots):
            out += [(f"{f.id}[{i}].{c.id}", c.type, c.required and i == 0) for c in f.fields or []]
    return out


def filled_values(form: Form) -> Values:
    """A sensible answer in every input of any form (so a company's own type is covered the same way)."""
    sample = {"text": "テスト", "multiline": "一行目\n二行目", "money": "12,800", "date": date(2026, 6, 8),
              "date_range": {"start": date(2026, 6, 8), "end": date(2026, 6, 9)}, "user": "7",
              "file": "https://files.example.com/a.pdf"}
    values: Values = {}
    for field in inputs(form):
        if field.kind == "select":
            values[field.name] = field.options[0].value
        elif field.kind == "number":
            values[field.name] = field.min_value or "1"
        else:
            values[field.name] = sample[field.kind]
    return values


# --- the form of each type ---------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key", TYPES)
def test_each_type_has_one_input_per_field(key: str, locale: str) -> None:
    spec = spec_of(key)
    form = form_for(key, spec, locale)
    assert [(i.name, i.kind, i.required) for i in inputs(form)] == expected_inputs(spec)
    assert form.title == spec.title(locale)
    assert form.callback == CALLBACK == "submit_request"
    assert json.loads(form.state) == {"t": key}
    assert len(form.blocks) <= MAX_FORM_BLOCKS
    for field in spec.fields:
        if field.type not in ("line_items", "select"):
            assert by_name(form)[field.id].label == field.label(locale)


def test_labels_follow_the_locale() -> None:
    ja, en = (form_for("leave", spec_of("leave"), loc) for loc in LOCALES)
    assert (ja.title, ja.submit, ja.close) == ("休暇申請", "申請する", "キャンセル")
    assert (en.title, en.submit, en.close) == ("Leave request", "Submit", "Cancel")
    assert [o.label for o in by_name(ja)["unit"].options] == ["全日", "午前半休", "午後半休", "時間単位"]
    assert [o.label for o in by_name(en)["unit"].options][-1] == "Hourly"
    assert [o.value for o in by_name(en)["unit"].options] == ["full", "am", "pm", "hourly"]
    assert by_name(ja)["period"].label == "期間" and by_name(en)["period"].label == "Dates"


def test_bounds_and_lengths_come_from_the_policy() -> None:
    leave = by_name(form_for("leave", spec_of("leave"), "ja"))
    expense = by_name(form_for("expense", spec_of("expense"), "ja"))
    assert (leave["hours"].min_value, leave["hours"].max_value) == ("1", "7")
    assert leave["reason"].max_length == 500 and leave["reason"].kind == "multiline"
    assert (expense["items[1].amount"].min_value, expense["items[1].amount"].max_value) == ("1", "10000000")
    assert expense["purpose"].max_length == 200 and expense["items[0].payee"].max_length == 100


def test_state_marks_a_resubmission_and_reads_back() -> None:
    form = form_for("expense", spec_of("expense"), "en", request_id=42)
    assert json.loads(form.state) == {"t": "expense", "r": 42}
    assert read_state(form.state) == FormState("expense", 42)
    assert read_state(form_state("it")) == FormState("it", None)
    for garbage in ("", "not json", "[]", '{"r": 1}', '{"t": "it", "r": "1"}', '{"t": "it", "r": true}'):
        assert read_state(garbage) is None


# --- line items --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale, heading", [("ja", "明細 {n}"), ("en", "Item {n}")])
def test_line_items_become_numbered_groups(locale: str, heading: str) -> None:
    spec = spec_of("expense")
    form = form_for("expense", spec, locale, item_slots=5)
    headers = [b.text for b in form.blocks if isinstance(b, Header)]
    assert headers == [heading.format(n=n) for n in range(1, 6)]
    assert [(i.name, i.kind, i.required) for i in inputs(form)] == expected_inputs(spec, slots=5)
    # each group's header comes right before its first input
    names = [b.text if isinstance(b, Header) else b.name
             for b in form.blocks if isinstance(b, (Header, Input))]
    assert names[names.index(heading.format(n=2)) + 1] == "items[1].date"
    reduced = "8%（軽減）" if locale == "ja" else "8% (reduced)"
    assert by_name(form)["items[0].tax_rate"].options[1].label == reduced


def test_item_groups_stay_within_the_platform_block_limit() -> None:
    spec = spec_of("expense")
    rows = [{"date": "2026-06-01", "payee": f"店{i}", "amount": 100 + i, "tax_rate": "10",
             "category": "supplies"} for i in range(20)]  # max_items: 20, at 8 inputs + 1 header each
    form = form_for("expense", spec, "ja", initial={"purpose": "備品", "items": rows})
    shown = len([b for b in form.blocks if isinstance(b, Header)])
    assert len(form.blocks) <= MAX_FORM_BLOCKS and 3 < shown < 20
    assert by_name(form)[f"items[{shown - 1}].payee"].initial == f"店{shown - 1}"
    notice = [b.text for b in form.blocks if isinstance(b, Text)]
    assert len(notice) == 1 and f"全20件のうち最初の{shown}件" in notice[0]


def test_a_prefill_with_more_items_than_slots_gets_more_slots() -> None:
    rows = [{"date": "2026-06-01", "payee": "店", "amount": 100, "tax_rate": "10", "category": "supplies"}] * 5
    form = form_for("expense", spec_of("expense"), "en", initial={"items": rows})
    assert "items[4].amount" in by_name(form) and "items[5].amount" not in by_name(form)
    assert not [b for b in form.blocks if isinstance(b, Text)]


# --- fields shown only for some choices --------------------------------------------------------------------


def test_shown_when_field_says_when_it_applies_and_its_select_dispatches() -> None:
    ja, en = (by_name(form_for("leave", spec_of("leave"), loc)) for loc in LOCALES)
    assert ja["hours"].hint == "「取得単位」が「時間単位」のときに入力してください"
    assert en["hours"].hint == "Only when Unit is Hourly"
    assert not ja["hours"].required  # a full-day leave must not be blocked by the platform
    assert ja["unit"].dispatch and en["unit"].dispatch
    assert [i.name for i in ja.values() if i.dispatch] == ["unit"]
    for key in TYPES:
        if key != "leave":
            assert not any(i.dispatch for i in inputs(form_for(key, spec_of(key), "ja")))


# --- prefill -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", TYPES)
def test_prefill_round_trip(key: str) -> None:
    spec = spec_of(key)
    clean, errors = validate_payload(spec, payload_from(spec, GOOD[key]))
    assert errors == {} and clean is not None
    form = form_for(key, spec, "ja", initial=clean, request_id=7)
    again = payload_from(spec, values_from_form(form))
    assert validate_payload(spec, again) == (clean, {})
    if key == "expense":
        assert len(again["items"]) == 2 and again["items"][1]["payee"] == "喫茶ひまわり"


def test_prefill_shapes() -> None:
    leave = by_name(form_for("leave", spec_of("leave"), "en", initial={
        "unit": "am", "period": {"start": "2026-06-08", "end": "2026-06-09"}, "hours": "2.5"}))
    assert leave["period"].initial == (date(2026, 6, 8), date(2026, 6, 9))
    assert (leave["unit"].initial, leave["hours"].initial, leave["reason"].initial) == ("am", "2.5", None)
    expense = by_name(form_for("expense", spec_of("expense"), "en", initial={"items": [
        {"date": "2026-06-01", "amount": 12800, "receipt": {"url": "https://x.example/r.pdf"}}]}))
    assert expense["items[0].date"].initial == date(2026, 6, 1)
    assert expense["items[0].amount"].initial == "12800"
    assert expense["items[0].receipt"].initial == "https://x.example/r.pdf"
    assert expense["items[1].amount"].initial is None
    # a value the picker cannot show is left for the person to pick again rather than failing the form
    bad = by_name(form_for("stamp", spec_of("stamp"), "ja", initial={"needed_by": "来週"}))
    assert bad["needed_by"].initial is None


# --- errors on the inputs ----------------------------------------------------------------------------------


def test_errors_go_under_their_inputs_and_the_rest_on_top() -> None:
    errs = {
        "period.end": LocalText.of("終了日を入力", "Enter the end"),
        "hours": LocalText.of("時間数を入力", "Enter the hours"),
        "color": LocalText.of("この申請にない項目です", "This form has no such field"),
        "": LocalText.of("形式が違います", "Wrong shape"),
    }
    form = form_for("leave", spec_of("leave"), "en", errors=errs, note="Paid leave left: 12 days")
    fields = by_name(form)
    assert fields["period"].error == "Enter the end" and fields["hours"].error == "Enter the hours"
    assert fields["unit"].error is None and fields["reason"].error is None
    top = form.blocks[0]
    assert isinstance(top, Text) and "This form has no such field" in top.text and "Wrong shape" in top.text
    assert form.blocks[1] == Context("Paid leave left: 12 days")


def test_item_errors_go_on_their_group() -> None:
    errs = {"items[1].amount": LocalText.of("金額は円単位", "Whole yen"),
            "items": LocalText.of("明細を追加", "Add items"),
            "items[9].amount": LocalText.of("範囲外", "Out of range"), "purpose": LocalText.of("必須", "Required")}
    form = form_for("expense", spec_of("expense"), "ja", errors=errs)
    fields = by_name(form)
    assert fields["items[1].amount"].error == "金額は円単位"
    assert fields["items[0].date"].error == "明細を追加"  # a whole-list error: on the first group
    assert fields["purpose"].error == "必須" and fields["items[0].amount"].error is None
    top = [b.text for b in form.blocks if isinstance(b, Text)]
    assert len(top) == 1 and "範囲外" in top[0]  # a group the form does not have


def test_no_errors_no_problem_block() -> None:
    form = form_for("it", spec_of("it"), "ja")
    assert isinstance(form.blocks[0], Input) and not any(i.error for i in inputs(form))


# --- answers back as a payload -----------------------------------------------------------------------------


def test_payload_from_drops_empty_answers_and_groups() -> None:
    spec = spec_of("expense")
    payload = payload_from(spec, GOOD["expense"] | {"purpose": "   ", "unknown": "x"})
    assert "purpose" not in payload and "unknown" not in payload
    assert payload["items"] == [
        {"date": "2026-06-01", "payee": "JR東海", "amount": "14,720", "tax_rate": "10", "category": "travel",
         "receipt": "https://files.example.com/r1.pdf"},
        {"date": "2026-06-02", "payee": "喫茶ひまわり", "amount": "1280", "tax_rate": "8", "category": "meeting"},
    ]
    empty = {name: None for name in by_name(form_for("expense", spec, "ja"))}
    assert payload_from(spec, empty) == {}


def test_payload_from_keeps_values_as_strings_for_the_engine() -> None:
    spec = spec_of("leave")
    payload = payload_from(spec, {"unit": "hourly", "period": {"start": date(2026, 6, 8), "end": None},
                                  "hours": Decimal("2"), "reason": None})
    assert payload == {"unit": "hourly", "period": {"start": "2026-06-08", "end": "2026-06-08"}, "hours": "2"}
    assert payload_from(spec, {"period": {"start": None, "end": None}, "hours": 3}) == {"hours": "3"}
    # not judged here: a bad value goes through for the engine to explain
    assert payload_from(spec, {"unit": "weekly", "hours": "many"}) == {"unit": "weekly", "hours": "many"}
    answers = {"file": {"url": "https://x.example/a.pdf", "name": None}, "copies": 3}
    stamp = payload_from(spec_of("stamp"), answers)
    assert stamp == {"file": {"url": "https://x.example/a.pdf"}, "copies": "3"}


# --- through the real engine validation --------------------------------------------------------------------


@pytest.mark.parametrize("key", TYPES)
def test_well_filled_forms_pass_the_engine(key: str) -> None:
    spec = spec_of(key)
    assert validate_payload(spec, payload_from(spec, GOOD[key]))[1] == {}
    every_input = filled_values(form_for(key, spec, "en"))
    clean, errors = validate_payload(spec, payload_from(spec, every_input))
    assert errors == {} and clean is not None
    first_group_only = {k: (None if "[1]" in k or "[2]" in k else v) for k, v in every_input.items()}
    assert validate_payload(spec, payload_from(spec, first_group_only))[1] == {}


BAD: dict[str, Values] = {
    "leave": {"unit": "weekly", "period": {"start": date(2026, 6, 9), "end": date(2026, 6, 8)}, "hours": "9",
              "reason": "x" * 501},
    "expense": {"purpose": None, "items[0].date": "2026-13-45", "items[0].amount": "12.5",
                "items[2].payee": "店", "items[2].amount": "abc", "items[2].tax_rate": "5",
                "items[2].receipt": "ftp://nope"},
    "stamp": {"document": "契約書", "seal": "gold", "copies": "many", "needed_by": "明日", "file": "not a url"},
    "it": {"category": None, "subject": "件" * 151, "details": "  ", "urgency": "now"},
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key", TYPES)
def test_bad_answers_come_back_as_errors_on_inputs(key: str, locale: str) -> None:
    spec = spec_of(key)
    form = form_for(key, spec, locale)
    values = {name: None for name in by_name(form)} | BAD[key]
    clean, errors = validate_payload(spec, payload_from(spec, values))
    assert clean is None and errors
    inline = input_errors(errors, locale, values)
    assert inline and set(inline) <= set(by_name(form))
    messages = {text(locale) for text in errors.values()}
    assert all(part in messages for shown in inline.values() for part in shown.split(" / "))
    # every error is shown somewhere
    assert messages <= {part for shown in inline.values() for part in shown.split(" / ")}


def test_item_errors_find_their_group_after_empty_groups_were_skipped() -> None:
    spec = spec_of("expense")
    values = {name: None for name in by_name(form_for("expense", spec, "en"))} | BAD["expense"]
    errors = validate_payload(spec, payload_from(spec, values))[1]
    assert "items[1].amount" in errors  # the payload's second item ...
    inline = input_errors(errors, "en", values)
    # ... is the form's third group
    assert inline["items[2].amount"] == "Enter a whole-yen amount (e.g. 12,800)"
    assert inline["items[2].tax_rate"] == "Choose one of the options"
    assert "items[1].amount" not in inline
    assert inline["items[0].date"] == "Enter a date as YYYY-MM-DD"
    assert inline["purpose"] == "This field is required"


def test_date_range_errors_land_on_the_range() -> None:
    spec = spec_of("leave")
    values = {"unit": "full", "period": {"start": "2026-06-08", "end": "2026-6-31"}, "hours": None,
              "reason": None}
    errors = validate_payload(spec, payload_from(spec, values))[1]
    assert list(errors) == ["period.end"]
    assert input_errors(errors, "ja", values) == {"period": "日付は YYYY-MM-DD の形式で入力してください"}
    assert input_errors(errors, "en") == {"period": "Enter a date as YYYY-MM-DD"}  # without the values too


def test_an_error_for_no_input_still_shows_on_the_form() -> None:
    errors = {"color": LocalText.of("この申請にない項目です", "This form has no such field"),
              "subject": LocalText.of("必須項目です", "This field is required")}
    values = {"category": None, "subject": None, "details": None, "urgency": None}
    assert input_errors(errors, "en", values) == {"category": "This form has no such field",
                                                   "subject": "This field is required"}


# --- summaries ---------------------------------------------------------------------------------------------


def clean_payload(key: str) -> dict[str, Any]:
    clean, errors = validate_payload(spec_of(key), payload_from(spec_of(key), GOOD[key]))
    assert clean is not None, errors
    return clean


SUMMARIES = {
    ("leave", "ja"): (("取得単位", "時間単位"), ("期間", "2026-06-08 (月)"), ("時間数", "3"), ("理由（任意）", "通院のため")),
    ("leave", "en"): (("Unit", "Hourly"), ("Dates", "2026-06-08 (Mon)"), ("Hours", "3"),
                      ("Reason (optional)", "通院のため")),
    ("expense", "ja"): (("用途", "大阪出張"), ("明細", "2件 合計 ¥16,000")),
    ("expense", "en"): (("Purpose", "大阪出張"), ("Items", "2 items, total ¥16,000")),
    ("stamp", "ja"): (("文書名", "業務委託契約書"), ("相手先", "株式会社テスト"), ("印鑑の種類", "代表者印"), ("部数", "2"),
                      ("希望日", "2026-06-10 (水)")),
    ("stamp", "en"): (("Document", "業務委託契約書"), ("Counterparty", "株式会社テスト"),
                      ("Seal", "Representative's seal"), ("Copies", "2"), ("Needed by", "2026-06-10 (Wed)")),
    ("it", "ja"): (("種別", "PC・機器"), ("件名", "PCが起動しない"), ("詳細", "電源ボタンを押しても反応がありません。"),
                   ("緊急度", "高（業務停止）")),
    ("it", "en"): (("Category", "Computer or device"), ("Subject", "PCが起動しない"),
                   ("Details", "電源ボタンを押しても反応がありません。"), ("Urgency", "High (cannot work)")),
}


@pytest.mark.parametrize("key, locale", sorted(SUMMARIES))
def test_summary_fields_of_each_type(key: str, locale: str) -> None:
    assert summary_fields(spec_of(key), clean_payload(key), locale) == SUMMARIES[(key, locale)]


def test_summary_of_a_leave_range_and_its_days() -> None:
    spec = spec_of("leave")
    payload = {"unit": "full", "period": {"start": "2026-06-08", "end": "2026-06-10"}, "hours": "3"}
    assert summary_fields(spec, payload, "ja") == (("取得単位", "全日"), ("期間", "2026-06-08 (月) – 2026-06-10 (水)"))
    with_days = summary_fields(spec, payload, "ja", days=Decimal("3"))
    assert with_days[1] == ("期間", "2026-06-08 (月) – 2026-06-10 (水)（3日）")  # hours: not asked for full days
    assert summary_fields(spec, payload, "en", days=Decimal("2.50"))[1][1].endswith("(2.5 days)")


def test_summary_cuts_and_limits() -> None:
    spec = spec_of("it")
    payload = {"category": "other", "subject": "件名", "details": "あ" * 150, "urgency": "low"}
    pairs = summary_fields(spec, payload, "ja", max_fields=3)
    assert [label for label, _ in pairs] == ["種別", "件名", "詳細"]
    assert pairs[2][1] == "あ" * 100 + "…" and cut("short") == "short"
    one = {"purpose": "備品", "items": [{"amount": 1200, "tax_rate": "10"}]}
    assert summary_fields(spec_of("expense"), one, "en")[1] == ("Items", "1 item, total ¥1,200")
    assert summary_fields(spec_of("expense"), one, "ja")[1] == ("明細", "1件 合計 ¥1,200")


def test_attachments_are_listed_apart() -> None:
    assert attachments(spec_of("expense"), clean_payload("expense"), "ja") == (
        ("領収書 1", "https://files.example.com/r1.pdf"),)
    assert attachments(spec_of("stamp"), clean_payload("stamp"), "en") == (
        ("Document file or URL", "https://files.example.com/contract.pdf"),)
    pairs = summary_fields(spec_of("stamp"), clean_payload("stamp"), "en")
    assert all(label != "Document file or URL" for label, _ in pairs)
