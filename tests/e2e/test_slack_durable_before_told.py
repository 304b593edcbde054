"""Durable before told, on the real server (SQLite): a Slack click's decision is committed before the ack but waits
for no fsync; everything that tells a person about it (the ephemeral reply through response_url, the card
updates from the delivery loop) reaches Slack only once the writer has made it durable (models/db.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import SlackDelivery
from config.policy import Policy
from models.db import Database, GroupCommitWriter
from tests.conftest import Clock, make_org
from tests.e2e.test_slack_edge import LEAVE, Slack, approve_button, file, slack_server, statuses


@pytest.fixture
async def slack(sqlite_db: Database, policy: Policy, clock: Clock) -> AsyncIterator[Slack]:
    make_org(sqlite_db)
    async with slack_server(sqlite_db, policy, clock) as (_, _, slack):
        yield slack


async def test_a_clicks_reply_and_card_updates_reach_slack_only_once_its_decision_is_durable(
        slack: Slack, sqlite_db: Database, policy: Policy, clock: Clock) -> None:
    writer = sqlite_db.writer
    assert isinstance(writer, GroupCommitWriter) and writer.defers_sync  # a file database at FULL, the default
    await file(slack, "U-alice", "休暇", LEAVE)
    button = await approve_button(slack, "U-manager")
    seen: list[tuple[str, int]] = []
    slack.api.witness = lambda method: seen.append((method, writer.durable_through))

    assert await slack.post(slack.click_body("U-manager", button["action_id"], button["value"])) == (200, "")
    assert statuses(sqlite_db) == ["approved"]  # committed before the ack
    decided = writer.committed  # the click's round is at most this one
    assert "承認しました" in await slack.last_reply()
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api.api_url)
    assert await SlackDelivery(sqlite_db, policy, client, pace=0, clock=clock).run_once(clock()) >= 1

    told = [(method, durable) for method, durable in seen if method in ("response_url", "chat.update",
                                                                       "chat.postMessage")]
    assert {m for m, _ in told} >= {"response_url", "chat.update"}
    assert all(durable >= decided for _, durable in told), told
