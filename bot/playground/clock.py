"""The demo's clock and its control: real time plus an offset that the page's "+1 business day / 翌営業日へ"
button moves to the next business day's 10:00, after which the scheduler's tick runs at once, so a newcomer can
watch reminders, digests and escalation happen without waiting for days."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any

from aiohttp import web

from bot.scheduler import tick
from config.policy import Policy
from models.db import Database
from workflow.calendar import BusinessCalendar
from workflow.engine import calendar_for

CLOCK_API = "/playground/api/clock"
MORNING = time(10)


class DemoClock:
    """Now, as the demo sees it: the real clock moved forward by `offset`."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def next_business_morning(self, calendar: BusinessCalendar) -> datetime:
        local = self().astimezone(calendar.tz)
        day = calendar.next_business_day(local.date())
        return datetime.combine(day, MORNING, calendar.tz).astimezone(UTC)

    def jump_to(self, moment: datetime) -> None:
        self.offset = max(self.offset, moment - datetime.now(UTC))  # the demo's time never goes back


def add_clock_control(app: web.Application, clock: DemoClock, db: Database, policy: Policy,
                      after: Any = None) -> None:
    """GET the demo's time; POST to move it to the next business morning and run the tick once (`after`: a
    callable run afterwards, e.g. waking the delivery loop)."""
    calendar = calendar_for(policy)

    def shown() -> dict[str, Any]:
        local = clock().astimezone(calendar.tz)
        return {"ok": True, "now": local.isoformat(timespec="minutes")}

    async def read(_: web.Request) -> web.Response:
        return web.json_response(shown())

    async def advance(_: web.Request) -> web.Response:
        clock.jump_to(clock.next_business_morning(calendar))
        done = await asyncio.to_thread(tick, db, policy, clock())
        if after is not None:
            after()
        return web.json_response({**shown(), "done": done})

    app.router.add_get(CLOCK_API, read)
    app.router.add_post(CLOCK_API, advance)
