"""The one thread hop from an async edge (Slack, Teams) into the synchronous core: a conversation call runs on
the database's writer (`Database.writer`) and the edge gets its result once it is committed.

On SQLite the writer is one thread that group-commits the calls waiting together; a call a person waits for
(a click, a command) goes ahead of the delivery loop's bookkeeping. On PostgreSQL it is a pool.

The call runs in a copy of the caller's context (contextvars), as `asyncio.to_thread` would: the request id the
HTTP edge set (`models.messaging.TRACE`) reaches the use case, which stamps it on the messages it enqueues.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from models.db import Database, GroupCommitWriter
from models.loop_units import LoopWriter

T = TypeVar("T")


async def on_writer(db: Database, fn: Callable[..., T], *args: Any, first: bool = True, durable: bool = True,
                    alone: bool = False) -> T:
    """Run a (synchronous) call on the database's writer; returns once it is committed. `first` (the default): a
    person waits for it, so on SQLite it goes ahead of the background calls (delivery's bookkeeping) still waiting.
    `durable=False`: the caller tells nobody what the call did before `made_durable` (see models/db.py); on
    SQLite the call then waits for no fsync, and if the caller is `alone` (no other person's request under way,
    see bot/people_first.py) and the writer idle, it runs right here on the event loop, without the two thread hops."""
    writer = db.writer
    context = contextvars.copy_context()
    if isinstance(writer, GroupCommitWriter):
        result: T = await writer.submit_async(context.run, fn, *args, first=first, durable=durable, alone=alone)
        return result
    if isinstance(writer, LoopWriter):
        return await writer.run(context.run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(writer, functools.partial(context.run, fn, *args))


async def made_durable(db: Database) -> None:
    """Return once everything the writer committed would survive a power cut: before telling a person about a
    call made with `durable=False`. (PostgreSQL commits are durable when they return.)"""
    writer = db.writer
    if isinstance(writer, GroupCommitWriter):
        await writer.made_durable()
