"""The delivery loop's workspace-wide pace (bot/delivery.py WorkspacePace) against the stub Slack enforcing Slack's
limits (bot/playground/webapi.py RateLimits): a broadcast bigger than the cap goes out with no 429 when the
pace matches the cap; after a 429 the whole workspace waits for Retry-After, then sends the rest, nothing lost
and nothing twice. Both backends."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk.web.async_client import AsyncWebClient

from bench.broadcast import seed
from bot.delivery import DEFAULT_RATE, HEADROOM, SlackDelivery, WorkspacePace
from bot.playground.webapi import RateLimits
from config.policy import Policy
from models.db import Database
from models.messaging import outbox
from tests.stubs.slack_api import SlackApiStub
from workflow import broadcasts as bc
from workflow.audiences import Audience


@pytest.fixture
async def api() -> AsyncIterator[SlackApiStub]:
    stub = SlackApiStub()
    await stub.start()
    yield stub
    await stub.close()


def broadcast(db: Database, policy: Policy, people: int) -> int:
    """A broadcast DM to `people` employees and the HR author; returns how many rows it wrote."""
    author = seed(db, people)
    result = bc.create(db, policy, bc.Draft(author, Audience("everyone"), "お知らせ", "Notice", True),
                       datetime.now(UTC))
    assert result.ok, result.message
    return result.count


def states(db: Database) -> dict[str, int]:
    with db.unit_of_work(write=False) as conn:
        return {str(s): int(n) for s, n in conn.execute(
            sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state))}


def posts_per_channel(api: SlackApiStub) -> list[int]:
    """What was really posted (a 429 posts nothing), per DM channel."""
    return [len(c.messages) for c in api.workspace.conversations.values() if c.messages]


async def test_a_broadcast_bigger_than_the_cap_goes_out_at_the_cap_with_no_429(
        db: Database, policy: Policy, api: SlackApiStub) -> None:
    cap = 30.0
    api.emulator.limits = RateLimits(per_channel=1.0, workspace=cap)
    rows = broadcast(db, policy, 44)
    delivery = SlackDelivery(db, policy, AsyncWebClient(token="xoxb-test", base_url=api.api_url), pace=1.0,
                             rate=cap, batch=100)
    started = time.monotonic()
    while states(db).get("pending", 0):
        assert await delivery.run_once() or time.monotonic() - started < 10
    elapsed = time.monotonic() - started
    assert api.emulator.limits.limited == 0  # never over the cap: not one 429
    assert states(db) == {"sent": rows}
    assert sorted(posts_per_channel(api)) == [1] * rows  # everyone once
    assert elapsed >= (rows - cap) / cap  # 45 messages cannot go out in one second at 30 a second


async def test_messages_that_reach_slack_late_still_keep_to_the_cap(
        db: Database, policy: Policy, api: SlackApiStub) -> None:
    """A message reaches Slack some time between our call and its answer: a busy event loop or the network may
    hold it back by a random part of a second. The window counts a message until a second after its answer,
    so late arrivals cannot bunch into a second over the cap (counting by send times, they did)."""
    cap = 20.0
    api.emulator.limits = RateLimits(per_channel=1.0, workspace=cap)
    rows = broadcast(db, policy, 79)
    client = AsyncWebClient(token="xoxb-test", base_url=api.api_url)
    post, jitter = client.chat_postMessage, random.Random(7)

    async def late(**kwargs: Any) -> Any:
        await asyncio.sleep(jitter.uniform(0.0, 0.6))  # on its way: not at Slack yet
        return await post(**kwargs)

    client.chat_postMessage = late  # type: ignore[method-assign]
    delivery = SlackDelivery(db, policy, client, pace=1.0, rate=cap, batch=100)
    started = time.monotonic()
    while states(db).get("pending", 0):
        assert await delivery.run_once() or time.monotonic() - started < 20
    assert api.emulator.limits.limited == 0
    assert states(db) == {"sent": rows}
    assert sorted(posts_per_channel(api)) == [1] * rows


async def test_after_a_429_the_whole_workspace_waits_for_retry_after(
        db: Database, policy: Policy, api: SlackApiStub) -> None:
    rows = broadcast(db, policy, 3)
    api.fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "1"})
    client = AsyncWebClient(token="xoxb-test", base_url=api.api_url)
    sent: list[float] = []
    post = client.chat_postMessage

    async def timed(**kwargs: Any) -> Any:
        sent.append(time.monotonic())
        return await post(**kwargs)

    client.chat_postMessage = timed  # type: ignore[method-assign]
    delivery = SlackDelivery(db, policy, client, pace=0, rate=20.0, batch=1)  # a slot every ~50 ms
    await delivery.run_once()  # one row a batch: the refused first, then the others, batch after batch
    assert len(sent) >= 2 and sent[1] - sent[0] >= 0.9  # the next DM (another person's) waited for Retry-After
    later = datetime.now(UTC) + timedelta(seconds=2)
    while states(db).get("pending", 0):
        assert await delivery.run_once(later)
    assert states(db) == {"sent": rows}
    assert sorted(posts_per_channel(api)) == [1] * rows  # the refused one too, once


async def test_senders_asleep_on_a_slot_wait_out_a_hold_and_keep_the_pace() -> None:
    pace, rate = WorkspacePace(), 20.0
    started = time.monotonic()
    done: list[float] = []

    async def send() -> None:
        await pace.take(rate)
        done.append(time.monotonic() - started)

    senders = [asyncio.ensure_future(send()) for _ in range(4)]
    await asyncio.sleep(0)  # each has its slot; the first (a full bucket) went at once
    pace.hold(0.3, rate)
    await asyncio.gather(*senders)
    assert done[0] < 0.05 and all(t >= 0.3 for t in done[1:])  # the sleepers woke and queued after the hold
    interval = 1 / (rate * HEADROOM)
    assert done[-1] >= 0.3 + 2 * interval * 0.9  # ... one slot each, not all at once


def test_the_workspace_pace_is_off_where_tests_turn_pacing_off(db: Database, policy: Policy) -> None:
    client = AsyncWebClient(token="xoxb-test")
    assert SlackDelivery(db, policy, client).workspace_rate == DEFAULT_RATE
    assert SlackDelivery(db, policy, client, pace=0).workspace_rate == 0
    assert SlackDelivery(db, policy, client, pace=0, rate=50).workspace_rate == 50
    paced = SlackDelivery(db, policy, client)
    paced.pace = 0  # as the playground tests do after make_app
    assert paced.workspace_rate == 0
