"""One madoguchi serving Slack and Teams people at once, on loopback: signed Slack requests and Bot Framework
activities into the same real server, the Slack Web API and the Teams connector replaced by stubs. A Slack
requester is approved by a Teams manager (every copy of the card updated on each platform); a broadcast reaches
Slack and Teams people and each acknowledgement counts once; a reminder digest reaches a Teams approver
proactively and its buttons work there. Both backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import SlackDelivery
from bot.scheduler import tick as tick_all
from bot.server import make_app
from bot.teams.edge import make_adapter
from bot.teams.proactive import TeamsSender
from config.policy import Policy
from config.settings import Settings
from models.db import Database
from models.messaging import outbox
from models.requests import requests
from tests.conftest import Clock, Org
from tests.e2e.test_slack_edge import EXPENSE, SECRET, USERS, Slack
from tests.e2e.test_teams_edge import MEMBERS, Teams, executes
from tests.stubs.slack_api import SlackApiStub
from tests.stubs.teams_connector import TeamsConnectorStub
from tests.unit.test_adaptive_cards import validate
from tests.unit.test_blockkit import valid_message
from workflow import broadcasts as bc
from workflow import nudges
from workflow.audiences import Audience


@dataclass
class World:
    slack: Slack
    teams: Teams
    delivery: SlackDelivery
    db: Database


@pytest.fixture
async def world(db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[World]:
    api = SlackApiStub(users=dict(USERS))
    await api.start()
    connector = TeamsConnectorStub(members=dict(MEMBERS))
    await connector.start()
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                        "SLACK_API_URL": api.api_url})
    server = TestServer(make_app(settings, database=db, policy=policy, clock=clock), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        base = str(server.make_url("")).rstrip("/")
        delivery = SlackDelivery(db, policy, AsyncWebClient(token="xoxb-test", base_url=api.api_url), pace=0,
                                 clock=clock, teams=TeamsSender(make_adapter(Settings.model_validate({})), None))
        yield World(Slack(base, api, session), Teams(f"{base}/api/messages", connector, session), delivery, db)
    await server.close()
    await connector.close()
    await api.close()


def teams_cards(world: World, conversation: str) -> list[tuple[str, dict[str, Any]]]:
    """(activity id, card) of what the bot sent proactively into a Teams chat, in order."""
    return [(s.activity_id, s.activity["attachments"][0]["content"]) for s in world.teams.connector.sent
            if s.kind == "send" and s.conversation == conversation and s.activity.get("attachments")]


def updates_of(world: World, activity_id: str) -> list[dict[str, Any]]:
    return [s.activity["attachments"][0]["content"] for s in world.teams.connector.sent
            if s.kind == "update" and s.activity_id == activity_id]


async def test_a_slack_requester_is_approved_by_a_teams_manager(world: World, org: Org) -> None:
    await world.teams.say("29:manager", "help")  # the manager uses Teams (the app is installed)
    view = await world.slack.open_form("U-alice", "経費")
    status, _ = await world.slack.post(world.slack.submission_body("U-alice", view, EXPENSE))
    assert status == 200
    await world.delivery.run_once()
    [(card_id, card)] = teams_cards(world, "a:29:manager")
    approve = next(a for a in executes(card) if a["verb"] == "approve")
    _, answer = await world.teams.execute("29:manager", approve["data"], approve["verb"], reply_to=card_id)
    assert "EXP-2026-0001" in answer["value"]
    await world.delivery.run_once()
    # the Teams copy lost its buttons; the Slack requester's status message was updated in place
    assert updates_of(world, card_id) and not [a for a in executes(updates_of(world, card_id)[-1])
                                              if a["verb"] == "approve"]
    status_ts = next(c for c in world.slack.api.called("chat.postMessage") if c["channel"] == "DU-alice")
    alice_updates = [u for u in world.slack.api.called("chat.update") if u["channel"] == "DU-alice"]
    assert alice_updates and "EXP-2026-0001" in alice_updates[-1]["text"] and status_ts
    valid_message({"text": alice_updates[-1]["text"], "blocks": alice_updates[-1]["blocks"]})
    with world.db.unit_of_work(write=False) as conn:
        platforms = {r.recipient_id: r.platform for r in conn.execute(
            sa.select(outbox.c.recipient_id, outbox.c.platform).where(outbox.c.state == "sent"))}
        assert conn.execute(sa.select(requests.c.status)).scalar_one() == "pending"  # next: finance
    assert platforms[org.manager] == "teams" and platforms[org.alice] == "slack"
    cards = [c for _, c in teams_cards(world, "a:29:manager")] + updates_of(world, card_id)
    assert [v["events"] for v in validate(cards) if not v["ok"]] == []


async def test_a_broadcast_reaches_both_platforms_and_each_acknowledgement_counts_once(
        world: World, org: Org, policy: Policy, clock: Clock) -> None:
    await world.teams.say("29:manager", "help")
    await world.slack.command("U-alice", "help")
    result = bc.create(world.db, policy, bc.Draft(org.hr, Audience("people", ("alice@example.jp", "mgr@example.jp")),
                                                  "健康診断の予約をしてください", "Please book your health check", True),
                       clock.now)
    assert result.ok and result.broadcast_id is not None
    await world.delivery.run_once()
    [(teams_id, teams_card)] = teams_cards(world, "a:29:manager")
    ack = next(a for a in executes(teams_card))
    slack_dm = next(c for c in world.slack.api.called("chat.postMessage") if c["channel"] == "DU-alice")
    slack_ack = next(e for b in slack_dm["blocks"] if b["type"] == "actions" for e in b["elements"])
    for _ in range(2):  # a double click on each platform
        await world.teams.execute("29:manager", ack["data"], ack["verb"], reply_to=teams_id)
        await world.slack.post(world.slack.click_body("U-alice", slack_ack["action_id"], slack_ack["value"]))
    with world.db.unit_of_work(write=False) as conn:
        report = bc.report(conn, result.broadcast_id)
    assert report is not None
    assert (report.delivered, report.acknowledged, report.outstanding) == (2, 2, 0)
    await world.delivery.run_once()
    assert updates_of(world, teams_id)  # the Teams copy now shows it was read


async def test_a_reminder_digest_reaches_a_teams_approver_and_its_approve_works(
        world: World, org: Org, policy: Policy, clock: Clock) -> None:
    await world.teams.say("29:manager", "help")
    view = await world.slack.open_form("U-alice", "経費")
    await world.slack.post(world.slack.submission_body("U-alice", view, EXPENSE))
    await world.delivery.run_once()
    clock.now = datetime(2026, 6, 4, 1, 0, tzinfo=UTC)  # Thursday 10:00 JST: due tomorrow
    assert tick_all(world.db, policy, clock.now, work=[("nudges", nudges.fire_due)])["nudges"] == 1
    await world.delivery.run_once()
    digest_id, digest = teams_cards(world, "a:29:manager")[-1]
    assert "リマインド" in json.dumps(digest, ensure_ascii=False)
    verbs = {a["verb"] for a in executes(digest)}
    assert {"approve", "snooze_nudges"} <= verbs
    approve = next(a for a in executes(digest) if a["verb"] == "approve")
    _, answer = await world.teams.execute("29:manager", approve["data"], approve["verb"], reply_to=digest_id)
    assert "EXP-2026-0001" in answer["value"]
    await world.delivery.run_once()
    assert updates_of(world, digest_id)  # the digest itself shows the item done
    assert "対応済み" in json.dumps(updates_of(world, digest_id)[-1], ensure_ascii=False)
