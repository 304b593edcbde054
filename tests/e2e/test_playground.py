"""The playground end to end on loopback: the real server (make_app) with the Slack emulator mounted, the demo
company seeded, and people acting through the page's JSON API, which reaches the bot as signed Slack requests.
Also the emulator's Slack-like strictness, the page's answers to bad input, and `madoguchi demo` itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer, unused_port

from bot.delivery import SlackDelivery
from bot.playground import demo
from bot.playground.app import Playground, api_url, make_playground, mount
from bot.server import DELIVERY, REPLIES, make_app
from bot.slack.app import Background
from config.policy import Policy
from config.settings import Settings
from models.db import Database
from tests.conftest import Clock
from tests.e2e.test_slack_edge import state_values
from tests.unit.test_blockkit import valid_message, valid_view

EMPLOYEE, MANAGER, IT_MEMBER = "UE0003", "UE0002", "UE0009"  # 鈴木 美咲, her manager 佐藤 健二, 小林 大輔 (IT)
IT_OTHER, IT_REQUESTER = "UE0027", "UE0015"  # 岡田 凛, also IT; 林 蓮, whose IT request the demo files


class Page:
    """What the page's script does: the JSON API, as one person at a time."""

    def __init__(self, base: str, session: aiohttp.ClientSession, playground: Playground,
                 delivery: SlackDelivery, replies: Background) -> None:
        self.base, self.session, self.playground, self.delivery = base, session, playground, delivery
        self.replies = replies

    async def post(self, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, str) else json.dumps(body)
        async with self.session.post(f"{self.base}/playground/api/{name}", data=data) as response:
            return response.status, await response.json()

    async def act(self, name: str, **body: Any) -> None:
        status, answer = await self.post(name, body)
        assert (status, answer) == (200, {"ok": True})
        await self.replies.drain()  # the replies the answer left under way (a click's ephemeral) have been sent
        await self.deliver()

    async def state(self, user: str) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/playground/api/state", params={"user": user}) as response:
            assert response.status == 200
            return await response.json()

    async def deliver(self) -> None:
        while await self.delivery.run_once():
            pass

    async def dm(self, user: str) -> list[dict[str, Any]]:
        state = await self.state(user)
        return next(c for c in state["conversations"] if c["id"] == f"D{user}")["messages"]

    async def modal(self, user: str) -> dict[str, Any]:
        modals = (await self.state(user))["modals"]
        assert modals, "no modal open"
        return modals[-1]


@pytest.fixture
async def page(db: Database, policy: Policy, clock: Clock) -> AsyncIterator[Page]:
    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    playground = make_playground(base)
    demo.seed(db, policy, playground.workspace, now=clock())
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": playground.bot_token,
                                        "SLACK_SIGNING_SECRET": playground.signing_secret,
                                        "SLACK_API_URL": api_url(base)})
    app = make_app(settings, database=db, policy=policy, clock=clock, warm=False)
    mount(app, playground)
    app[DELIVERY].pace = 0
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Page(base, session, playground, app[DELIVERY], app[REPLIES])
    await server.close()


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by their label, each with its block_id."""
    found = {}
    for block in message.get("blocks") or []:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            found[element["text"]["text"]] = {**element, "block_id": block["block_id"]}
    return found


def everything_sent_is_valid_block_kit(playground: Playground) -> None:
    for method in ("chat.postMessage", "chat.update"):
        for body in playground.api.called(method):
            valid_message({"text": body["text"], "blocks": body["blocks"]})
    for method in ("views.open", "views.update", "views.push", "views.publish"):
        for body in playground.api.called(method):
            valid_view(body["view"])


async def test_the_demo_company_is_seeded_with_work_under_way(page: Page) -> None:
    async with page.session.get(f"{page.base}/playground/api/people") as response:
        people = (await response.json())["people"]
    assert len(people) == 30
    departments = {p["department"] for p in people}
    assert {"総務部", "人事部", "経理部", "法務部", "情報システム部", "営業部"} <= departments
    await page.deliver()
    # a leave request filed by 高橋 waits on her manager 佐藤, who has its card in his DM
    card = (await page.dm(MANAGER))[-1]
    assert "高橋 由紀" in card["text"] and {"承認", "却下", "差し戻し"} <= set(buttons(card))
    everything_sent_is_valid_block_kit(page.playground)


async def test_file_leave_then_the_manager_approves_and_every_copy_shows_it(page: Page) -> None:
    await page.act("message", user=EMPLOYEE, channel=f"D{EMPLOYEE}", text="/madoguchi leave")
    modal = await page.modal(EMPLOYEE)
    assert modal["view"]["title"]["text"] == "休暇申請"

    # the end before the start: the error shows under the field, the modal stays, nothing is filed
    bad = {"unit": "full", "period.start": "2026-06-10", "period.end": "2026-06-09"}
    posted = len(page.playground.api.called("chat.postMessage"))
    await page.act("submit", user=EMPLOYEE, view_id=modal["id"], values=state_values(modal["view"], bad))
    kept = await page.modal(EMPLOYEE)
    assert kept["id"] == modal["id"] and "period.start" in kept["errors"]
    assert len(page.playground.api.called("chat.postMessage")) == posted  # nobody was told of anything
    before = len(await page.dm(MANAGER))

    good = {"unit": "full", "period.start": "2026-06-10", "period.end": "2026-06-10", "reason": "通院"}
    await page.act("submit", user=EMPLOYEE, view_id=modal["id"], values=state_values(modal["view"], good))
    assert (await page.state(EMPLOYEE))["modals"] == []
    status = [m for m in await page.dm(EMPLOYEE) if "承認待ち" in m["text"]]
    assert len(status) == 1 and not status[0]["ephemeral"]

    managers = await page.dm(MANAGER)
    assert len(managers) == before + 1
    card = managers[-1]
    assert "鈴木 美咲" in card["text"]
    approve = buttons(card)["承認"]
    await page.act("action", user=MANAGER, source={"kind": "message", "channel": f"D{MANAGER}", "ts": card["ts"]},
                   block_id=approve["block_id"], action=approve)

    decided = next(m for m in await page.dm(MANAGER) if m["ts"] == card["ts"])
    assert decided["edited"] and "承認済み" in decided["text"] and buttons(decided) == {}
    mine = next(m for m in await page.dm(EMPLOYEE) if m["ts"] == status[0]["ts"])
    assert mine["edited"] and "承認済み" in mine["text"]

    # the same click again (a stale copy): answered to the manager only, nothing changes
    await page.act("action", user=MANAGER, source={"kind": "message", "channel": f"D{MANAGER}", "ts": card["ts"]},
                   block_id=approve["block_id"], action=approve)
    reply = (await page.dm(MANAGER))[-1]
    assert reply["ephemeral"] and "佐藤 健二" in reply["text"]
    assert not any(m["ephemeral"] for m in await page.dm(EMPLOYEE))
    everything_sent_is_valid_block_kit(page.playground)


async def channel_card(page: Page, user: str, number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The queue's channel as `user` sees it, and the card of request `number` there."""
    state = await page.state(user)
    channel = next(c for c in state["conversations"] if c["name"] == "#it-help")
    return channel, next(m for m in channel["messages"] if number in m["text"] and not m["ephemeral"])


def told(state: dict[str, Any], channel_name: str) -> list[str]:
    """The ephemeral answers `state`'s person got in a channel."""
    channel = next(c for c in state["conversations"] if c["name"] == channel_name)
    return [m["text"] for m in channel["messages"] if m["ephemeral"]]


async def test_an_it_request_is_claimed_and_resolved_from_the_shared_channel_card(page: Page) -> None:
    await page.deliver()
    # the seeded IT request (林 蓮's flickering screen) is ONE card in #it-help, not a DM to each IT member
    channel, card = await channel_card(page, IT_OTHER, "IT-2026-0001")
    assert channel["kind"] == "channel" and set(buttons(card)) == {"担当する"}
    assert not any("IT-2026-0001" in m["text"] for m in await page.dm(IT_MEMBER) + await page.dm(IT_OTHER))
    claim = buttons(card)["担当する"]
    source = {"kind": "message", "channel": channel["id"], "ts": card["ts"]}

    # someone outside the queue sees the channel but cannot take the request: told so, nothing changes
    await page.act("action", user=EMPLOYEE, source=source, block_id=claim["block_id"], action=claim)
    assert told(await page.state(EMPLOYEE), "#it-help") == ["IT-2026-0001 を処理する権限がありません"]
    _, unchanged = await channel_card(page, IT_OTHER, "IT-2026-0001")
    assert set(buttons(unchanged)) == {"担当する"} and not unchanged["edited"]

    # 岡田 claims it from the shared card (posted for the first IT member): the card says who has it
    await page.act("action", user=IT_OTHER, source=source, block_id=claim["block_id"], action=claim)
    _, claimed = await channel_card(page, IT_OTHER, "IT-2026-0001")
    assert claimed["edited"] and set(buttons(claimed)) == {"対応完了"}
    assert "岡田 凛" in json.dumps(claimed["blocks"], ensure_ascii=False)
    resolve = buttons(claimed)["対応完了"]

    # another IT member cannot resolve what 岡田 took
    await page.act("action", user=IT_MEMBER, source=source, block_id=resolve["block_id"], action=resolve)
    assert told(await page.state(IT_MEMBER), "#it-help") == ["IT-2026-0001 を処理する権限がありません"]
    _, still = await channel_card(page, IT_OTHER, "IT-2026-0001")
    assert set(buttons(still)) == {"対応完了"}

    await page.act("action", user=IT_OTHER, source=source, block_id=resolve["block_id"], action=resolve)
    _, done = await channel_card(page, IT_OTHER, "IT-2026-0001")
    assert buttons(done) == {} and "対応完了" in done["text"]
    assert any("対応完了" in m["text"] for m in await page.dm(IT_REQUESTER))  # 林 蓮 hears of it
    everything_sent_is_valid_block_kit(page.playground)


async def test_app_home_and_the_shortcut(page: Page) -> None:
    await page.act("home", user=MANAGER)
    home = (await page.state(MANAGER))["home"]
    assert home["type"] == "home" and "高橋 由紀" in json.dumps(home, ensure_ascii=False)
    await page.act("shortcut", user=EMPLOYEE, callback_id="new_request")
    picker = await page.modal(EMPLOYEE)
    assert picker["view"]["type"] == "modal"
    await page.act("close", user=EMPLOYEE, view_id=picker["id"])
    assert (await page.state(EMPLOYEE))["modals"] == []
    everything_sent_is_valid_block_kit(page.playground)


async def test_people_only_see_their_own_ephemeral_replies(page: Page) -> None:
    await page.act("message", user=EMPLOYEE, channel=f"D{EMPLOYEE}", text="/madoguchi help")
    mine = await page.dm(EMPLOYEE)
    assert mine and mine[-1]["ephemeral"]
    other = await page.state(MANAGER)
    assert all(c["id"] != f"D{EMPLOYEE}" for c in other["conversations"])


async def test_bad_input_gets_a_clear_answer_and_changes_nothing(page: Page) -> None:
    version = (await page.state(EMPLOYEE))["version"]
    calls = len(page.playground.api.calls)
    cases: list[tuple[str, Any, int, str]] = [
        ("message", "{not json", 400, "JSON object"),
        ("message", [1, 2], 400, "JSON object"),
        ("message", {"user": "U-nobody", "channel": "D1", "text": "/madoguchi"}, 409, "nobody called U-nobody"),
        ("message", {"user": EMPLOYEE, "channel": f"D{EMPLOYEE}", "text": "  "}, 409, "nothing to send"),
        ("message", {"user": EMPLOYEE, "channel": f"D{EMPLOYEE}", "text": "/unknown"}, 409,
         "/unknown is not a command of this app"),
        ("action", {"user": EMPLOYEE, "source": {"kind": "message", "channel": f"D{EMPLOYEE}", "ts": "1.2"},
                    "block_id": "b", "action": {"type": "button", "action_id": "approve#0", "value": "1"}},
         409, "not there any more"),
        ("action", {"user": EMPLOYEE}, 409, "`action` and `source`"),
        ("submit", {"user": EMPLOYEE, "view_id": "V-gone", "values": {}}, 409, "not open any more"),
        ("submit", {"user": EMPLOYEE, "view_id": "V-gone"}, 409, "`values`"),
        ("close", {"user": EMPLOYEE}, 409, "`view_id` is missing"),
    ]
    for name, body, status, error in cases:
        got_status, answer = await page.post(name, body)
        assert got_status == status and answer["ok"] is False and error in answer["error"], (name, body, answer)
    async with page.session.get(f"{page.base}/playground/api/state", params={"user": "U-nobody"}) as response:
        assert response.status == 404
    assert (await page.state(EMPLOYEE))["version"] == version
    # the bot sent nothing (Bolt looked itself up once, for the unknown command it was shown)
    assert {c.method for c in page.playground.api.calls[calls:]} <= {"auth.test"}


async def test_changing_a_select_in_the_form_sends_nobody_anything(page: Page) -> None:
    # The leave form's unit select has dispatch_action (hours apply to hourly leave only): Slack sends a
    # block_actions from the view on every change, which must not be taken for a stale button.
    await page.act("message", user=EMPLOYEE, channel=f"D{EMPLOYEE}", text="/madoguchi leave")
    modal = await page.modal(EMPLOYEE)
    unit = next(b for b in modal["view"]["blocks"] if b.get("block_id") == "unit")
    assert unit.get("dispatch_action") is True
    hourly = next(o for o in unit["element"]["options"] if o["value"] == "hourly")
    dms = len(await page.dm(EMPLOYEE))
    state = state_values(modal["view"], {"unit": "hourly"})
    await page.act("action", user=EMPLOYEE, source={"kind": "view", "view_id": modal["id"]}, block_id="unit",
                   action={**unit["element"], "selected_option": hourly}, state=state)
    assert len(await page.dm(EMPLOYEE)) == dms
    assert (await page.modal(EMPLOYEE))["id"] == modal["id"]


async def test_someone_elses_modal_cannot_be_submitted(page: Page) -> None:
    await page.act("message", user=EMPLOYEE, channel=f"D{EMPLOYEE}", text="/madoguchi leave")
    modal = await page.modal(EMPLOYEE)
    status, answer = await page.post("submit", {"user": MANAGER, "view_id": modal["id"], "values": {}})
    assert status == 409 and "not open any more" in answer["error"]
    assert (await page.modal(EMPLOYEE))["id"] == modal["id"]


async def test_the_long_poll_answers_when_something_changes(page: Page) -> None:
    version = (await page.state(EMPLOYEE))["version"]

    async def poll() -> dict[str, Any]:
        params = {"user": EMPLOYEE, "after": str(version)}
        async with page.session.get(f"{page.base}/playground/api/state", params=params) as response:
            return await response.json()

    waiting = asyncio.create_task(poll())
    await asyncio.sleep(0.2)
    assert not waiting.done()  # nothing new yet: the page waits
    await page.post("message", {"user": EMPLOYEE, "channel": f"D{EMPLOYEE}", "text": "/madoguchi help"})
    state = await asyncio.wait_for(waiting, 5)
    assert state["version"] > version


async def test_the_emulator_refuses_what_slack_refuses(page: Page) -> None:
    url = api_url(page.base)
    token = {"Authorization": f"Bearer {page.playground.bot_token}"}

    async def call(method: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        async with page.session.post(url + method, json=body, headers=token if headers is None else headers) as r:
            return await r.json()

    assert (await call("auth.test", {}, {"Authorization": "Bearer xoxb-forged"}))["error"] == "invalid_auth"
    assert (await call("auth.test", {}, {}))["error"] == "not_authed"
    view = {"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []}
    assert (await call("views.open", {"trigger_id": "made.up", "view": view}))["error"] == "invalid_trigger_id"
    trigger = page.playground.api.issue_trigger(EMPLOYEE)
    page.playground.api.triggers[trigger] = type(page.playground.api.triggers[trigger])(EMPLOYEE, time.monotonic() - 4)
    assert (await call("views.open", {"trigger_id": trigger, "view": view}))["error"] == "expired_trigger_id"
    assert (await call("conversations.open", {"users": "U-nobody"}))["error"] == "user_not_found"
    assert (await call("chat.update", {"channel": f"D{EMPLOYEE}", "ts": "1.000001", "text": "x"}))["error"] == \
        "message_not_found"
    assert (await call("chat.postMessage", {"channel": "C-nowhere", "text": "x"}))["error"] == "channel_not_found"
    assert (await call("users.lookupByEmail", {"email": "suzuki.misaki@example.jp"}))["user"]["id"] == EMPLOYEE
    assert (await call("no.such.method", {}))["error"] == "unknown_method"


def test_madoguchi_demo_starts_the_playground(tmp_path: Path) -> None:
    port = unused_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "demo", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        people = _wait_for_people(f"http://127.0.0.1:{port}", proc)
        assert len(people) == 30
        with _get(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 200 and "playground" in response.read().decode()
        assert (tmp_path / "madoguchi-demo.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}/?as=UE0003" in output


def _get(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=5)  # noqa: S310 (loopback only)


def _wait_for_people(base: str, proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"madoguchi demo exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with _get(f"{base}/playground/api/people") as response:
                return list(json.loads(response.read())["people"])
        except OSError:
            time.sleep(0.2)
    raise AssertionError("madoguchi demo did not start in 60 s")
