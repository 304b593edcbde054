"""App Home and the "New request" shortcut end to end: signed Events API and shortcut payloads POSTed to the real
server, Slack's Web API replaced by the stub, on SQLite and PostgreSQL. Every view is checked by slack_sdk."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from slack_sdk.models.views import View

from models import people
from models.db import Database
from tests.conftest import Clock, Org
from tests.e2e import test_slack_edge as edge
from tests.e2e.test_slack_edge import LEAVE, Slack, file, statuses
from tests.stubs.slack_api import TEAM

slack = edge.slack  # the same fixture as the edge's tests: the real server, the stub Web API

JSON_BODY = {"Content-Type": "application/json"}


def home_opened(user: str, n: int, tab: str = "home") -> str:
    """An Events API delivery of app_home_opened, as Slack sends it."""
    return json.dumps({
        "token": "legacy", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
        "event": {"type": "app_home_opened", "user": user, "channel": "D1", "tab": tab,
                  "event_ts": f"1780000000.{n:06d}"},
        "event_id": f"Ev{n:08d}", "event_time": 1780000000 + n, "event_context": f"ctx{n}",
        "authorizations": [{"enterprise_id": None, "team_id": TEAM, "user_id": "UBOT", "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
    })


def shortcut(user: str) -> str:
    payload = {"type": "shortcut", "token": "legacy", "action_ts": "1780000002.000300", "callback_id": "new_request",
               "trigger_id": "9.9.trigger", "team": {"id": TEAM, "domain": "acme"},
               "user": {"id": user, "username": user, "team_id": TEAM},
               "is_enterprise_install": False, "enterprise": None}
    return urlencode({"payload": json.dumps(payload)})


async def open_home(slack: Slack, user: str, n: int = 1) -> dict[str, Any]:
    """Open the Home tab as `user`; the view the bot published, validated."""
    assert await slack.post(home_opened(user, n), headers=JSON_BODY) == (200, "")
    published = slack.api.called("views.publish")[-1]
    assert published["user_id"] == user
    View(**published["view"]).validate_json()
    assert published["view"]["type"] == "home" and len(published["view"]["blocks"]) <= 100
    return dict(published["view"])


def buttons(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]


async def test_a_manager_sees_the_waiting_request_with_its_buttons_and_their_leave(slack: Slack) -> None:
    await file(slack, "U-alice", "休暇", LEAVE)
    view = await open_home(slack, "U-manager")
    text = json.dumps(view, ensure_ascii=False)
    assert "待っている申請" in text and "LV-2026-0001" in text and "高橋 愛" in text
    decisions = [b for b in buttons(view) if not b["action_id"].startswith("set_language")]  # not the language
    assert [b["text"]["text"] for b in decisions] == ["承認", "却下", "差し戻し"]
    assert "有給休暇" in text and "残日数" in text and "年5日の取得" in text


async def test_the_requester_sees_their_request_with_its_status(slack: Slack) -> None:
    await file(slack, "U-alice", "休暇", LEAVE)
    text = json.dumps(await open_home(slack, "U-alice"), ensure_ascii=False)
    assert "あなたの申請" in text and "LV-2026-0001" in text and "承認待ち" in text
    assert "対応待ちの申請はありません" in text


async def test_delegations_given_and_to_come_are_shown(slack: Slack, db: Database, org: Org, clock: Clock) -> None:
    with db.unit_of_work() as conn:
        people.insert_delegation(conn, from_id=org.manager, to_id=org.sales_head, source="manual",
                                 starts_at=clock() + timedelta(days=3), ends_at=clock() + timedelta(days=5))
    text = json.dumps(await open_home(slack, "U-manager"), ensure_ascii=False)
    assert "佐藤 花子 さんに代理を依頼" in text and "2026-06-05 10:00" in text  # in the manager's zone (JST)


async def test_approving_from_the_home_republishes_it(slack: Slack, db: Database) -> None:
    await file(slack, "U-alice", "休暇", LEAVE)
    view = await open_home(slack, "U-manager")
    approve = next(b for b in buttons(view) if b["action_id"].startswith("approve"))
    payload = json.loads(parse_qs(slack.click_body("U-manager", approve["action_id"], approve["value"]))["payload"][0])
    del payload["channel"], payload["response_url"]  # a click in App Home has neither
    payload["container"] = {"type": "view", "view_id": "VH1"}
    payload["view"] = {"id": "VH1", "type": "home", "blocks": view["blocks"], "team_id": TEAM}
    assert await slack.post(urlencode({"payload": json.dumps(payload, ensure_ascii=False)})) == (200, "")
    assert statuses(db) == ["approved"]
    after = json.dumps(slack.api.called("views.publish")[-1]["view"], ensure_ascii=False)
    assert "対応待ちの申請はありません" in after
    assert slack.api.called("chat.postMessage")[-1]["channel"] == "U-manager"  # "approved" told in a DM


async def test_an_unregistered_person_gets_the_not_registered_home(slack: Slack) -> None:
    text = json.dumps(await open_home(slack, "U-stranger"), ensure_ascii=False)
    assert "人事部" in text and "待っている申請" not in text


async def test_the_messages_tab_publishes_nothing(slack: Slack) -> None:
    assert await slack.post(home_opened("U-manager", 1, tab="messages"), headers=JSON_BODY) == (200, "")
    assert not slack.api.called("views.publish")


async def test_a_retried_event_does_not_publish_twice(slack: Slack) -> None:
    body = home_opened("U-manager", 7)
    assert await slack.post(body, headers=JSON_BODY) == (200, "")
    retry = {**JSON_BODY, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert await slack.post(body, headers=retry) == (200, "")
    assert len(slack.api.called("views.publish")) == 1


async def test_the_shortcut_opens_the_picker_and_its_choice_becomes_the_form(slack: Slack, db: Database) -> None:
    assert await slack.post(shortcut("U-alice")) == (200, "")
    opened = slack.api.called("views.open")[-1]
    assert opened["trigger_id"] == "9.9.trigger"
    picker = opened["view"]
    View(**picker).validate_json()
    assert picker["callback_id"] == "pick_type" and picker["title"]["text"] == "新規申請"
    status, body = await slack.post(slack.submission_body("U-alice", picker, {"type": "leave"}))
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "update"
    View(**answer["view"]).validate_json()
    form = {**answer["view"]}
    assert form["callback_id"] != "pick_type"
    assert await slack.post(slack.submission_body("U-alice", form, LEAVE)) == (200, "")
    assert statuses(db) == ["pending"]


async def test_the_picker_without_a_choice_asks_for_one(slack: Slack) -> None:
    assert await slack.post(shortcut("U-alice")) == (200, "")
    picker = slack.api.called("views.open")[-1]["view"]
    status, body = await slack.post(slack.submission_body("U-alice", picker, {}))
    assert status == 200 and json.loads(body)["response_action"] == "errors"


async def test_an_unregistered_person_using_the_shortcut_is_told_so(slack: Slack) -> None:
    assert await slack.post(shortcut("U-stranger")) == (200, "")
    assert not slack.api.called("views.open")
    assert "人事部" in slack.api.called("chat.postMessage")[-1]["text"]
