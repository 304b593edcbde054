"""The playground's clock control: "+1 business day / 翌営業日へ" moves the demo's clock (an offset on the real
one) to the next business day's 10:00 and runs the tick, so reminders arrive as digests in the approver's DM
(valid Block Kit, with buttons and "Remind me tomorrow"), and the escalation reaches the manager's manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer, unused_port

from bot.playground import demo
from bot.playground.app import api_url, make_playground, mount
from bot.playground.clock import CLOCK_API, DemoClock, add_clock_control
from bot.server import DATABASE, DELIVERY, REPLIES, make_app
from config.policy import Policy
from config.settings import Settings
from models.db import Database
from tests.e2e.test_playground import MANAGER, Page, buttons, everything_sent_is_valid_block_kit


@pytest.fixture
async def page(db: Database, policy: Policy) -> AsyncIterator[tuple[Page, DemoClock]]:
    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    playground = make_playground(base)
    clock = DemoClock()
    demo.seed(db, policy, playground.workspace, now=clock())
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": playground.bot_token,
                                        "SLACK_SIGNING_SECRET": playground.signing_secret,
                                        "SLACK_API_URL": api_url(base)})
    app = make_app(settings, database=db, policy=policy, clock=clock, warm=False)  # the test drives delivery
    mount(app, playground)
    add_clock_control(app, clock, app[DATABASE], policy)
    app[DELIVERY].pace = 0
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Page(base, session, playground, app[DELIVERY], app[REPLIES]), clock
    await server.close()


async def test_next_business_day_sends_digests(page: tuple[Page, DemoClock], policy: Policy) -> None:
    site, clock = page
    await site.deliver()
    async with site.session.get(f"{site.base}{CLOCK_API}") as response:
        assert (await response.json())["ok"]
    async with site.session.get(f"{site.base}/playground/api/people") as response:
        assert (await response.json())["clock"] is True  # the page shows its button
    before = len(await site.dm(MANAGER))
    sent = 0
    for _ in range(3):  # a request filed today (2 business days' SLA) is reminded within 3 business mornings
        async with site.session.post(f"{site.base}{CLOCK_API}") as response:
            answer = await response.json()
        assert answer["ok"] and answer["now"].endswith("10:00+09:00")
        sent += answer["done"]["nudges"]
        await site.deliver()
    assert sent > 0
    assert clock() > datetime.now(UTC)
    digests = [m for m in (await site.dm(MANAGER))[before:] if "リマインド" in m["text"] or "Reminder" in m["text"]]
    assert digests, "no digest reached the manager"
    labels = buttons(digests[-1])
    assert "承認" in labels and ("明日リマインド" in labels or "Remind me tomorrow" in labels)
    everything_sent_is_valid_block_kit(site.playground)
