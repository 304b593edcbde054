"""The log set-up's guards on their own: every secret of the settings blanked out of a line (also in its JSON and
URL spellings), library records below WARNING dropped by logger name and by the file they come from, and a bad
format or level refused by the settings."""

from __future__ import annotations

import io
import json
import logging

import pytest
import slack_bolt
from pydantic import ValidationError

from bot.logging_setup import REDACTED, Quiet, Redacting, configure, formatter, secrets_of
from config.settings import Settings

PASSWORD = 'pa"ss@wörd'
SETTINGS = Settings.model_validate({
    "SLACK_BOT_TOKEN": "xoxb-unit-123", "SLACK_SIGNING_SECRET": "unit-signing", "MICROSOFT_APP_PASSWORD": "ms-pw-42",
    "DATABASE_URL": "postgresql+psycopg://madoguchi:pa%22ss%40w%C3%B6rd@db.internal:5432/madoguchi",
    "MADOGUCHI_LOG_FORMAT": "json"})


def record(message: str, *args: object, name: str = "bot.delivery", level: int = logging.INFO,
           path: str = "/srv/madoguchi/bot/delivery.py") -> logging.LogRecord:
    return logging.LogRecord(name, level, path, 1, message, args, None)


def test_every_secret_of_the_settings_is_blanked_in_each_spelling() -> None:
    found = secrets_of(SETTINGS)
    assert {"xoxb-unit-123", "unit-signing", "ms-pw-42", PASSWORD, "pa%22ss%40w%C3%B6rd"} <= set(found)
    line = formatter(SETTINGS).format(record("token %s url %s", "xoxb-unit-123",
                                             "postgresql://madoguchi:pa%22ss%40w%C3%B6rd@db.internal/x"))
    parsed = json.loads(line)  # still one JSON object
    assert parsed["message"] == f"token {REDACTED} url postgresql://madoguchi:{REDACTED}@db.internal/x"
    escaped = formatter(SETTINGS).format(record("raw %s", PASSWORD))  # in JSON: pa\"ss@w\u00f6rd or pa\"ss@wörd
    assert PASSWORD not in json.loads(escaped)["message"] and REDACTED in json.loads(escaped)["message"]


def test_short_values_are_not_secrets_worth_garbling_a_log_for() -> None:
    short = Settings.model_validate({"SLACK_SIGNING_SECRET": "abc", "DATABASE_URL": "sqlite:///x.db"})
    assert secrets_of(short) == []
    assert Redacting(logging.Formatter("%(message)s"), []).format(record("abc")) == "abc"


def test_library_records_below_warning_are_dropped_by_name_and_by_source_file() -> None:
    quiet = Quiet(("slack_bolt", "sqlalchemy"))
    bolt_file = slack_bolt.__file__ or ""
    assert not quiet.filter(record("body", name="slack_bolt.AsyncApp"))
    assert not quiet.filter(record("body", name="app.py:AsyncApp", path=bolt_file))  # Bolt's own naming
    assert not quiet.filter(record("params", name="sqlalchemy.engine.Engine", level=logging.INFO))
    assert quiet.filter(record("refused", name="slack_bolt.AsyncApp", level=logging.WARNING))
    assert quiet.filter(record("outbox row 1: sent"))
    assert quiet.filter(record("slack_bolty is another package", name="slack_bolty"))


def test_configure_replaces_its_own_handler_and_writes_json_lines() -> None:
    root = logging.getLogger()
    level = root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        configure(SETTINGS, stream=first)
        configure(SETTINGS, stream=second)
        logging.getLogger("bot.test").warning("hello %s", "world")
        assert first.getvalue() == ""
        assert json.loads(second.getvalue())["message"] == "hello world"
        assert len([h for h in root.handlers if getattr(h, "madoguchi", False)]) == 1
    finally:
        for handler in [h for h in root.handlers if getattr(h, "madoguchi", False)]:
            root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(("name", "value"), [("MADOGUCHI_LOG_FORMAT", "xml"), ("MADOGUCHI_LOG_LEVEL", "loud"),
                                             ("MADOGUCHI_SLACK_RATE", "0")])
def test_bad_operations_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings.model_validate({name: value})
