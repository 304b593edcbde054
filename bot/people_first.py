"""People first: while a person waits for an answer (a Slack click, command or form; a Teams activity), work that
nobody is waiting on at that moment holds back: the delivery loop's claims and sends, and the replies sent after an
answer (an ephemeral "approved" through response_url). All of it shares one event loop and one interpreter lock
with the answers; a delivery step taken while a click is under way makes that click wait for it.

Why it matters: Slack gives an interaction 3 s to be acknowledged, and the person's button spins until it is; a
card update or a notification has no such deadline, and a few milliseconds later is the same to its reader. In the
Slack latency bench (bench/slack_latency.py, clicks one after the other) a click's answer took 2.3 ms alone and
5-8 ms while the previous clicks' cards were being sent; with 50 at once, the answers' p99 went from about 100 ms
to about 60 ms once the sends held back.

- The gate closes when a person's request comes in (`serving`), and opens again once none has been under way for
  `hold` seconds: requests that follow one another closely (a burst at 9:00, clicks one after the other) leave
  gaps of a fraction of a millisecond between an answer and the next request, which are not worth a send.
- Nothing waits for ever: once the gate has been closed for `max_wait` seconds, the background goes on beside the
  people (as if there were no gate) until it opens again. Under a load that never pauses, cards are at most that
  late, and share the process with the answers from then on.
- Without a running loop's requests (tests that drive delivery themselves, the CLI) the gate is open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

HOLD = 0.005  # seconds without a person's request before the background goes on
MAX_WAIT = 1.0  # seconds the background waits at most behind people (then it goes on beside them)


class PeopleFirst:
    """Counts the people's requests under way; `turn()` is where background work waits for them (see above)."""

    def __init__(self, *, hold: float = HOLD, max_wait: float = MAX_WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hold, self.max_wait, self.clock = hold, max_wait, clock
        self.waiting = 0  # people's requests under way
        self._closed_at: float | None = None  # when the gate closed; None: open
        # set while background work may go on: the gate is open, or it has been closed for `max_wait`. One event
        # and one deadline timer for every waiter: a `wait_for` per waiter made a task and a timer for each
        # reply parked behind a click (35 us of the event loop's time a click, measured in-process)
        self._opened: asyncio.Event | None = None  # made on the loop that uses it (first use)
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def open(self) -> bool:
        return self._closed_at is None

    def alone(self) -> bool:
        """At most one person's request under way (the caller's own): nobody else waits on the loop."""
        return self.waiting <= 1

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Around a person's request (on the event loop)."""
        self.waiting += 1
        if self._timer is not None:  # a request within `hold` of the last answer: still closed
            self._timer.cancel()
            self._timer = None
        if self._closed_at is None:
            self._closed_at = self.clock()
            self._event().clear()
            self._deadline = asyncio.get_running_loop().call_later(self.max_wait, self._overdue)
        try:
            yield
        finally:
            self.waiting -= 1
            if self.waiting == 0:
                self._timer = asyncio.get_running_loop().call_later(self.hold, self._reopen)

    async def turn(self) -> None:
        """Return when background work may go on: at once while the gate is open, else once it opens or has been
        closed for `max_wait` seconds."""
        if self._closed_at is None or self.clock() - self._closed_at >= self.max_wait:
            return
        await self._event().wait()

    def _overdue(self) -> None:
        """The gate has been closed for `max_wait`: what waits goes on beside the people (see the docstring)."""
        self._deadline = None
        self._event().set()

    def middleware(self, paths: frozenset[str]) -> Middleware:
        """An aiohttp middleware that counts the requests to `paths` (the people's endpoints) as `serving`."""

        @web.middleware
        async def people_first(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path not in paths:
                return await handler(request)
            with self.serving():
                return await handler(request)

        return people_first

    def _reopen(self) -> None:
        self._timer = None
        if self.waiting == 0:
            self._closed_at = None
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._event().set()

    def _event(self) -> asyncio.Event:
        if self._opened is None:
            self._opened = asyncio.Event()
            self._opened.set()
        return self._opened
