"""What became of each outbox row (sent, to retry, dead), written to the database in shared transactions: the
results that come in while one transaction is being written go together in the next one.

Why: every row the delivery loop sends ends with such a record, and each used to be a unit of work of its own. On
PostgreSQL a unit costs our process about 0.3 ms of CPU whatever it does (a pooled connection, BEGIN, COMMIT and
their wait), and an UPDATE in it about 0.06 ms: measured in-process, 1,000 records one per unit against ten per unit
(`bot.writer.on_writer`, 0.30-0.35 against 0.06-0.07 ms of CPU a record). After a burst of decisions, a decision's
three rows spent about a tenth of the delivery's CPU there. (SQLite's writer already shares its rounds; there the
records only share a SAVEPOINT.)

- A row's caller still waits until its own result is committed (the request's next row is planned from it).
- One transaction at a time: a result that comes in while one is written waits for it, then goes with every result
  waiting then. Alone, a result goes at once, as before.
- If a shared transaction fails, each of its results is written again alone, so that one row's error (its own, not
  the others') is raised for that row only.
- A caller cancelled (a shutdown) before its result was written takes it back: the row stays claimed, as when a
  unit of work is cancelled before it runs (the delivery loop releases it). A caller cancelled while it writes the
  shared transaction puts the others' results back for the next one (on SQLite, where the writer's thread finishes
  what it started, they may be written twice: each result is an UPDATE of the row to the same values).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from models.db import Database

Mark = Callable[..., None]  # workflow.delivery.mark_sent / mark_retry / mark_dead: (conn, row_id, *args)

MAX_SHARED = 100  # results in one transaction at most (a long transaction holds its row locks longer)


@dataclass
class _Result:
    mark: Mark
    row_id: int
    args: tuple[Any, ...]
    written: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Records:
    """Writes delivery results (`record`) through `write`, the database's writer, several to a transaction."""

    def __init__(self, db: Database, write: Callable[..., Awaitable[Any]]) -> None:
        self.db, self._write = db, write
        self._waiting: list[_Result] = []
        self._turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None  # made on the loop that uses it

    async def record(self, mark: Mark, row_id: int, *args: Any) -> None:
        """Write `mark(conn, row_id, *args)`; returns once it is committed, or raises its error."""
        result = _Result(mark, row_id, args)
        self._waiting.append(result)
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:  # (an asyncio lock belongs to one loop)
            self._turn = (loop, asyncio.Lock())
        try:
            async with self._turn[1]:  # first come, first served
                while not result.written.done():  # not written yet by the transactions before
                    await self._write_waiting()
        except asyncio.CancelledError:
            if result in self._waiting:  # its caller gave up before it was written: it is not
                self._waiting.remove(result)
            raise
        return result.written.result()

    async def _write_waiting(self) -> None:
        shared, self._waiting = self._waiting[:MAX_SHARED], self._waiting[MAX_SHARED:]
        try:
            await self._write(self._in_one, shared)
        except asyncio.CancelledError:
            self._waiting[:0] = [r for r in shared if not r.written.done()]  # the next transaction writes them
            raise
        except Exception:  # noqa: BLE001 - each alone below: whose error it is decides whose row fails
            await self._each_alone(shared)
            return
        for result in shared:
            if not result.written.done():
                result.written.set_result(None)

    async def _each_alone(self, shared: list[_Result]) -> None:
        for i, result in enumerate(shared):
            try:
                await self._write(self._in_one, [result])
            except asyncio.CancelledError:
                self._waiting[:0] = [r for r in shared[i:] if not r.written.done()]
                raise
            except Exception as exc:  # noqa: BLE001 - the row's own error, for its caller
                if not result.written.done():
                    result.written.set_exception(exc)
            else:
                if not result.written.done():
                    result.written.set_result(None)

    def _in_one(self, shared: list[_Result]) -> None:
        with self.db.unit_of_work() as conn:
            for result in shared:
                result.mark(conn, result.row_id, *result.args)
