"""Unit tests for bot.teams.adaptive: neutral views to Adaptive Cards 1.5, and card actions back.

The views are the ones the handlers really produce: a small company on a real SQLite file files every shipped
request type; its outbox (approver, requester, decided and FYI cards, nudge digests, HR broadcasts) is rendered
by handlers.notifications, next to the cards, forms, homes and replies the handlers build directly, in ja and
en. Every card rendered here (and a few deliberately broken ones, so the check can fail) is validated by
Microsoft's own adaptivecards library in ONE node call (tests/cards/validate_adaptive.mjs; node starts
slowly), and must stay under Teams' 28 KB.

Without node or the npm package (`npm ci`) the validation tests skip, saying so, unless
MADOGUCHI_REQUIRE_ADAPTIVECARDS=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.teams.adaptive import (
    CARD_BUDGET,
    CARD_BYTES,
    DATA_KEY,
    CardAction,
    card_size,
    errors_card,
    mrkdwn_to_markdown,
    read_action,
    read_submission,
    render_form,
    render_home,
    render_message,
    truncate_markdown,
)
from config.i18n import LocalText
from config.policy import Policy, load_policy
from config.settings import DEFAULT_WORKFLOWS
from handlers import broadcast, notifications
from handlers.cards import approval_card, decided_card, reason_form, requester_card, shared_queue_card
from handlers.conversation import Conversation
from handlers.events import CloseForm, CommandEvent, FormErrors, OpenForm, Reply, Response, SubmitEvent, Who
from handlers.home import home_for, not_registered_home
from handlers.nudges import snoozed_message
from handlers.request_forms import form_for, payload_from
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
from models.db import Database
from models.messaging import OutboxMessage, outbox
from tests.conftest import Clock, Org, make_org
from tests.unit.test_cards import expense_details
from tests.unit.test_request_forms import GOOD
from workflow.engine import Engine
from workflow.forms import validate_payload
from workflow.identity import identify
from workflow.nudges import Nudger
from workflow.queries import load_details

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tests" / "cards" / "validate_adaptive.mjs"
LIBRARY = ROOT / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.min.js"
REQUIRE = os.environ.get("MADOGUCHI_REQUIRE_ADAPTIVECARDS") == "1"
POLICY: Policy = load_policy(DEFAULT_WORKFLOWS)
TZ = "Asia/Tokyo"
JST = ZoneInfo(TZ)
LOCALES = ("ja", "en")
EMAILS = {"alice": "alice@example.jp", "bob": "bob@example.jp", "manager": "mgr@example.jp",
          "sales_head": "head@example.jp", "hr": "hr@example.jp", "admin": "admin@example.jp",
          "it1": "it1@example.jp"}
BROADCAST = {"audience": "people", "targets": "alice@example.jp, bob@example.jp",
             "message_ja": "健康診断の予約をお願いします。<https://example.jp/kenshin|予約ページ>",
             "message_en": "Please book your *health check*.", "ack": "yes", "send_date": None,
             "send_time": None, "repeat": "none", "until": None}


def jst(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=JST).astimezone(UTC)


# ------------------------------------------------------------------------------------------------ the check


def _validator_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not LIBRARY.exists():
        return f"npm package adaptivecards is missing ({LIBRARY.relative_to(ROOT)}): run `npm ci`"
    return None


def validate(cards: list[Any]) -> list[dict[str, Any]]:
    """Microsoft's adaptivecards library's verdict on each card, in one node process."""
    missing = _validator_missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"MADOGUCHI_REQUIRE_ADAPTIVECARDS=1 but {missing}")
        pytest.skip(f"Adaptive Cards not validated: {missing}")
    done = subprocess.run(["node", str(VALIDATOR)], input=json.dumps(cards), capture_output=True, text=True,
                          cwd=ROOT, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    verdicts: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(verdicts) == len(cards)
    return verdicts


def utf8_size(card: dict[str, Any]) -> int:
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode())


# ------------------------------------------------------------------------------------------------ real views


@dataclass
class World:
    """A company on a real database with requests under way, and the views its handlers produced."""

    db: Database
    org: Org
    talk: Conversation
    who: dict[str, Who]
    messages: dict[str, Message] = field(default_factory=dict)  # name -> (message) in its locale
    locales: dict[str, str] = field(default_factory=dict)
    submitted: dict[str, Response] = field(default_factory=dict)  # what the conversation answered a card's submit


def _identify(db: Database, now: datetime) -> dict[str, Who]:
    with db.unit_of_work() as conn:
        for name, email in EMAILS.items():
            assert identify(conn, "teams", "tenant-1", f"29:{name}", email, now) is not None
    return {name: Who("teams", "tenant-1", f"29:{name}") for name in EMAILS}


def _outbox(db: Database) -> list[OutboxMessage]:
    with db.unit_of_work(write=False) as conn:
        return [OutboxMessage(**r._mapping) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id))]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    path = tmp_path_factory.mktemp("adaptive") / "madoguchi.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    clock = Clock(jst(2026, 6, 2, 10, 0))  # a Tuesday morning
    engine = Engine(db, POLICY, clock=clock)
    org = make_org(db)
    w = World(db, org, Conversation(engine), _identify(db, clock()))
    for requester in (org.alice, org.bob):  # ja and en requesters
        for key in sorted(POLICY.types):
            outcome = engine.submit(requester, key, payload_from(POLICY.types[key], GOOD[key]))
            assert outcome.ok, outcome.message("en")
    first = engine.submit(org.alice, "expense", payload_from(POLICY.types["expense"], GOOD["expense"]))
    assert first.ok and first.open_assignments
    assert engine.decide(first.open_assignments[0], org.manager, "approve").ok
    second = engine.submit(org.bob, "stamp", payload_from(POLICY.types["stamp"], GOOD["stamp"]))
    assert engine.decide(second.open_assignments[0], org.manager, "reject", "押印先が違います <@U1> & co").ok
    third = engine.submit(org.alice, "leave", payload_from(POLICY.types["leave"], GOOD["leave"]))
    assert engine.decide(third.open_assignments[0], org.manager, "send_back", "時間を確認してください").ok
    sent = w.talk.on_submit(SubmitEvent(w.who["hr"], broadcast.CALLBACK, "", dict(BROADCAST)))
    assert isinstance(sent, CloseForm), sent
    nudger = Nudger(db, POLICY)
    for day in (3, 4, 5, 8, 9):  # before due, due, overdue, escalated
        nudger.tick(jst(2026, 6, day, 10, 0))
    with db.unit_of_work(write=False) as conn:
        for row in _outbox(db):
            found = notifications.message_for(conn, POLICY, TZ, row)
            if found is not None:
                w.messages[f"outbox {row.id} {row.kind}"], w.locales[f"outbox {row.id} {row.kind}"] = found
    yield w
    db.dispose()


def _card_views(w: World) -> dict[str, tuple[Message, str]]:
    """Every card of every request in both languages, as handlers.cards makes them."""
    views: dict[str, tuple[Message, str]] = {}
    with w.db.unit_of_work(write=False) as conn:
        ids = [r.id for r in conn.execute(sa.text("SELECT id FROM requests ORDER BY id"))]
        details = [d for d in (load_details(conn, POLICY, i) for i in ids) if d is not None]
    for d in details:
        spec = POLICY.types[d.request.type]
        assignments = [p.assignment_id for s in d.steps for p in s.people if p.assignment_id is not None]
        for locale in LOCALES:
            n = d.request.number
            views[f"decided {n} {locale}"] = (decided_card(d, spec, locale, TZ), locale)
            views[f"requester {n} {locale}"] = (requester_card(d, spec, locale, TZ), locale)
            for a in assignments:
                views[f"approver {n} #{a} {locale}"] = (approval_card(d, spec, a, locale, TZ), locale)
                if d.request.type == "it":
                    views[f"queue {n} #{a} {locale}"] = (shared_queue_card(d, spec, a, locale, TZ), locale)
    return views


def _command_views(w: World) -> dict[str, Response]:
    responses: dict[str, Response] = {}
    for name in ("alice", "bob", "manager", "hr"):
        for words in ("help", "inbox", "status", "expense", "language", "broadcast", "休暇", "what?"):
            responses[f"command {name} {words}"] = w.talk.on_command(CommandEvent(w.who[name], words))
    return responses


def _forms() -> dict[str, tuple[Form, str]]:
    forms: dict[str, tuple[Form, str]] = {}
    for locale in LOCALES:
        for key, spec in sorted(POLICY.types.items()):
            forms[f"form {key} {locale}"] = (form_for(key, spec, locale), locale)
            prefill = payload_from(spec, GOOD[key])
            errors = {f.id: LocalText.of("入力を確認してください", "Please check this") for f in spec.fields[:2]}
            errors["__all__"] = LocalText.of("残日数が足りません", "Not enough days left")
            forms[f"form {key} {locale} resubmit"] = (
                form_for(key, spec, locale, initial=prefill, errors=errors, note="残 12 日", request_id=9), locale)
        forms[f"reason reject {locale}"] = (reason_form("reject", 12, locale), locale)
        steps = (("manager", LocalText.of("上長承認", "Manager")),)
        forms[f"reason send_back {locale}"] = (reason_form("send_back", 12, locale, steps), locale)
        forms[f"broadcast {locale}"] = (broadcast.form(locale), locale)
        forms[f"broadcast {locale} errors"] = (broadcast.form(locale, {"targets": "見つかりません"}), locale)
    return forms


def _homes(w: World) -> dict[str, tuple[Home, str]]:
    homes = {f"home {name}": (home_for(w.talk, who), "en" if name == "bob" else "ja") for name, who in w.who.items()}
    homes |= {f"home unregistered {locale}": (not_registered_home(locale), locale) for locale in LOCALES}
    return homes


def _rendered(response: Response, locale: str) -> list[tuple[str, dict[str, Any]]]:
    match response:
        case OpenForm(form=form):
            return [("form", render_form(form, locale))]
        case Reply(message=message) | CloseForm(reply=Reply(message=message)):
            return [("reply", render_message(message, locale))]
    return []


def teams_data(card: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """What Teams sends for a press of the card's submit button: the action's data with the inputs beside it."""
    submit = card["actions"][0]
    return {**submit["data"], **values}


def as_typed(values: dict[str, Any]) -> dict[str, Any]:
    """Neutral answers as a Teams client sends its inputs: strings, a date range as its two date inputs."""
    typed: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            typed |= {f"{name}.{part}": day.isoformat() for part, day in value.items()}
        else:
            typed[name] = value.isoformat() if isinstance(value, date) else ("" if value is None else value)
    return typed


def submit_through_teams(w: World) -> dict[str, dict[str, Any]]:
    """Each type's form as a card, filled in and submitted as Teams sends it, read back, and given to the real
    conversation: well filled (the request is filed) and with its required inputs left empty (the errors come
    back, and the card shown again with them is returned, for the validator)."""
    again: dict[str, dict[str, Any]] = {}
    for who, locale in (("alice", "ja"), ("bob", "en")):
        for key, spec in sorted(POLICY.types.items()):
            card = render_form(form_for(key, spec, locale), locale)
            for case, typed in (("good", as_typed(GOOD[key])), ("empty", {})):
                data = teams_data(card, typed)
                action = read_action(data, card["actions"][0]["verb"])
                assert action is not None and action.kind == "submit"
                values = read_submission(data)
                response = w.talk.on_submit(SubmitEvent(w.who[who], action.name, action.value, values))
                w.submitted[f"{key} {locale} {case}"] = response
                if isinstance(response, FormErrors):
                    again[f"{key} {locale}"] = errors_card(form_for(key, spec, locale), response.errors, values,
                                                           locale)
    return again


# Cards the library must refuse: if these passed, the check could not fail.
BROKEN: dict[str, dict[str, Any]] = {
    "unknown element": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "Banner", "text": "x"}]},
    "input without id": {"type": "AdaptiveCard", "version": "1.5",
                         "body": [{"type": "Input.Text", "label": "目的"}]},
    "duplicate ids": {"type": "AdaptiveCard", "version": "1.5",
                      "body": [{"type": "Input.Text", "id": "a", "label": "A"},
                               {"type": "Input.Date", "id": "a", "label": "B"}]},
    "required without error message": {"type": "AdaptiveCard", "version": "1.5",
                                       "body": [{"type": "Input.Text", "id": "a", "label": "A", "isRequired": True}]},
    "six actions in a row": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "ActionSet", "actions": [
        {"type": "Action.Execute", "title": str(i), "verb": "v"} for i in range(6)]}]},
    "people picker at 1.5": {"type": "AdaptiveCard", "version": "1.5", "body": [{
        "type": "Input.ChoiceSet", "id": "u", "label": "U", "choices": [{"title": "-", "value": "-"}],
        "choices.data": {"type": "Data.Query", "dataset": "graph.microsoft.com/users"}}]},
    "bad colour": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "x",
                                                                       "color": "red"}]},
    "unknown action": {"type": "AdaptiveCard", "version": "1.5", "actions": [{"type": "Action.Call", "title": "x"}]},
}


@pytest.fixture(scope="module")
def cards(world: World) -> dict[str, dict[str, Any]]:
    """Every real view rendered, plus the huge ones of the truncation tests, plus the broken ones."""
    rendered: dict[str, dict[str, Any]] = {}
    for name, message in world.messages.items():
        rendered[name] = render_message(message, world.locales[name])
    for name, (message, locale) in _card_views(world).items():
        rendered[name] = render_message(message, locale)
    for name, (form, locale) in _forms().items():
        rendered[name] = render_form(form, locale)
    for name, (home, locale) in _homes(world).items():
        rendered[name] = render_home(home, locale)
    for name, response in _command_views(world).items():
        for kind, card in _rendered(response, "ja"):
            rendered[f"{name} {kind}"] = card
    for locale in LOCALES:
        until = datetime(2026, 6, 3, 0, 0, tzinfo=UTC)
        rendered[f"snoozed {locale}"] = render_message(snoozed_message(until, locale, TZ), locale)
    rendered |= {f"huge {name}": card for name, card in huge_cards().items()}
    rendered |= {f"errors {name}": card for name, card in error_cards().items()}
    rendered |= {f"submitted again {name}": card for name, card in submit_through_teams(world).items()}
    return rendered


@pytest.fixture(scope="module")
def verdicts(cards: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = [*cards, *(f"broken {n}" for n in BROKEN)]
    results = validate([*cards.values(), *BROKEN.values()])
    return dict(zip(names, results, strict=True))


def test_the_real_views_are_many_and_of_every_kind(cards: dict[str, dict[str, Any]], world: World) -> None:
    kinds = {row.kind for row in _outbox(world.db)}
    assert {"approval_requested", "submitted", "step_decided", "request_sent_back", "broadcast",
            "nudge_digest"} <= kinds, kinds
    for prefix in ("approver", "decided", "requester", "queue", "form expense", "form leave", "form stamp",
                   "form it", "reason", "broadcast", "home", "command", "outbox"):
        assert any(n.startswith(prefix) for n in cards), prefix
    assert any("nudge_digest" in n for n in cards) and any(n.endswith(" broadcast") for n in cards)
    assert len(cards) > 150


def test_every_card_is_valid_adaptive_card_1_5(cards: dict[str, dict[str, Any]],
                                               verdicts: dict[str, dict[str, Any]]) -> None:
    failed = {name: verdicts[name]["events"] for name in cards if not verdicts[name]["ok"]}
    assert failed == {}
    assert {verdicts[name]["version"] for name in cards} == {"1.5"}
    for card in cards.values():
        assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
        assert (card["type"], card["version"]) == ("AdaptiveCard", "1.5")


def test_broken_cards_are_reported(verdicts: dict[str, dict[str, Any]]) -> None:
    events = {name: {e["event"] for e in verdicts[f"broken {name}"]["events"]} for name in BROKEN}
    assert events == {
        "unknown element": {"UnknownElementType"},
        "input without id": {"PropertyCantBeNull"},
        "duplicate ids": {"DuplicateId"},
        "required without error message": {"RequiredInputsShouldHaveErrorMessage"},
        "six actions in a row": {"TooManyActions"},
        "people picker at 1.5": {"UnsupportedProperty"},
        "bad colour": {"InvalidPropertyValue"},
        "unknown action": {"UnknownActionType"},
    }


def test_every_card_fits_in_a_teams_message(cards: dict[str, dict[str, Any]]) -> None:
    too_big = {name: utf8_size(card) for name, card in cards.items() if utf8_size(card) >= CARD_BYTES}
    assert too_big == {}
    assert max(card_size(card) for card in cards.values()) <= CARD_BUDGET
    assert CARD_BUDGET < CARD_BYTES


def test_the_validator_reads_a_file_of_cards_from_stdin() -> None:
    [verdict] = validate([{"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "x"}]}])
    assert verdict == {"ok": True, "events": [], "version": "1.5"}


# ------------------------------------------------------------------------------------------------ elements


def body_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = card["body"]
    return body


def element(card: dict[str, Any], element_id: str) -> dict[str, Any]:
    [found] = [e for e in body_of(card) if e.get("id") == element_id]
    return found


APPROVE = Button("承認", "approve", "assignment:17", "primary")
REJECT = Button("却下", "reject", "assignment:17", "danger", Confirm("却下しますか？", "理由の入力に進みます。", "却下する", "戻る"))
LINK = Button("領収書を開く", "open_receipt", url="https://files.example.com/r/42.pdf")


def test_display_blocks() -> None:
    message = Message("山田さんから休暇申請", (
        Header("休暇申請 #L-2026-0042"), Text("*山田 太郎* さんが休暇を申請しました。"),
        Text("plain *not bold*", markdown=False), Fields((("種類", "年次有給休暇"), ("期間", "6/8 〜 6/10"))),
        Divider(), Context("申請日 2026-06-01")))
    card = render_message(message)
    assert card["fallbackText"] == "山田さんから休暇申請"
    header, text, plain, facts, context = body_of(card)
    assert header == {"type": "TextBlock", "text": "休暇申請 #L-2026-0042", "style": "heading", "size": "large",
                      "weight": "bolder", "wrap": True}
    assert text["text"] == "**山田 太郎** さんが休暇を申請しました。"
    assert plain == {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "plain *not bold*"}]}
    assert facts == {"type": "FactSet", "facts": [{"title": "種類", "value": "年次有給休暇"},
                                                  {"title": "期間", "value": "6/8 〜 6/10"}]}
    assert context["separator"] is True and context["isSubtle"] is True and context["size"] == "small"


def test_more_than_ten_fields_make_more_fact_sets() -> None:
    body = body_of(render_message(Message("f", (Fields(tuple((f"項目{i}", f"値{i}") for i in range(23))),))))
    assert [len(b["facts"]) for b in body] == [10, 10, 3]


def test_blank_texts_and_empty_surfaces_still_show_something() -> None:
    body = body_of(render_message(Message("", (Header(""), Text("  "), Context(""), Fields((("", ""),))))))
    assert [b.get("text") for b in body[:3]] == ["—", "—", "—"]
    assert body[3]["facts"] == [{"title": "—", "value": "—"}]
    assert body_of(render_message(Message("お知らせ"))) == [
        {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "お知らせ"}]}]
    assert body_of(render_home(Home()))[0]["text"] == "—"


def test_buttons_are_universal_actions_and_a_confirm_is_a_show_card() -> None:
    [actions] = body_of(render_message(Message("承認", (Actions((APPROVE, REJECT, LINK)),))))
    approve, reject, link = actions["actions"]
    assert approve == {"type": "Action.Execute", "title": "承認", "verb": "approve", "style": "positive",
                       "data": {DATA_KEY: {"kind": "click", "action": "approve", "value": "assignment:17"}}}
    assert reject["type"] == "Action.ShowCard" and reject["title"] == "却下" and reject["style"] == "destructive"
    title, text = reject["card"]["body"]
    assert title["text"] == "却下しますか？" and text["inlines"][0]["text"] == "理由の入力に進みます。"
    [really] = reject["card"]["actions"]
    assert really["type"] == "Action.Execute" and really["title"] == "却下する" and really["style"] == "destructive"
    assert read_action(really["data"], really["verb"]) == CardAction("click", "reject", "assignment:17")
    assert link == {"type": "Action.OpenUrl", "title": "領収書を開く", "url": "https://files.example.com/r/42.pdf"}


def test_more_than_five_buttons_make_more_rows() -> None:
    buttons = tuple(Button(str(i), "pick", str(i)) for i in range(12))
    body = body_of(render_message(Message("p", (Actions(buttons),))))
    assert [len(b["actions"]) for b in body] == [5, 5, 2]
    assert [a["data"][DATA_KEY]["value"] for b in body for a in b["actions"]] == [str(i) for i in range(12)]


def test_mrkdwn_becomes_markdown() -> None:
    assert mrkdwn_to_markdown("*承認* されました _確認_ <https://x.jp/r?a=1&amp;b=2|申請 #42>") == (
        "**承認** されました _確認_ [申請 #42](https://x.jp/r?a=1&b=2)")
    assert mrkdwn_to_markdown("&lt;!channel&gt; &amp; co <@U123> <!here> <https://a.jp>") == (
        "<!channel> & co @U123 @here [https://a.jp](https://a.jp)")
    assert mrkdwn_to_markdown("一行目\n二行目") == "一行目\n\n二行目"
    assert mrkdwn_to_markdown("2*3*4 and *not bold") == "2*3*4 and *not bold"
    assert mrkdwn_to_markdown("<https://a.jp/x|[label]>") == "[(label)](https://a.jp/x)"
    assert mrkdwn_to_markdown("<https://a.jp/r?a=1&amp;b=&lt;2&gt; (x)|領収書>") == (
        "[領収書](https://a.jp/r?a=1&b=%3C2%3E%20%28x%29)")


def test_truncated_markdown_never_shows_half_a_link_or_bold() -> None:
    assert truncate_markdown("a" * 10 + "[申請](https://x.jp/requests/42)", 20) == "a" * 10 + "…"
    assert truncate_markdown("ab **bold text** cd", 10) == "ab …"
    assert truncate_markdown("short", 10) == "short"


# ------------------------------------------------------------------------------------------------ inputs


def form(*blocks: Any, **kwargs: Any) -> Form:
    fields = {"title": "休暇申請", "callback": "submit_leave", "submit": "申請", "close": "キャンセル",
              "state": '{"t":"leave"}'}
    return Form(blocks=blocks, **(fields | kwargs))


EVERY_KIND = (
    Input("purpose", "目的", "text", placeholder="例: 出張", max_length=200, initial="出張"),
    Input("note", "備考", "multiline", required=False, hint="任意です"),
    Input("hours", "時間数", "number", min_value="0.5", max_value="8", initial="1.5"),
    Input("amount", "金額", "money", initial="12800"),
    Input("day", "日付", "date", initial=date(2026, 6, 8)),
    Input("period", "期間", "date_range", initial=(date(2026, 6, 8), date(2026, 6, 10))),
    Input("kind", "種類", "select", options=(Option("annual", "年次有給休暇"), Option("special", "特別休暇")),
          initial="special"),
    Input("delegate", "代理人", "user", required=False),
    Input("receipt", "領収書URL", "file", initial="https://files.example.com/1"),
)


def test_every_input_kind() -> None:
    card = render_form(form(*EVERY_KIND))
    assert body_of(card)[0]["text"] == "休暇申請"
    assert element(card, "purpose") == {"type": "Input.Text", "id": "purpose", "label": "目的", "isRequired": True,
                                        "errorMessage": "入力してください", "placeholder": "例: 出張",
                                        "maxLength": 200, "value": "出張"}
    note = element(card, "note")
    assert note["isMultiline"] is True and "isRequired" not in note and "errorMessage" not in note
    hint = body_of(card)[body_of(card).index(note) + 1]
    assert hint["text"] == "任意です" and hint["isSubtle"] is True
    hours = element(card, "hours")
    assert (hours["type"], hours["min"], hours["max"], hours["value"]) == ("Input.Number", 0.5, 8, 1.5)
    amount = element(card, "amount")
    assert (amount["min"], amount["value"], "max" in amount) == (0, 12800, False)
    assert element(card, "day")["type"] == "Input.Date" and element(card, "day")["value"] == "2026-06-08"
    start, end = element(card, "period.start"), element(card, "period.end")
    assert (start["label"], start["value"], end["label"], end["value"]) == (
        "期間（開始）", "2026-06-08", "期間（終了）", "2026-06-10")
    kind = element(card, "kind")
    assert kind["choices"] == [{"title": "年次有給休暇", "value": "annual"}, {"title": "特別休暇", "value": "special"}]
    assert (kind["value"], kind["style"]) == ("special", "compact")
    assert element(card, "delegate")["style"] == "email"  # Data.Query is 1.6 in the library: an email instead
    assert element(card, "receipt")["style"] == "url"
    submit, close = card["actions"]
    assert submit["verb"] == "submit_leave" and submit["style"] == "positive" and submit["title"] == "申請"
    assert submit["data"][DATA_KEY] == {"kind": "submit", "callback": "submit_leave", "state": '{"t":"leave"}',
                                        "inputs": {i.name: i.kind for i in EVERY_KIND}}
    assert close["associatedInputs"] == "none" and close["title"] == "キャンセル"
    assert read_action(close["data"]) == CardAction("close", "submit_leave", '{"t":"leave"}')


def test_english_words_of_the_renderer_follow_the_form() -> None:
    card = render_form(form(Input("period", "Period", "date_range"), locale="en"), "ja")
    assert [element(card, f"period.{p}")["label"] for p in ("start", "end")] == ["Period (Start)", "Period (End)"]
    assert element(card, "period.start")["errorMessage"] == "Please fill this in."


def test_a_long_select_is_a_typeahead() -> None:
    options = tuple(Option(f"o{i}", f"選択肢{i}") for i in range(20))
    assert element(render_form(form(Input("c", "選択", "select", options=options))), "c")["style"] == "filtered"


def test_identifiers_and_state_are_never_cut() -> None:
    with pytest.raises(ValueError, match="3000"):
        render_form(form(state="s" * 3001))
    with pytest.raises(ValueError):
        render_form(form(callback="c" * 256))
    with pytest.raises(ValueError):
        render_form(form(Input(DATA_KEY, "名前", "text")))
    with pytest.raises(ValueError):
        render_message(Message("b", (Actions((Button("x", ""),)),)))


# ------------------------------------------------------------------------------------------------ submissions


def test_read_submission_round_trip_of_every_kind() -> None:
    card = render_form(form(*EVERY_KIND))
    data = teams_data(card, {"purpose": "大阪出張", "note": "", "hours": 1.5, "amount": "12800", "day": "2026-06-08",
                             "period.start": "2026-06-08", "period.end": "2026-06-10", "kind": "annual",
                             "delegate": "sato@example.jp", "receipt": "https://files.example.com/r/1"})
    assert read_action(data, "submit_leave") == CardAction("submit", "submit_leave", '{"t":"leave"}')
    assert read_submission(data) == {
        "purpose": "大阪出張", "note": None, "hours": "1.5", "amount": "12800", "day": date(2026, 6, 8),
        "period": {"start": date(2026, 6, 8), "end": date(2026, 6, 10)}, "kind": "annual",
        "delegate": "sato@example.jp", "receipt": "https://files.example.com/r/1"}


def test_read_submission_is_tolerant() -> None:
    card = render_form(form(*EVERY_KIND))
    data = teams_data(card, {"purpose": "  ", "period.start": "2026-06-08", "day": "6/8", "hours": 80000.0,
                             "ghost": "x", "items[9].amount": "1", "kind": ["not", "a", "string"]})
    values = read_submission(data)
    assert set(values) == {i.name for i in EVERY_KIND}  # a field the form lacks is ignored; a missing one None
    assert values["purpose"] is None and values["day"] is None and values["kind"] is None
    assert values["period"] == {"start": date(2026, 6, 8), "end": None}
    assert values["hours"] == "80000" and values["amount"] is None
    assert read_submission(None) == {} and read_submission({DATA_KEY: "junk", "a": 1}) == {"a": "1"}
    assert read_submission({DATA_KEY: {"inputs": {"a": "date", "b": "date_range", "7": 7}}, "a": 3}) == {
        "a": None, "b": None, "7": None}
    assert read_action({"x": 1}) is None and read_action(None, "approve") == CardAction("click", "approve", "")
    assert read_action({DATA_KEY: {"kind": "submit", "callback": 5}}) is None


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key", sorted(POLICY.types))
def test_every_shipped_form_reads_back_what_the_engine_accepts(key: str, locale: str) -> None:
    spec = POLICY.types[key]
    card = render_form(form_for(key, spec, locale), locale)
    values = read_submission(teams_data(card, as_typed(GOOD[key])))
    assert set(values) == {e["id"].rsplit(".", 1)[0] if e["id"].endswith((".start", ".end")) else e["id"]
                           for e in body_of(card) if e["type"].startswith("Input.")}
    validate_payload(spec, payload_from(spec, values))  # raises when the engine refuses it


# ------------------------------------------------------------------------------------------------ errors


def test_errors_go_under_their_inputs_and_what_was_typed_stays() -> None:
    f = form(*EVERY_KIND)
    values = read_submission(teams_data(render_form(f), {"purpose": "大阪出張", "amount": "-5", "period.start": "2026-06-10",
                                                          "period.end": "2026-06-08", "kind": "annual"}))
    del values["hours"]  # an answer the handler does not hand back keeps its prefill
    card = errors_card(f, {"amount": "0円以上にしてください", "period.end": "終了日は開始日以降にしてください",
                           "__all__": "残日数が足りません"}, values)
    body = body_of(card)
    assert body[1]["color"] == "attention" and body[1]["text"] == "⚠ 残日数が足りません"  # under the title
    amount = element(card, "amount")
    assert amount["errorMessage"] == "0円以上にしてください" and amount["value"] == -5
    under = body[body.index(amount) + 1]
    assert under == {"type": "TextBlock", "text": "⚠ 0円以上にしてください", "color": "attention", "size": "small",
                     "wrap": True, "spacing": "small"}
    end = element(card, "period.end")
    assert body[body.index(end) + 1]["text"] == "⚠ 終了日は開始日以降にしてください"
    assert (element(card, "period.start")["value"], end["value"]) == ("2026-06-10", "2026-06-08")
    assert element(card, "purpose")["value"] == "大阪出張" and element(card, "kind")["value"] == "annual"
    assert "value" not in element(card, "receipt")  # submitted empty: the prefill is not brought back
    assert "value" not in element(card, "day")
    assert element(card, "hours")["value"] == 1.5


def test_a_teams_submission_files_the_request_and_bad_answers_come_back_under_their_inputs(
        world: World, cards: dict[str, dict[str, Any]]) -> None:
    for key in POLICY.types:
        for locale in LOCALES:
            filed = world.submitted[f"{key} {locale} good"]
            assert isinstance(filed, CloseForm) and filed.reply is not None, filed
            refused = world.submitted[f"{key} {locale} empty"]
            assert isinstance(refused, FormErrors) and refused.errors, refused
            card = cards[f"submitted again {key} {locale}"]
            body = body_of(card)
            for name, message in refused.errors.items():
                ids = [e["id"] for e in body if e.get("id") in (name, f"{name}.end")]
                assert ids, name
                under = body[body.index(element(card, ids[-1])) + 1]
                assert under["color"] == "attention" and message in under["text"]


def error_cards() -> dict[str, dict[str, Any]]:
    """Forms shown again with their errors, for the validator."""
    out: dict[str, dict[str, Any]] = {}
    for locale in LOCALES:
        for key, spec in sorted(POLICY.types.items()):
            f = form_for(key, spec, locale)
            errors = {i.name: "入力を確認してください" for i in f.blocks if isinstance(i, Input)}
            errors["__all__"] = "残日数が足りません"
            out[f"{key} {locale}"] = errors_card(f, errors, {}, locale)
        out[f"every kind {locale}"] = errors_card(form(*EVERY_KIND, locale=locale), {"purpose": "x", "period": "y"},
                                                  {"purpose": "z" * 9000}, locale)
    return out


# ------------------------------------------------------------------------------------------------ truncation


def huge_cards() -> dict[str, dict[str, Any]]:
    """The truncation tests' cards, for the validator too."""
    return {name: make() for name, make in HUGE.items()}


def _long_description() -> dict[str, Any]:
    text = "長い説明 <https://x.jp|リンク> *太字* " + "あ" * 50_000
    return render_message(Message(text, (Header("見" * 500), Text(text), Text(text, False), Context(text),
                                         Fields((("内容", text),)), Actions((Button(text, "approve", text, "danger",
                                                                                    Confirm(text, text, text, text)),)))))


def _many_options(label: str = "部署 {i}") -> dict[str, Any]:
    options = tuple(Option(f"option-{i:03}", label.format(i=i)) for i in range(200))
    return render_form(form(Input("choice", "選択", "select", options=options, initial="option-190"),
                            Input("note", "備考", "multiline", hint="ヒ" * 5000, placeholder="プ" * 500)))


def _many_long_options() -> dict[str, Any]:
    return _many_options("選択肢 {i} " + "説" * 70)


def _sixty_items_form() -> dict[str, Any]:
    spec = POLICY.types["expense"]
    items = [{"date": "2026-06-01", "payee": f"取引先{i}" * 5, "amount": 1000 + i, "tax_rate": "10",
              "category": "travel", "receipt": f"https://files.example.jp/r/{i}.pdf"} for i in range(60)]
    return render_form(form_for("expense", spec, "ja", initial={"purpose": "出張" * 300, "items": items}), "ja")


def _sixty_items_message() -> dict[str, Any]:
    pairs = tuple((f"明細 {i}", f"2026-06-01 取引先{i} ¥{1000 + i:,} " + "備考" * 100) for i in range(60))
    return render_home(Home((Header("明細"), Fields(pairs), *(Text(f"*{i}* " + "行" * 800) for i in range(60)))), "en")


def _huge_request_card() -> dict[str, Any]:
    d = expense_details()
    items = [{"date": "2026-06-01", "payee": f"取引先{i} <&>", "amount": 1000 + i, "tax_rate": "10",
              "category": "travel", "receipt": f"https://files.example.jp/r/{i}.pdf"} for i in range(60)]
    request = replace(d.request, payload={"purpose": "目的 *x* " * 7000, "items": items})
    return render_message(approval_card(replace(d, request=request), POLICY.types["expense"], 12, "ja", TZ), "ja")


def _folded_form() -> dict[str, Any]:
    return render_form(form(*(Input(f"q{i}", f"質問 {i} " + "問" * 300, "text") for i in range(300))))


HUGE = {"description": _long_description, "options": _many_options, "long options": _many_long_options,
        "items form": _sixty_items_form, "items home": _sixty_items_message, "request card": _huge_request_card,
        "folded form": _folded_form}


@pytest.mark.parametrize("name", sorted(HUGE))
def test_huge_content_stays_under_28_kb(name: str) -> None:
    card = HUGE[name]()
    assert utf8_size(card) < CARD_BYTES and card_size(card) <= CARD_BUDGET


def test_a_50000_character_description_is_cut_not_dropped() -> None:
    card = _long_description()
    body = body_of(card)
    assert [b["type"] for b in body] == ["TextBlock", "TextBlock", "RichTextBlock", "TextBlock", "FactSet",
                                         "ActionSet"]
    texts = [body[1]["text"], body[2]["inlines"][0]["text"], body[3]["text"], body[4]["facts"][0]["value"]]
    assert all(t.endswith("…") and len(t) >= 40 for t in texts)
    assert body[1]["text"].startswith("長い説明 [リンク](https://x.jp) **太字**")
    assert card["fallbackText"].endswith("…")


def test_200_options_are_all_offered_when_they_fit() -> None:
    card = _many_options()
    choice = element(card, "choice")
    assert (len(choice["choices"]), choice["style"], choice["value"]) == (200, "filtered", "option-190")
    assert choice["choices"][-1] == {"title": "部署 199", "value": "option-199"}


def test_200_long_options_that_cannot_fit_say_how_many_are_left_out() -> None:
    card = _many_long_options()
    choice = element(card, "choice")
    shown = len(choice["choices"])
    assert 0 < shown < 200 and choice["value"] == "option-190"  # the prefilled choice is kept
    assert choice["choices"][-1]["value"] == "option-190"
    assert body_of(card)[body_of(card).index(choice) + 1]["text"] == f"…ほか {200 - shown} 件"


def test_sixty_line_items_keep_every_input_the_card_shows_in_its_submission() -> None:
    card = _sixty_items_form()
    ids = {e["id"] for e in body_of(card) if e["type"].startswith("Input.")}
    listed = card["actions"][0]["data"][DATA_KEY]["inputs"]
    assert set(listed) == ids and "items[0].amount" in ids
    assert any("全60件のうち" in str(b.get("text", "")) for b in body_of(card))  # the handler's own notice


def test_a_request_with_a_huge_purpose_and_60_items_keeps_its_buttons() -> None:
    body = body_of(_huge_request_card())
    assert body[0]["text"] == "経費精算 EXP-2026-0001"
    assert [a["verb"] for a in body[-1]["actions"]] == ["approve", "reject", "send_back"]
    assert all(len(f["value"]) <= 2000 for b in body if b["type"] == "FactSet" for f in b["facts"])


def test_a_folded_form_submits_only_the_inputs_it_shows() -> None:
    card = _folded_form()
    body = body_of(card)
    shown = [e["id"] for e in body if e["type"] == "Input.Text"]
    assert 0 < len(shown) < 300 and body[-1]["text"] == f"…ほか {300 - len(shown)} 件"
    assert list(card["actions"][0]["data"][DATA_KEY]["inputs"]) == shown
    values = read_submission(teams_data(card, {name: "回答" for name in shown} | {"q299": "hidden"}))
    assert values == {name: "回答" for name in shown}


def test_a_body_too_big_for_any_text_limit_folds_its_tail_into_one_line() -> None:
    home = Home(tuple(Text(f"{i} " + "あ" * 400) for i in range(300)))
    for locale, more in (("ja", "…ほか {n} 件"), ("en", "… {n} more")):
        body = body_of(render_home(home, locale))
        hidden = 300 - (len(body) - 1)
        assert hidden > 0 and body[-1]["text"] == more.format(n=hidden)
        assert body[len(body) - 2]["text"].startswith(f"{len(body) - 2} ")
    assert card_size(render_home(home)) <= CARD_BUDGET
