"""Messages delivery gave up on (a permanent error) are put in front of an admin: their App Home lists them with
the error, others see nothing of it; `madoguchi outbox dead` lists them and `madoguchi outbox retry ID` makes one
due again. On SQLite and PostgreSQL (the CLI on its own SQLite file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.slack.blockkit import render_home
from config.policy import Policy
from config.settings import get_settings
from handlers.conversation import Conversation
from handlers.events import Who
from handlers.home import home_for
from models import messaging
from models.db import Database
from models.schema import upgrade
from tests.conftest import Clock, Org, make_org
from tests.integration.test_engine import expense
from tests.unit.test_blockkit import valid_view
from workflow import delivery
from workflow.engine import Engine


def dead_row(db: Database, org: Org, policy: Policy, clock: Clock) -> int:
    out = Engine(db, policy, clock=clock).submit(org.alice, "expense", expense(3000))
    assert out.ok and out.request is not None
    with db.unit_of_work() as conn:
        row = next(r for r in messaging.outbox_for(conn, out.request.id) if r.kind == "approval_requested")
        delivery.mark_dead(conn, row.id, "channel_not_found")
    return row.id


def home_text(db: Database, policy: Policy, clock: Clock, who: Who) -> str:
    home = home_for(Conversation(Engine(db, policy, clock=clock)), who)
    return json.dumps(valid_view(render_home(home, "ja")), ensure_ascii=False)


def test_an_admin_sees_what_could_not_be_delivered(db: Database, org: Org, policy: Policy, clock: Clock) -> None:
    admin = Who("slack", "T1", "U-admin", "admin@example.jp")
    alice = Who("slack", "T1", "U-alice", "alice@example.jp")
    assert "配信できなかったメッセージ" not in home_text(db, policy, clock, admin)  # nothing to say: no section
    row = dead_row(db, org, policy, clock)
    shown = home_text(db, policy, clock, admin)
    assert "配信できなかったメッセージ" in shown and f"#{row} " in shown and "channel_not_found" in shown
    assert "配信できなかったメッセージ" not in home_text(db, policy, clock, alice)


def test_the_command_line_lists_and_retries_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: Policy,
                                                 clock: Clock) -> None:
    url = f"sqlite:///{tmp_path / 'madoguchi.db'}"
    db = Database(url)
    try:
        upgrade(db.engine)
        row = dead_row(db, make_org(db), policy, clock)
    finally:
        db.dispose()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(app, ["outbox", "dead"])
        assert listed.exit_code == 0 and "channel_not_found" in listed.stdout and "1 undelivered" in listed.stdout
        again = runner.invoke(app, ["outbox", "retry", str(row)])
        assert again.exit_code == 0 and f"message {row} will be sent again" in again.stdout
        twice = runner.invoke(app, ["outbox", "retry", str(row)])
        assert twice.exit_code == 1 and "is not an undelivered one" in twice.stderr
        assert "every message was delivered" in runner.invoke(app, ["outbox", "dead"]).stdout
    finally:
        get_settings.cache_clear()
    db = Database(url)
    try:
        with db.unit_of_work(write=False) as conn:
            assert [r.state for r in messaging.outbox_for(conn, 1) if r.id == row] == ["pending"]
    finally:
        db.dispose()
