"""The process's logging, set up once by `madoguchi serve` / `demo`: one line per record on stderr, as text or (with
MADOGUCHI_LOG_FORMAT=json) one JSON object a line, each with the request id of the work it belongs to.

What must never reach a log: tokens, signing secrets, passwords (the database URL's too) and message bodies.
- Our own log lines name rows, ids and error codes, never what a message says.
- Libraries that log request bodies or SQL parameters below WARNING (slack_sdk logs every Web API call's body,
  slack_bolt a refused request's body at INFO, SQLAlchemy its statements' parameters, botbuilder/msrest/msal their
  HTTP traffic) are held at WARNING whatever MADOGUCHI_LOG_LEVEL says: by logger name, and by the file a record
  comes from (Bolt gives its loggers names of their own, e.g. after the app, and copies the root's level onto
  them). aiohttp's access log is replaced by our own line per request (bot/observability.py), which names the
  route, never the query or body.
- As a last guard, every secret the settings hold is replaced by "[redacted]" in each formatted line.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from pythonjsonlogger.json import JsonFormatter

from config.settings import Settings
from models.messaging import TRACE

# loggers that write bodies, SQL parameters or credentials-bearing traffic at DEBUG/INFO (see the docstring)
QUIET = ("slack_sdk", "slack_bolt", "botbuilder", "botframework", "msrest", "msal", "urllib3", "sqlalchemy",
         "alembic", "apscheduler", "aiohttp.access", "aiohttp.client")
REDACTED = "[redacted]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestId(logging.Filter):
    """Gives every record the request id of the work under way (`models.messaging.TRACE`): the HTTP request's,
    the tick's, or the outbox row's being delivered (which carries the id of the request that caused it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = TRACE.get()
        return True


class Quiet(logging.Filter):
    """Drops the records below WARNING of the libraries in QUIET: by logger name or by the file they come from."""

    def __init__(self, names: Iterable[str] = QUIET) -> None:
        super().__init__()
        self.names = tuple(names)
        self.dirs = tuple(d + os.sep for d in _package_dirs(self.names))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        name = record.name
        if any(name == n or name.startswith(n + ".") for n in self.names):
            return False
        return not record.pathname.startswith(self.dirs)


def _package_dirs(names: Iterable[str]) -> list[str]:
    found = []
    for name in {n.split(".")[0] for n in names}:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        found += [os.path.realpath(d) for d in (spec.submodule_search_locations or [])] if spec else []
    return found


class Redacting(logging.Formatter):
    """Formats with `inner`, then blanks every secret out of the line (also in its JSON-escaped spelling)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        spellings = {s for secret in secrets
                     for s in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1])}
        self.secrets = sorted(spellings, key=len, reverse=True)  # longest first: no half-replaced secret

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


def secrets_of(settings: Settings) -> list[str]:
    """Every credential the settings hold (short values are skipped: replacing them would garble the logs)."""
    values = [settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token,
              settings.slack_client_secret, settings.microsoft_app_password]
    try:
        password = sa.make_url(settings.database_url).password
        if password:  # as written in the URL (percent-encoded) and as sent to the server
            values += [str(password), quote_plus(str(password)), quote(str(password), safe="")]
    except sa.exc.ArgumentError:
        pass  # not a URL: the database layer will say so; nothing to hide in it
    return sorted({v for v in values if v and len(v) >= 4})


def formatter(settings: Settings) -> logging.Formatter:
    if settings.log_format == "json":
        inner: logging.Formatter = JsonFormatter(
            "{levelname}{name}{message}", style="{", timestamp="time", json_ensure_ascii=False,
            rename_fields={"levelname": "level", "name": "logger"})
    else:
        inner = logging.Formatter(TEXT_FORMAT)
    return Redacting(inner, secrets_of(settings))


def configure(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Route every log record of the process to `stream` (stderr) in the configured format and level; returns
    the handler (tests add their own the same way). Replaces handlers a previous call installed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings))
    handler.addFilter(Quiet())
    handler.addFilter(RequestId())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "madoguchi", False)]:
        root.removeHandler(old)
    handler.madoguchi = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    quiet(settings.log_level)
    return handler


def quiet(level: str) -> None:
    """Hold the chatty libraries at WARNING (or above, when the process's level is higher)."""
    floor = max(logging.WARNING, logging.getLevelName(level))
    for name in QUIET:
        logging.getLogger(name).setLevel(floor)
