"""The tick: all due work, run once as of a moment; and the APScheduler job that triggers it in each process.

What is due lives in the database (nudge rows, and whatever other due-work modules keep); each due-work function
claims its rows atomically, so any number of processes may tick at once and nothing is done twice. APScheduler
(3.x, in-process, memory job store) only triggers `tick` every `interval` seconds: ONE job per process, never one
job per deadline (a job store of deadlines drops what fell due while the process was down, and APScheduler 3
forbids sharing one between processes; bench/nudges.py measures both designs).

Due work is a list of functions `(db, policy, now) -> int` (how much they did). To add one, append it to
`DUE_WORK` (e.g. `("broadcasts", broadcasts.fire_due)`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from config.policy import Policy
from models.db import Database
from workflow import broadcasts, five_day_campaign, nudges

log = logging.getLogger(__name__)

DueWork = Callable[[Database, Policy, datetime], int]
DUE_WORK: list[tuple[str, DueWork]] = [
    ("nudges", nudges.fire_due),
    ("broadcasts", broadcasts.fire_due),  # scheduled and repeated HR broadcasts, once per occurrence
    ("five_day_campaign", five_day_campaign.run),  # the 年5日 reminders and manager digests
]
INTERVAL = 60.0  # seconds between ticks; a nudge is at most this late
MISFIRE_GRACE = 300  # a tick delayed (a busy or suspended process) still runs if it is this late at most


def tick(db: Database, policy: Policy, now: datetime,
         work: list[tuple[str, DueWork]] | None = None) -> dict[str, int]:
    """Run every due-work function (or those of `work`) once as of `now`; returns what each did. One failing
    does not stop the others (its rows stay due and the next tick tries again)."""
    done: dict[str, int] = {}
    for name, work_fn in DUE_WORK if work is None else work:
        try:
            done[name] = work_fn(db, policy, now)
        except Exception:
            log.exception("due work %r failed", name)
            done[name] = -1
    return done


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ticker:
    """The per-process trigger: an AsyncIOScheduler with one interval job that runs `tick` in a worker thread.
    coalesce: ticks missed while the process was suspended run once, not once each; max_instances=1: a slow tick
    is never overlapped by the next one."""

    def __init__(self, db: Database, policy: Policy, *, clock: Callable[[], datetime] = _utcnow,
                 interval: float = INTERVAL, after: Callable[[], None] | None = None) -> None:
        self.db, self.policy, self.clock, self.interval = db, policy, clock, interval
        self.after = after  # e.g. wake the delivery loop: digests were just written
        self.scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE})

    async def run_once(self) -> dict[str, int]:
        done = await asyncio.to_thread(tick, self.db, self.policy, self.clock())
        if any(n > 0 for n in done.values()) and self.after is not None:
            self.after()
        return done

    async def context(self, _app: object) -> AsyncIterator[None]:
        """An aiohttp cleanup_ctx: the scheduler runs while the application serves."""
        self.scheduler.add_job(self.run_once, IntervalTrigger(seconds=self.interval, timezone=UTC),
                               id="tick", name="madoguchi tick", next_run_time=datetime.now(UTC))
        self.scheduler.start()
        yield
        self.scheduler.shutdown(wait=False)
