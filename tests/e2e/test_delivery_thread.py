"""The background delivery loop on a thread of its own (bot/server.py DeliveryThread): a wake from the HTTP
edge's thread reaches its event loop, and it stops with the application (both backends)."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import SlackDelivery
from bot.server import DeliveryThread
from config.policy import Policy
from models import people
from models.db import Database
from tests.conftest import Clock, Org
from tests.e2e.test_slack_delivery import SMALL_EXPENSE
from tests.e2e.test_slack_edge import USERS
from tests.stubs.slack_api import TEAM, SlackApiStub
from workflow.engine import Engine

WAIT = 20.0  # seconds a card may take to reach the stub before the test gives up (no timing is asserted)


async def _posted(api: SlackApiStub, count: int) -> list[str]:
    """The channels of the chat.postMessage calls, once there are `count` (or WAIT has passed)."""
    for _ in range(int(WAIT / 0.05)):
        if len(api.called("chat.postMessage")) >= count:
            break
        await asyncio.sleep(0.05)
    return [str(c["channel"]) for c in api.called("chat.postMessage")]


async def test_a_wake_from_the_edge_thread_reaches_the_delivery_thread_and_it_stops_cleanly(
        db: Database, org: Org, policy: Policy, clock: Clock) -> None:
    api = SlackApiStub(users=dict(USERS))
    await api.start()
    with db.unit_of_work() as conn:
        people.remember_identity(conn, org.manager, "slack", TEAM, "U-manager", clock.now)
    delivery = SlackDelivery(db, policy, AsyncWebClient(token="xoxb-test", base_url=api.api_url), pace=0,
                             clock=clock)
    # an hour's rest: after its first round, only a wake makes the loop look again
    thread = DeliveryThread(delivery, interval=3600.0)
    app = web.Application()
    app.cleanup_ctx.append(thread.context)
    runner = web.AppRunner(app)
    await runner.setup()  # starts the thread
    engine = Engine(db, policy, clock=clock)
    try:
        assert engine.submit(org.alice, "expense", SMALL_EXPENSE).ok
        delivery.wake()  # from this thread, not the delivery loop's
        assert await _posted(api, 1) == ["DU-manager"]
        assert engine.submit(org.bob, "expense", SMALL_EXPENSE).ok
        delivery.wake()  # the loop rests (or is finishing the first round): this is what brings it back
        assert await _posted(api, 2) == ["DU-manager", "DU-manager"]
    finally:
        await runner.cleanup()  # cancels the loop and joins the thread; must not hang or raise
        await api.close()
    assert not any(t.name == "madoguchi-delivery" and t.is_alive() for t in threading.enumerate())
    assert delivery.client.session is None  # its own session was closed with it


async def test_a_wake_after_the_thread_stopped_is_harmless(db: Database, policy: Policy) -> None:
    delivery = SlackDelivery(db, policy, AsyncWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/"),
                             pace=0)
    app = web.Application()
    app.cleanup_ctx.append(DeliveryThread(delivery).context)
    runner = web.AppRunner(app)
    await runner.setup()
    await runner.cleanup()
    delivery.wake()  # e.g. a reply committed while the server shut down: no loop to reach, no error
