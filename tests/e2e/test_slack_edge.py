"""The Slack edge end to end on loopback: really signed requests POSTed to the real aiohttp server (make_app),
Slack's Web API replaced by a stub HTTP server, on SQLite and PostgreSQL. Every modal and message the bot sends
is checked by slack_sdk's models."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.server import make_app
from config.policy import Policy
from config.settings import Settings, get_settings
from models.base import metadata
from models.db import Database
from tests.conftest import Clock, Org
from tests.stubs.slack_api import TEAM, SlackApiStub
from tests.unit.test_blockkit import valid_message

SECRET = "test-signing-secret"
USERS = {"U-alice": "alice@example.jp", "U-manager": "mgr@example.jp", "U-bob": "bob@example.jp",
         "U-stranger": "stranger@example.jp"}
EXPENSE = {"purpose": "大阪出張", "items[0].date": "2026-06-01", "items[0].payee": "JR東海",
           "items[0].amount": "14,170", "items[0].tax_rate": "10", "items[0].category": "travel"}
LEAVE = {"unit": "full", "period.start": "2026-06-08", "period.end": "2026-06-08"}


class Slack:
    """What Slack does to the app: signed POSTs to /slack/events; what it saw from the app: `api`."""

    def __init__(self, base: str, api: SlackApiStub, session: aiohttp.ClientSession, team: str = TEAM) -> None:
        self.url = f"{base}/slack/events"
        self.team = team  # the workspace the requests come from
        self.api = api
        self.session = session
        self.seq = 0
        self.replies_before = 0  # response_url calls before the last post

    async def post(self, body: str, *, age: int = 0, secret: str = SECRET,
                   headers: dict[str, str] | None = None) -> tuple[int, str]:
        timestamp = str(int(time.time()) - age)
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        sent = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": timestamp,
                "X-Slack-Signature": signature or "", **(headers or {})}
        self.replies_before = len(self.api.called("response_url"))
        async with self.session.post(self.url, data=body.encode(), headers=sent) as response:
            return response.status, await response.text()

    def command_body(self, user: str, text: str) -> str:
        self.seq += 1
        return urlencode({"token": "legacy", "team_id": self.team, "team_domain": "acme", "channel_id": "C1",
                          "channel_name": "general", "user_id": user, "user_name": user, "command": "/madoguchi",
                          "text": text, "api_app_id": "A1", "is_enterprise_install": "false",
                          "response_url": self.api.response_url(f"cmd{self.seq}"),
                          "trigger_id": f"{self.seq}.1.trigger"})

    async def command(self, user: str, text: str) -> tuple[int, str]:
        return await self.post(self.command_body(user, text))

    def click_body(self, user: str, action_id: str, value: str) -> str:
        self.seq += 1
        payload = {
            "type": "block_actions", "user": {"id": user, "username": user, "name": user, "team_id": self.team},
            "api_app_id": "A1", "token": "legacy", "trigger_id": f"{self.seq}.2.trigger",
            "container": {"type": "message", "message_ts": "1780000000.000100", "channel_id": "C1",
                          "is_ephemeral": True},
            "team": {"id": self.team, "domain": "acme"}, "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": "C1", "name": "general"}, "state": {"values": {}},
            "response_url": self.api.response_url(f"click{self.seq}"),
            "actions": [{"action_id": action_id, "block_id": "b1", "type": "button", "value": value,
                         "text": {"type": "plain_text", "text": "承認"}, "action_ts": "1780000001.000200"}],
        }
        return urlencode({"payload": json.dumps(payload, ensure_ascii=False)})

    def submission_body(self, user: str, view: dict[str, Any], answers: dict[str, Any]) -> str:
        self.seq += 1
        submitted = {**view, "id": "V1", "team_id": self.team, "app_id": "A1", "bot_id": "B1", "hash": "h",
                     "state": {"values": state_values(view, answers)}}
        payload = {"type": "view_submission", "team": {"id": self.team, "domain": "acme"},
                   "user": {"id": user, "username": user, "name": user, "team_id": self.team},
                   "api_app_id": "A1", "token": "legacy", "trigger_id": f"{self.seq}.3.trigger",
                   "view": submitted, "response_urls": [], "is_enterprise_install": False, "enterprise": None}
        return urlencode({"payload": json.dumps(payload, ensure_ascii=False)})

    async def open_form(self, user: str, text: str) -> dict[str, Any]:
        status, _ = await self.command(user, text)
        assert status == 200
        view = self.api.called("views.open")[-1]["view"]
        View(**view).validate_json()
        return dict(view)

    async def reply(self) -> dict[str, Any]:
        """The ephemeral answer (via response_url) to the last post: it is sent after the HTTP answer, so wait
        (bounded) for the stub to receive it."""
        deadline = time.monotonic() + 5.0
        while len(replies := self.api.called("response_url")) <= self.replies_before:
            assert time.monotonic() < deadline, "no reply through response_url"
            await asyncio.sleep(0.01)
        return replies[-1]

    async def last_reply(self) -> str:
        """The text of the ephemeral answer to the last post (via response_url), checked by slack_sdk."""
        message = await self.reply()
        assert message["response_type"] == "ephemeral" and message["replace_original"] is False
        valid_message({"text": message["text"], "blocks": message["blocks"]})
        return json.dumps(message, ensure_ascii=False)


def state_values(view: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """What Slack puts in view.state.values for these answers (every input block, empty or not)."""
    values: dict[str, Any] = {}
    for block in (b for b in view["blocks"] if b["type"] == "input"):
        element, answer = block["element"], answers.get(block["block_id"])
        kind = element["type"]
        if kind == "datepicker":
            state: dict[str, Any] = {"type": kind, "selected_date": answer}
        elif kind == "static_select":
            option = {"text": {"type": "plain_text", "text": str(answer)}, "value": answer} if answer else None
            state = {"type": kind, "selected_option": option}
        else:
            state = {"type": kind, "value": answer}
        values[block["block_id"]] = {element["action_id"]: state}
    return values


@asynccontextmanager
async def slack_server(db: Database, policy: Policy,
                       clock: Clock) -> AsyncIterator[tuple[web.Application, TestServer, Slack]]:
    """The real server on 127.0.0.1 with the stub Web API as its Slack, and Slack's side of it. Handed its
    database, the server delivers nothing by itself: a test runs the delivery rounds."""
    api = SlackApiStub(users=dict(USERS))
    await api.start()
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                        "SLACK_API_URL": api.api_url})
    app = make_app(settings, database=db, policy=policy, clock=clock)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield app, server, Slack(str(server.make_url("")).rstrip("/"), api, session)
    await server.close()
    await api.close()


@pytest.fixture
async def slack(db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[Slack]:
    async with slack_server(db, policy, clock) as (_, _, slack):
        yield slack


def counts(db: Database) -> dict[str, int]:
    with db.unit_of_work(write=False) as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables}


def statuses(db: Database) -> list[str]:
    with db.unit_of_work(write=False) as conn:
        return list(conn.execute(sa.text("SELECT status FROM requests ORDER BY id")).scalars())


async def file(slack: Slack, user: str, text: str, answers: dict[str, Any]) -> tuple[int, str]:
    view = await slack.open_form(user, text)
    return await slack.post(slack.submission_body(user, view, answers))


async def approve_button(slack: Slack, user: str) -> dict[str, Any]:
    """The Approve button of the first card in the person's inbox, as Slack showed it."""
    assert (await slack.command(user, "承認"))[0] == 200
    blocks = (await slack.reply())["blocks"]
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    return next(b for b in buttons if b["action_id"].startswith("approve"))


# ------------------------------------------------------------------------------------------------ tests


async def test_the_command_opens_a_valid_modal_and_the_bot_was_authorized_once(slack: Slack) -> None:
    started = time.perf_counter()
    status, body = await slack.command("U-alice", "経費")
    assert (status, body) == (200, "")
    assert time.perf_counter() - started < 2.5  # well inside Slack's 3 s, even on a slow CI machine
    opened = slack.api.called("views.open")
    assert len(opened) == 1 and opened[0]["trigger_id"] == "1.1.trigger"
    View(**opened[0]["view"]).validate_json()
    assert opened[0]["view"]["title"]["text"] == "経費精算"
    info = slack.api.called("users.info")
    assert len(info) == 1 and info[0]["user"] == "U-alice" and info[0]["include_locale"] == "1"
    assert len(slack.api.called("auth.test")) == 1  # warmed at start, not per request


async def test_a_good_submission_closes_the_modal_stores_the_request_and_dms(slack: Slack, db: Database) -> None:
    assert await file(slack, "U-alice", "経費", EXPENSE) == (200, "")
    assert statuses(db) == ["pending"]
    dm = slack.api.called("chat.postMessage")[-1]
    assert dm["channel"] == "U-alice" and "EXP-2026-0001" in dm["text"]
    valid_message({"text": dm["text"], "blocks": dm["blocks"]})


async def test_a_bad_amount_keeps_the_modal_open_with_the_error_under_it(slack: Slack, db: Database) -> None:
    view = await slack.open_form("U-alice", "経費")
    before = counts(db)  # opening the form remembered alice's Slack identity; nothing else is stored
    status, body = await slack.post(slack.submission_body("U-alice", view, {**EXPENSE, "items[0].amount": "たくさん"}))
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "errors"
    assert list(answer["errors"]) == ["items[0].amount"]
    assert counts(db) == before and not slack.api.called("chat.postMessage")


async def test_approve_then_the_same_click_again_says_already_approved(slack: Slack, db: Database) -> None:
    await file(slack, "U-alice", "休暇", LEAVE)
    button = await approve_button(slack, "U-manager")
    assert await slack.post(slack.click_body("U-manager", button["action_id"], button["value"])) == (200, "")
    assert "承認しました" in await slack.last_reply()
    assert statuses(db) == ["approved"]
    before = counts(db)
    assert (await slack.post(slack.click_body("U-manager", button["action_id"], button["value"])))[0] == 200
    again = await slack.last_reply()
    assert "鈴木 一郎" in again and "承認済み" in again
    assert counts(db) == before and statuses(db) == ["approved"]


async def test_a_click_that_fails_on_our_side_is_told_so_and_changes_nothing(slack: Slack, db: Database) -> None:
    """The database refuses the decision (here its table is gone for a moment): Slack gets a 500 (Bolt's answer to
    a failed listener: the button shows a warning), and the person is told in both languages that it failed and
    may try again; the request is as it was, and trying again works."""
    await file(slack, "U-alice", "休暇", LEAVE)
    button = await approve_button(slack, "U-manager")
    before = counts(db)
    with db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE assignments RENAME TO assignments_away"))
    try:
        assert (await slack.post(slack.click_body("U-manager", button["action_id"], button["value"])))[0] == 500
        told = await slack.reply()
    finally:
        with db.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE assignments_away RENAME TO assignments"))
    assert told["response_type"] == "ephemeral" and told["replace_original"] is False
    assert "もう一度お試しください" in told["text"] and "Please try again" in told["text"]
    assert counts(db) == before and statuses(db) == ["pending"]
    assert (await slack.post(slack.click_body("U-manager", button["action_id"], button["value"])))[0] == 200
    assert "承認しました" in await slack.last_reply()
    assert statuses(db) == ["approved"]


async def test_forged_and_stale_requests_get_401_and_change_nothing(slack: Slack, db: Database) -> None:
    await file(slack, "U-alice", "休暇", LEAVE)
    button = await approve_button(slack, "U-manager")
    before, calls = counts(db), len(slack.api.calls)
    click = slack.click_body("U-manager", button["action_id"], button["value"])
    assert (await slack.post(click, secret="not-the-secret"))[0] == 401
    assert (await slack.post(click, age=6 * 60))[0] == 401
    async with slack.session.post(slack.url, data=click) as unsigned:
        assert unsigned.status == 401
    assert counts(db) == before and statuses(db) == ["pending"] and len(slack.api.calls) == calls


async def test_an_unregistered_slack_user_is_told_so_and_nothing_is_stored(slack: Slack, db: Database) -> None:
    before = counts(db)
    assert await slack.command("U-stranger", "経費") == (200, "")
    assert "人事部" in await slack.last_reply()
    assert not slack.api.called("views.open")
    assert counts(db) == before


async def test_a_retried_request_does_not_apply_twice(slack: Slack, db: Database) -> None:
    view = await slack.open_form("U-alice", "経費")
    body = slack.submission_body("U-alice", view, EXPENSE)
    assert await slack.post(body) == (200, "")
    before, calls = counts(db), len(slack.api.calls)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert await slack.post(body, headers=retry) == (200, "")
    assert counts(db) == before and statuses(db) == ["pending"] and len(slack.api.calls) == calls


async def test_healthz(slack: Slack) -> None:
    async with slack.session.get(slack.url.replace("/slack/events", "/healthz")) as response:
        assert response.status == 200 and await response.json() == {"status": "ok"}


def test_serve_refuses_to_start_with_a_broken_workflows_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "workflows.yaml"
    broken.write_text("types: {leave: {prefix: 1}}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    monkeypatch.setenv("MADOGUCHI_WORKFLOWS", str(broken))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve", "--port", "0"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "workflows.yaml has" in result.stderr
