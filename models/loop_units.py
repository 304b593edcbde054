"""PostgreSQL's writer: units of work run on the event loop's own thread, and hand their waits for the server to
the loop, so that other units (and the people's requests) go on meanwhile.

Why: PostgreSQL runs transactions side by side, and a unit of work spends most of its time waiting for the server.
These waits used to be a pool of five threads' own: each wait gave the interpreter lock up and took it back, and
with the event loop and four other threads wanting it, each unit paid for every hand-over. Measured in the Slack
latency bench at 50 clicks at once (`bench/slack_latency.py`, per-thread CPU from /proc): the pool's threads spent
3.75 ms of CPU on a decision that takes 2.0 ms on one thread alone, 1.4 ms of it in the kernel, with about 100
context switches per decision. Here a unit runs in a greenlet on the loop's thread; when psycopg would block, the
greenlet hands the wait to the loop (`LoopConnection.wait`: psycopg's own `wait_async`) and the loop runs other
work until the server has answered. One thread, no hand-overs, and the synchronous core stays as it is.

- `run(fn, *args)` runs the synchronous `fn` so; `LoopWriter` bounds how many run at once (each holds a pooled
  connection while it waits: more than the pool holds would block the loop's thread in the pool).
- Outside such a greenlet (the scheduler's tick on its thread, the CLI, tests calling the engine directly) a
  `LoopConnection` waits like any psycopg connection: the thread blocks.
- A wait psycopg can settle at once (sending a statement in pipeline mode, when the socket takes it) is settled in
  the greenlet, without a round through the loop; only a wait for the server's answer goes to the loop. A unit
  that has not let the loop run for `BUSY` seconds (thousands of rows sent, none waited for: a broadcast to the whole
  company) lets it run once at its next statement, as a thread would have at the interpreter's switch interval, so
  the people's requests are not held behind it.
- A caller cancelled while its unit waits (a server shutting down) has the cancellation raised in the unit where it
  waits: its transaction is rolled back, as for any error (on a thread, the unit went on without its caller).
- A new connection (the pool's first, or after a dead one) is opened on a thread: psycopg's connect waits on its
  own, and the loop would stand still meanwhile.
"""

from __future__ import annotations

import asyncio
import select
import weakref
from collections.abc import Awaitable, Callable, Generator
from time import monotonic
from typing import Any, TypeVar

import greenlet
import psycopg
from psycopg import waiting
from psycopg.waiting import Ready, Wait

T = TypeVar("T")

WAIT_INTERVAL = 0.1  # psycopg's own (psycopg.connection._WAIT_INTERVAL): how often a long wait looks up
BUSY = 0.005  # seconds a unit may keep the loop's thread without letting the loop run (psycopg's MAX_BUSY_TIME)

_POLL = {Wait.R: select.POLLIN, Wait.W: select.POLLOUT, Wait.RW: select.POLLIN | select.POLLOUT}


class _Unit(greenlet.greenlet):
    """A unit of work's greenlet: what it waits for is waited for on the loop (see `wait_for`)."""

    def __init__(self, run: Callable[..., Any]) -> None:
        super().__init__(run)
        self.last_yield = monotonic()  # when the loop last ran while this unit was under way


def on_loop() -> bool:
    """Whether the caller runs in a unit started by `run` (its waits go to the loop)."""
    return isinstance(greenlet.getcurrent(), _Unit)


def wait_for(awaitable: Awaitable[T]) -> T:
    """From synchronous code in a unit started by `run`: wait for `awaitable` on the loop, which runs other work
    meanwhile; returns its result (or raises its error)."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Unit) or current.parent is None:
        raise RuntimeError("wait_for outside a unit of work run on the loop")
    try:
        result: T = current.parent.switch(awaitable)
    finally:
        current.last_yield = monotonic()
    return result


async def run(fn: Callable[..., T], *args: Any) -> T:
    """Run the synchronous `fn(*args)` on this thread, handing each of its waits to the loop (see the docstring).
    An error of a wait (a cancellation of the caller too) is raised in the unit where it waits."""
    unit = _Unit(fn)
    step: Any = unit.switch(*args)
    while not unit.dead:
        try:
            value = await step
        except BaseException as exc:  # the unit's to handle where it waits (its transaction rolls back)
            step = unit.throw(exc)
        else:
            step = unit.switch(value)
    return step  # type: ignore[no-any-return]


class LoopWriter:
    """Where async edges run their use cases on PostgreSQL (`Database.writer`): each in a unit on the loop
    (`run`), at most `slots` at once per event loop; the others wait their turn in order."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = \
            weakref.WeakKeyDictionary()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.slots)
        async with gate:
            return await run(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to stop: the units run on their callers' loops (an Executor's method, for `Database.dispose`)."""


def _ready_now(fileno: int, wanted: Wait) -> int:
    """What the socket is ready for right now (a zero-timeout poll)."""
    poll = select.poll()
    poll.register(fileno, _POLL[wanted])
    ready = 0
    for _fd, event in poll.poll(0):
        if event & select.POLLIN:
            ready |= Ready.R
        if event & select.POLLOUT:
            ready |= Ready.W
    return ready


def _resumed(first: Wait, gen: Generator[Wait, int, T]) -> Generator[Wait, int, T]:
    """`gen`, already started and now waiting for `first`, as a generator psycopg's `wait_async` can start."""
    ready = yield first
    while True:
        try:
            wanted = gen.send(ready)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        ready = yield wanted


class LoopConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits, in a unit started by `run`, go to the event loop (see the docstring);
    elsewhere it waits as psycopg does."""

    def wait(self, gen: Any, interval: float = WAIT_INTERVAL, timeout: float | None = None) -> Any:
        unit = greenlet.getcurrent()
        if not isinstance(unit, _Unit):  # a thread of its own, or the loop itself: psycopg's wait
            return super().wait(gen, interval, timeout)
        if monotonic() - unit.last_yield >= BUSY:  # see the docstring
            wait_for(asyncio.sleep(0))
        fileno = self.pgconn.socket
        try:
            wanted = next(gen)
            while ready := _ready_now(fileno, wanted):  # settled at once: no round through the loop
                wanted = gen.send(ready)
        except StopIteration as done:
            return done.value
        return wait_for(waiting.wait_async(_resumed(wanted, gen), fileno, interval=interval, timeout=timeout))


def connect(*args: Any, **kwargs: Any) -> LoopConnection:
    """A new `LoopConnection` (SQLAlchemy's `do_connect`): in a unit on the loop, opened on a thread."""
    if on_loop():
        return wait_for(asyncio.to_thread(LoopConnection.connect, *args, **kwargs))
    return LoopConnection.connect(*args, **kwargs)
