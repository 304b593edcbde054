"""Each person's language, on SQLite and PostgreSQL: their own choice, else what their chat platform last
reported, else the org file's setting; chosen with `/madoguchi language` (or 言語) and the home's button, kept
across org re-imports, audited, and used for everything they are shown, approver cards included."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot.slack.blockkit import render_home
from config.policy import Policy
from handlers.commands import SET_LANGUAGE
from handlers.conversation import Conversation
from handlers.events import ClickEvent, CommandEvent, Who
from handlers.home import home_for
from handlers.notifications import message_for
from handlers.views import Actions, Button, Context
from models import people
from models.audit import iter_events
from models.db import Database
from models.messaging import outbox_for
from models.people import Employee
from tests.conftest import Clock, Org
from tests.integration.test_conversation import file_leave, reply_text, shown
from tests.unit.test_blockkit import valid_view
from tests.unit.test_org_import import csv_bytes
from workflow import audit
from workflow.engine import Engine
from workflow.identity import LANGUAGE_CHOSEN, choose_language, identify
from workflow.org_import import import_org

LATER = datetime(2026, 6, 3, 1, 0, tzinfo=UTC)


@pytest.fixture
def talk(db: Database, policy: Policy, clock: Clock) -> Conversation:
    return Conversation(Engine(db, policy, clock=clock))


def seen(db: Database, clock: Clock, user: str, email: str, locale: str | None) -> Employee | None:
    """An event from Slack as `user`, whose users.info reported `locale`."""
    with db.unit_of_work() as conn:
        return identify(conn, "slack", "T1", user, email, clock(), locale)


def employee(db: Database, employee_id: int) -> Employee:
    with db.unit_of_work(write=False) as conn:
        found = people.get_employee(conn, employee_id)
    assert found is not None
    return found


def choose(db: Database, employee_id: int, choice: str | None, clock: Clock) -> Employee | None:
    with db.unit_of_work() as conn:
        return choose_language(conn, employee_id, choice, clock())


def language_events(db: Database) -> list[dict[str, object]]:
    with db.unit_of_work(write=False) as conn:
        return [{"actor": e.actor_id, **json.loads(e.data)} for e in iter_events(conn) if e.kind == LANGUAGE_CHOSEN]


def updated_at(db: Database, employee_id: int) -> datetime:
    with db.unit_of_work(write=False) as conn:
        return conn.execute(sa.select(people.employees.c.updated_at)
                            .where(people.employees.c.id == employee_id)).scalar_one()


# ------------------------------------------------------------------------------------------------ precedence


def test_with_nothing_else_known_the_org_files_language_is_used(db: Database, org: Org) -> None:
    bob, alice = employee(db, org.bob), employee(db, org.alice)
    assert (bob.locale, bob.locale_source, bob.org_locale) == ("en", "org", "en")
    assert (alice.locale, alice.locale_source) == ("ja", "org")
    assert bob.locale_choice is None and bob.platform_locale is None


def test_the_platforms_language_wins_over_the_org_files(db: Database, org: Org, clock: Clock) -> None:
    found = seen(db, clock, "U-bob", "bob@example.jp", "ja-JP")
    assert found is not None and (found.locale, found.locale_source) == ("ja", "platform")
    stored = employee(db, org.bob)
    assert (stored.locale, stored.platform_locale, stored.org_locale) == ("ja", "ja", "en")


@pytest.mark.parametrize("reported", [None, "", "fr-FR", "zh_CN"])
def test_a_missing_or_unknown_platform_language_changes_nothing(db: Database, org: Org, clock: Clock,
                                                                reported: str | None) -> None:
    seen(db, clock, "U-bob", "bob@example.jp", "ja_JP")
    clock.advance(hours=1)
    before = updated_at(db, org.bob)
    found = seen(db, clock, "U-bob", None, reported)  # not "fr" nor back to the org file's "en"
    assert found is not None and (found.locale, found.platform_locale) == ("ja", "ja")
    assert employee(db, org.bob).platform_locale == "ja" and updated_at(db, org.bob) == before


def test_the_platforms_language_is_written_only_when_it_changes(db: Database, org: Org, clock: Clock) -> None:
    seen(db, clock, "U-alice", "alice@example.jp", "en-US")
    first = updated_at(db, org.alice)
    clock.advance(hours=1)
    seen(db, clock, "U-alice", None, "en-GB")  # the same language
    assert updated_at(db, org.alice) == first
    clock.advance(hours=1)
    found = seen(db, clock, "U-alice", None, "ja-JP")  # she switched Slack to Japanese
    assert found is not None and found.locale == "ja"
    assert updated_at(db, org.alice) == clock() and employee(db, org.alice).platform_locale == "ja"


def test_the_persons_choice_wins_and_auto_goes_back(db: Database, org: Org, clock: Clock) -> None:
    seen(db, clock, "U-bob", "bob@example.jp", "ja-JP")
    chosen = choose(db, org.bob, "en", clock)
    assert chosen is not None and (chosen.locale, chosen.locale_source) == ("en", "choice")
    again = seen(db, clock, "U-bob", None, "ja-JP")  # Slack still says Japanese: the choice stays
    assert again is not None and (again.locale, again.locale_source) == ("en", "choice")
    back = choose(db, org.bob, None, clock)
    assert back is not None and (back.locale, back.locale_source) == ("ja", "platform")
    assert employee(db, org.bob).locale == "ja"


def test_auto_without_a_platform_language_is_the_org_files(db: Database, org: Org, clock: Clock) -> None:
    choose(db, org.bob, "ja", clock)
    assert employee(db, org.bob).locale == "ja"
    back = choose(db, org.bob, None, clock)
    assert back is not None and (back.locale, back.locale_source) == ("en", "org")


def test_a_choice_is_audited_once_and_the_chain_holds(db: Database, org: Org, clock: Clock) -> None:
    choose(db, org.alice, "en", clock)
    choose(db, org.alice, "en", clock)  # no change, no event
    choose(db, org.alice, None, clock)
    assert language_events(db) == [
        {"actor": org.alice, "employee_id": org.alice, "from": None, "to": "en"},
        {"actor": org.alice, "employee_id": org.alice, "from": "en", "to": None},
    ]
    with db.unit_of_work(write=False) as conn:
        assert audit.verify(conn) == (2, [])


def test_a_choice_must_be_a_supported_language_and_the_person_active(db: Database, org: Org, clock: Clock) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        choose(db, org.alice, "fr", clock)
    with db.unit_of_work() as conn:
        people.update_employee(conn, org.bob, active=False)
    assert choose(db, org.bob, "ja", clock) is None
    assert language_events(db) == []


# ------------------------------------------------------------------------------------------------ org import

BOB_EN = "bob@example.jp,田中 健,Ken Tanaka,en"


def test_an_org_reimport_keeps_the_choice_and_the_platform_language(db: Database, org: Org, clock: Clock) -> None:
    seen(db, clock, "U-bob", "bob@example.jp", "ja-JP")
    choose(db, org.bob, "ja", clock)
    header = "email,name_ja,name_en,locale"

    same = import_org(db, csv_bytes(header, [BOB_EN]), now=LATER)  # the file's language is still "en"
    assert same.ok and (same.updated, same.unchanged) == (0, 1)

    moved = import_org(db, csv_bytes(header, [BOB_EN.replace(",en", ",ja")]), now=LATER)
    assert moved.ok and moved.updated == 1
    bob = employee(db, org.bob)
    assert (bob.org_locale, bob.platform_locale, bob.locale_choice, bob.locale) == ("ja", "ja", "ja", "ja")

    choose(db, org.bob, "en", clock)
    import_org(db, csv_bytes(header, [BOB_EN.replace(",en", ",ja")]), now=LATER)
    assert employee(db, org.bob).locale == "en"


# ------------------------------------------------------------------------------------------------ conversation


def say(talk: Conversation, who: Who, text: str) -> str:
    return reply_text(shown(talk.on_command(CommandEvent(who, text))))


def test_the_conversation_speaks_the_effective_language(talk: Conversation, db: Database, org: Org) -> None:
    bob = Who("slack", "T1", "U-bob", "bob@example.jp")  # the org file says English; Slack said nothing
    assert "How to use" in say(talk, bob, "help")
    bob_ja = Who("slack", "T1", "U-bob", locale="ja-JP")  # Slack says Japanese
    assert "使い方" in say(talk, bob_ja, "help")
    assert "英語" in say(talk, bob_ja, "help")  # the language command is in the help


@pytest.mark.parametrize(("text", "expected"), [
    ("language en", "Your language is now English."),
    ("言語 英語", "Your language is now English."),
    ("言語　ＥＮＧＬＩＳＨ", "Your language is now English."),
    ("language 日本語", "表示言語を日本語にしました。"),
])
def test_a_choice_is_confirmed_in_the_new_language(talk: Conversation, db: Database, org: Org, text: str,
                                                   expected: str) -> None:
    start = "ja-JP" if "English" in expected else "en-US"
    who = Who("slack", "T1", "U-alice", "alice@example.jp", start)
    assert say(talk, who, text).startswith(expected)
    after = say(talk, who, "status")
    assert ("You have no requests yet" if "English" in expected else "まだ申請はありません") in after


def test_auto_follows_slack_again_and_says_so(talk: Conversation, db: Database, org: Org) -> None:
    alice = Who("slack", "T1", "U-alice", "alice@example.jp", "en-US")
    say(talk, alice, "言語 日本語")
    answer = say(talk, alice, "言語 自動")
    assert "Your language is automatic again" in answer and "from your Slack language setting" in answer
    assert employee(db, org.alice).locale_choice is None


def test_the_language_alone_says_what_it_is_and_where_it_comes_from(talk: Conversation, db: Database,
                                                                    org: Org) -> None:
    bob = Who("slack", "T1", "U-bob", "bob@example.jp")
    answer = say(talk, bob, "language")
    assert "Language: English (the company's setting)" in answer and "/madoguchi language auto" in answer
    answer = say(talk, Who("slack", "T1", "U-bob", locale="ja-JP"), "言語")
    assert "表示言語: 日本語（Slack の言語設定）" in answer and "/madoguchi 言語 英語" in answer
    say(talk, bob, "language en")
    assert "Language: English (your choice)" in say(talk, bob, "language")


def test_an_unknown_language_lists_the_choices_and_changes_nothing(talk: Conversation, db: Database,
                                                                   org: Org) -> None:
    alice = Who("slack", "T1", "U-alice", "alice@example.jp", "ja-JP")
    answer = say(talk, alice, "言語 フランス語")
    assert "「フランス語」は選べる言語ではありません" in answer
    assert all(f"/madoguchi 言語 {w}" in answer for w in ("英語", "日本語", "自動"))
    bob = Who("slack", "T1", "U-bob", "bob@example.jp")
    assert "“klingon” is not a language" in say(talk, bob, "language klingon")
    assert language_events(db) == []
    assert employee(db, org.alice).locale_choice is None and employee(db, org.bob).locale_choice is None


def test_the_approvers_cards_come_in_their_language(talk: Conversation, db: Database, org: Org,
                                                    clock: Clock) -> None:
    manager = Who("slack", "T1", "U-manager", "mgr@example.jp", "ja-JP")
    say(talk, manager, "language en")
    file_leave(talk, Who("slack", "T1", "U-alice", "alice@example.jp", "ja-JP"))
    with db.unit_of_work(write=False) as conn:
        row = next(m for m in outbox_for(conn, 1) if m.kind == "approval_requested")
        assert row.recipient_id == org.manager
        found = message_for(conn, talk.policy, "Asia/Tokyo", row)
    assert found is not None
    card, locale = found
    assert locale == "en" and "Approve" in [b.label for b in card.blocks if isinstance(b, Actions)
                                            for b in b.buttons]
    assert "Waiting for you: 1" in say(talk, manager, "inbox")


# ------------------------------------------------------------------------------------------------ home


def language_row(home_blocks: tuple[object, ...]) -> tuple[str, list[Button]]:
    line = next(b.text for b in home_blocks if isinstance(b, Context) and ("Language" in b.text or "表示言語" in b.text))
    row = [b for b in home_blocks if isinstance(b, Actions) and b.buttons[0].action == SET_LANGUAGE]
    assert len(row) == 1
    return line, list(row[0].buttons)


def test_the_home_shows_the_language_and_switches_it(talk: Conversation, db: Database, org: Org) -> None:
    alice = Who("slack", "T1", "U-alice", "alice@example.jp", "ja-JP")
    line, buttons = language_row(home_for(talk, alice).blocks)
    assert line == "表示言語: 日本語（Slack の言語設定）"
    assert [(b.label, b.value) for b in buttons] == [("English", "en")]
    valid_view(render_home(home_for(talk, alice)))

    answer = shown(talk.on_click(ClickEvent(alice, SET_LANGUAGE, buttons[0].value)))
    assert reply_text(answer).startswith("Your language is now English.")

    line, buttons = language_row(home_for(talk, alice).blocks)
    assert line == "Language: English (your choice)"
    assert [(b.label, b.value) for b in buttons] == [("日本語", "ja"), ("Automatic (Slack setting)", "auto")]
    assert "Waiting for you" in str(home_for(talk, alice).blocks)

    answer = shown(talk.on_click(ClickEvent(alice, SET_LANGUAGE, "auto")))
    assert "表示言語を自動にしました" in reply_text(answer)
    assert [e["to"] for e in language_events(db)] == ["en", None]


def test_a_forged_language_button_changes_nothing(talk: Conversation, db: Database, org: Org) -> None:
    alice = Who("slack", "T1", "U-alice", "alice@example.jp", "ja-JP")
    answer = shown(talk.on_click(ClickEvent(alice, SET_LANGUAGE, "de")))
    assert "選べる言語ではありません" in reply_text(answer)
    assert language_events(db) == []
