"""Each person's language through the real Slack edge: users.info's locale (the stub reports en-US for alice and
the manager, ja-JP for everyone else), `/madoguchi language`, and the App Home's switch, on SQLite and
PostgreSQL. Really signed requests in, the stub Web API out; every message checked by slack_sdk."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import SlackDelivery
from bot.server import make_app
from config.policy import Policy
from config.settings import Settings
from models import people
from models.db import Database
from tests.conftest import Clock, Org
from tests.e2e.test_slack_edge import LEAVE, SECRET, USERS, Slack, file
from tests.e2e.test_slack_home import buttons, open_home
from tests.stubs.slack_api import TEAM, SlackApiStub
from tests.unit.test_blockkit import valid_message

LOCALES = {"U-alice": "en-US", "U-manager": "en-US"}


@pytest.fixture
async def slack(db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[Slack]:
    api = SlackApiStub(users=dict(USERS), locales=dict(LOCALES))
    await api.start()
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                        "SLACK_API_URL": api.api_url})
    server = TestServer(make_app(settings, database=db, policy=policy, clock=clock), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Slack(str(server.make_url("")).rstrip("/"), api, session)
    await server.close()
    await api.close()


async def said(slack: Slack, user: str, text: str) -> str:
    assert await slack.command(user, text) == (200, "")
    return await slack.last_reply()


async def delivered_to(slack: Slack, db: Database, policy: Policy, clock: Clock, user: str) -> dict[str, Any]:
    """One delivery round (the server handed a database does not deliver by itself); the DM it sent `user`."""
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api.api_url)
    assert await SlackDelivery(db, policy, client, pace=0, clock=clock).run_once(clock()) >= 1
    call = next(c for c in slack.api.called("chat.postMessage") if c["channel"] == f"D{user}")
    valid_message({"text": call["text"], "blocks": call["blocks"]})
    return dict(call)


async def test_slacks_locale_decides_until_the_person_chooses(slack: Slack, db: Database, org: Org) -> None:
    # alice is Japanese in the org file, but her Slack is in English
    assert "How to use madoguchi" in await said(slack, "U-alice", "help")
    with db.unit_of_work(write=False) as conn:
        alice = people.get_employee(conn, org.alice)
    assert alice is not None and (alice.org_locale, alice.platform_locale, alice.locale) == ("ja", "en", "en")
    assert "Language: English (from your Slack language setting)" in await said(slack, "U-alice", "language")

    assert "表示言語を日本語にしました。" in await said(slack, "U-alice", "language ja")
    assert "madoguchi の使い方" in await said(slack, "U-alice", "help")
    assert "まだ申請はありません" in await said(slack, "U-alice", "status")

    back = await said(slack, "U-alice", "言語 自動")
    assert "Your language is automatic again" in back
    assert "How to use madoguchi" in await said(slack, "U-alice", "help")


async def test_an_unknown_language_changes_nothing(slack: Slack, db: Database, org: Org) -> None:
    answer = await said(slack, "U-bob", "言語 klingon")  # bob: English in the org file, Slack in Japanese
    assert "「klingon」は選べる言語ではありません" in answer and "/madoguchi 言語 英語" in answer
    with db.unit_of_work(write=False) as conn:
        bob = people.get_employee(conn, org.bob)
    assert bob is not None and bob.locale_choice is None and bob.locale == "ja"


async def test_the_approvers_card_is_in_their_slack_language(slack: Slack, db: Database, policy: Policy,
                                                              clock: Clock) -> None:
    await said(slack, "U-manager", "status")  # the manager has been seen with Slack in English
    assert await file(slack, "U-bob", "休暇", LEAVE) == (200, "")
    card = await delivered_to(slack, db, policy, clock, "U-manager")
    assert "LV-2026-0001" in card["text"]
    labels = [e["text"]["text"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels[:3] == ["Approve", "Reject", "Send back"]


async def test_the_homes_switch_answers_in_the_new_language_and_republishes(slack: Slack, db: Database,
                                                                            org: Org) -> None:
    view = await open_home(slack, "U-alice")
    text = json.dumps(view, ensure_ascii=False)
    assert "Language: English (from your Slack language setting)" in text
    switch = next(b for b in buttons(view) if b["action_id"].startswith("set_language"))
    assert (switch["text"]["text"], switch["value"]) == ("日本語", "ja")

    payload = json.loads(parse_qs(slack.click_body("U-alice", switch["action_id"], switch["value"]))["payload"][0])
    del payload["channel"], payload["response_url"]  # a click in App Home has neither
    payload["container"] = {"type": "view", "view_id": "VH1"}
    payload["view"] = {"id": "VH1", "type": "home", "blocks": view["blocks"], "team_id": TEAM}
    published = len(slack.api.called("views.publish"))
    assert await slack.post(urlencode({"payload": json.dumps(payload, ensure_ascii=False)})) == (200, "")

    told = slack.api.called("chat.postMessage")[-1]
    assert told["channel"] == "U-alice" and told["text"] == "表示言語を日本語にしました。"
    assert len(slack.api.called("views.publish")) == published + 1
    after = json.dumps(slack.api.called("views.publish")[-1]["view"], ensure_ascii=False)
    assert "表示言語: 日本語（あなたが選んだ言語）" in after and "待っている申請" in after
    with db.unit_of_work(write=False) as conn:
        alice = people.get_employee(conn, org.alice)
    assert alice is not None and alice.locale_choice == "ja"
