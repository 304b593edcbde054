"""`GET /readyz`: whether this process should be sent traffic. Ready when the database answers, its schema is at
the head revision this code was written for, and the scheduler is ticking (or the tick is off for this process).
Not ready: 503 with the reasons, e.g. `{"status": "not ready", "reasons": ["schema at 0003, expected 0004: run
`madoguchi db upgrade`"]}`. (`GET /healthz` only says the process is alive.)

The check is one query (the Alembic revision) through one thread hop, never a blocking call on the event loop;
probes arriving while one is under way share it, so a hanging database ties up one thread, not one per probe.
The head revision is read from the migration scripts once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from aiohttp import web

from bot.scheduler import Ticker
from models.db import Database
from models.schema import head_revision
from workflow.operations import schema_revision

log = logging.getLogger(__name__)

TIMEOUT = 3.0  # seconds the database may take to answer a probe


class Readiness:
    """The readiness of one application: its database, and its ticker if it has one."""

    def __init__(self, db: Database, ticker: Ticker | None) -> None:
        self.db, self.ticker = db, ticker  # ticker None: this process does not tick (not required)
        self._head: str | None = None
        self._probe: asyncio.Future[str | None] | None = None
        self._said: list[str] = []  # the reasons last logged: a change is logged, not every probe

    async def reasons(self) -> list[str]:
        """Why the process is not ready; empty when it is."""
        found = []
        problem = await self._database()
        if problem is not None:
            found.append(problem)
        stalled = self.ticker.stalled() if self.ticker is not None else None
        if stalled is not None:
            found.append(stalled)
        if found != self._said:
            if found:
                log.warning("not ready: %s", "; ".join(found))
            else:
                log.info("ready")
            self._said = found
        return found

    async def _database(self) -> str | None:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(asyncio.to_thread(self._schema_problem))
        try:
            return await asyncio.wait_for(asyncio.shield(self._probe), TIMEOUT)
        except TimeoutError:
            return f"database: no answer within {TIMEOUT:g} s"

    def _schema_problem(self) -> str | None:
        """On a worker thread: the database's problem, or None."""
        if self._head is None:
            self._head = head_revision()
        try:
            try:
                current = schema_revision(self.db)
            except sa.exc.DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # a pooled connection died while idle less than models.db.PING_AFTER ago (a restart, a cut): the
                # pool has dropped it; a fresh one says whether the database answers now, and if not, where
                current = schema_revision(self.db)
        except Exception as exc:  # whatever the driver raises, a probe answers 503 with it, never 500
            return f"database unreachable: {_first_line(exc)}"
        if current is None:
            return f"schema missing (expected {self._head}): run `madoguchi db upgrade`"
        if current != self._head:
            return f"schema at {current}, expected {self._head}: run `madoguchi db upgrade`"
        return None


def _first_line(exc: Exception) -> str:
    """The driver's own message, first line (it names the host and port, never the password)."""
    cause = getattr(exc, "orig", None) or exc
    text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return text[:200]


def readyz_handler(readiness: Readiness) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(_: web.Request) -> web.Response:
        reasons = await readiness.reasons()
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    return readyz
