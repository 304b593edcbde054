"""The tick: all due work, run once as of a moment; and the APScheduler job that triggers it in each process.

What is due lives in the database (nudge rows, and whatever other due-work modules keep); each due-work function
claims its rows atomically, so any number of processes may tick at once and nothing is done twice. APScheduler
(3.x, in-process, memory job store) only triggers `tick` every `interval` seconds: ONE job per process, never one
job per deadline (a job store of deadlines drops what fell due while the process was down, and APScheduler 3
forbids sharing one between processes; bench/nudges.py measures both designs).

Due work is a list of functions `(db, policy, now, stop) -> int` (how much they did; `stop()` says the process is
shutting down: a function working in several transactions ends after the current one and leaves the rest due).
To add one, append it to `DUE_WORK` (e.g. `("broadcasts", broadcasts.fire_due)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.metrics import Metrics
from config.policy import Policy
from models.db import Database
from models.messaging import TRACE
from workflow import broadcasts, five_day_campaign, nudges

log = logging.getLogger(__name__)

Stop = Callable[[], bool]
DueWork = Callable[[Database, Policy, datetime, Stop], int]
DUE_WORK: list[tuple[str, DueWork]] = [
    ("nudges", nudges.fire_due),
    ("broadcasts", broadcasts.fire_due),  # scheduled and repeated HR broadcasts, once per occurrence
    ("five_day_campaign", five_day_campaign.run),  # the 年5日 reminders and manager digests
]
INTERVAL = 60.0  # seconds between ticks; a nudge is at most this late
MISFIRE_GRACE = 300  # a tick delayed (a busy or suspended process) still runs if it is this late at most
STALE_TICKS = 3  # readiness: the scheduler is stuck once no tick has finished for this many intervals
SHUTDOWN_WAIT = 3.0  # seconds a tick under way at shutdown may take to finish its transactions


def _never() -> bool:
    return False


def tick(db: Database, policy: Policy, now: datetime, work: list[tuple[str, DueWork]] | None = None,
         stop: Stop = _never) -> dict[str, int]:
    """Run every due-work function (or those of `work`) once as of `now`; returns what each did. One failing
    does not stop the others (its rows stay due and the next tick tries again). Once `stop()` is true the
    functions not begun are skipped (not in the result)."""
    done: dict[str, int] = {}
    for name, work_fn in DUE_WORK if work is None else work:
        if stop():
            break
        try:
            done[name] = work_fn(db, policy, now, stop)
        except Exception:
            log.exception("due work %r failed", name)
            done[name] = -1
    return done


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ticker:
    """The per-process trigger: an AsyncIOScheduler with one interval job that runs `tick` in a worker thread.
    coalesce: ticks missed while the process was suspended run once, not once each; max_instances=1: a slow tick
    is never overlapped by the next one.

    Each tick runs under a trace id of its own (`tick-...`), stamped on the messages it writes; its duration and
    failures go to `metrics`. At shutdown no tick starts any more, one under way stops after its current
    transaction (`stop` in DueWork) and is waited for (up to SHUTDOWN_WAIT), so its transactions end before the
    database is closed: the tick's claims are row locks inside its transactions, so nothing stays claimed once
    they are over, and what it did not reach stays due."""

    def __init__(self, db: Database, policy: Policy, *, clock: Callable[[], datetime] = _utcnow,
                 interval: float = INTERVAL, after: Callable[[], None] | None = None,
                 metrics: Metrics | None = None) -> None:
        self.db, self.policy, self.clock, self.interval = db, policy, clock, interval
        self.after = after  # e.g. wake the delivery loop: digests were just written
        self.metrics = metrics or Metrics()
        self.scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE})
        self._started = time.monotonic()
        self._finished: float | None = None  # monotonic time the last tick finished
        self._running: asyncio.Future[dict[str, int]] | None = None
        self._stopped = False
        self._stopping = threading.Event()  # read by the tick's thread between its transactions

    async def run_once(self) -> dict[str, int]:
        trace = TRACE.set(f"tick-{uuid.uuid4().hex[:12]}")  # copied into the tick's thread by to_thread
        started = time.perf_counter()
        try:
            self._running = asyncio.ensure_future(asyncio.to_thread(tick, self.db, self.policy, self.clock(),
                                                                    None, self._stopping.is_set))
            done = await asyncio.shield(self._running)  # a cancelled job still lets its thread's work be awaited
        finally:
            TRACE.reset(trace)
        seconds = time.perf_counter() - started
        self.metrics.tick_seconds.observe(seconds)
        if any(done.values()):  # an idle tick says nothing (one a minute per replica)
            log.info("tick: %s in %.2f s", ", ".join(f"{name} {n}" for name, n in done.items()), seconds)
        for name in (n for n, count in done.items() if count < 0):
            self.metrics.tick_failures.labels(name).inc()
        self._finished = time.monotonic()
        self.metrics.last_tick.set_to_current_time()
        if any(n > 0 for n in done.values()) and self.after is not None:
            self.after()
        return done

    def stalled(self) -> str | None:
        """Why the scheduler is not ticking (no tick finished for STALE_TICKS intervals since the start or the last
        tick), or None when it is."""
        since = time.monotonic() - (self._finished if self._finished is not None else self._started)
        if since <= STALE_TICKS * self.interval:
            return None
        return f"scheduler: no tick finished for {since:.0f} s (interval {self.interval:g} s)"

    def stop(self) -> None:
        """No tick starts from now on (the process is shutting down). Once only: AsyncIOScheduler's shutdown is
        carried out later on the loop, so `running` stays true until then and a second call would fail."""
        self._stopping.set()  # a tick under way ends after its current transaction
        if self.scheduler.running and not self._stopped:
            self._stopped = True
            self.scheduler.shutdown(wait=False)

    async def context(self, _app: object) -> AsyncIterator[None]:
        """An aiohttp cleanup_ctx: the scheduler runs while the application serves."""
        self._started = time.monotonic()
        self.scheduler.add_job(self.run_once, IntervalTrigger(seconds=self.interval, timezone=UTC),
                               id="tick", name="madoguchi tick", next_run_time=datetime.now(UTC))
        self.scheduler.start()
        yield
        self.stop()
        running = self._running
        if running is not None and not running.done():
            log.info("shutdown: waiting for the tick under way")
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), SHUTDOWN_WAIT)
