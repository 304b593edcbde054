"""The database: engine set-up per backend and the unit of work (one connection, one transaction).

SQLite runs in WAL with synchronous=FULL (a decision a person was told about survives a power cut) and
writes begin IMMEDIATE, so a read-then-write use case never fails half way on a lock upgrade.

`Database.writer` is the executor the async edges send their use cases to (instead of the default one):
- SQLite has one writer at a time. Many threads writing at once wait for its lock in SQLite's busy handler,
  which sleeps 1, 2, 5, 10... ms between tries, so 50 simultaneous clicks queued for up to a second. The writer
  is ONE thread that runs the calls in turn, and group-commits: the calls waiting when a round starts share one
  transaction (one fsync), each of its units of work in a SAVEPOINT of its own, so a refusal or an error undoes
  that unit only. A call's result is handed back only after the COMMIT returned. If the COMMIT fails, every
  call of the round gets the error.
- Durable before told, not before acked. The writer's own connection commits at synchronous=NORMAL and makes the
  WAL durable itself (fdatasync, what FULL does at each commit) before it hands back the results of a round that
  holds a `durable` call, the default: nobody is told about a change that is not durable. A call whose caller
  tells nobody (a Slack click: its ack only stops the button's spinner; what it did is said by the card update
  and the reply, sent later) asks for `durable=False`, and whatever tells the person first waits for
  `made_durable()`. One fdatasync then covers every round since the last, and a click's answer waits for no
  disk. (A click's commit measured in-process: 0.27 ms at FULL, 0.07 at NORMAL; an fdatasync 0.14.) Other
  connections (the CLI, the tick, readers) keep the configured level.
- A lone call that waits for no disk (`submit_async(alone=True, durable=False)`: a Slack click while no other
  person's request is under way) runs on the caller's own thread, the event loop, when the writer has nothing to
  do: the hop to the writer thread and back (two thread wakes; on this kind of virtual machine a sleeping vCPU
  wakes slowly) cost about as much as the decision itself. Whoever runs a round holds the writer's turn (a lock).
- The WAL checkpoints, which copy pages into the database file and fsync it (5-7 ms here every `CHECKPOINT_EVERY`
  calls), run on a thread of their own with a connection of their own (`Checkpointer`), never on the loop: SQLite
  checkpoints PASSIVE beside a writer. SQLite's autocheckpoint is off on the writer's connection. (On the writer
  thread, every 50th call's successor waited for the checkpoint: the p99 of clicks one after the other was that
  wait.) Only the pages committed during that copy are copied with the writer's turn held (1-3 ms here), so that
  the WAL starts over from its top at the next write: see `Checkpointer`.
- PostgreSQL runs transactions side by side (row locks): the writer (`models.loop_units.LoopWriter`) runs each call
  on the event loop's own thread, in a greenlet whose waits for the server go to the loop, at most `pool_size` at
  once; one transaction per unit of work as before. (A pool of threads handed the interpreter lock over at every
  wait: at 50 clicks at once a decision cost it 3.75 ms of CPU instead of 2.0: see models/loop_units.py.)

On PostgreSQL a unit of work that writes runs in psycopg's pipeline mode (models/postgres_path.py): it waits for the
server only for what it reads (rows, a conditional update's rowcount) and for its COMMIT, which carries the writes
nobody reads back. Without it, every statement is a round trip to the server, and on this kind of machine a round
trip costs our process about 0.1 ms of CPU (a click ran 22; the delivery of its news as many again). A short read
on a hot path (who clicked; what a delivery row will say) asks for no transaction of its own (`unit_of_work(write=False,
transaction=False)`: autocommit, no BEGIN, no COMMIT): at PostgreSQL's READ COMMITTED each statement reads as of
its own start, in a transaction or not, so it reads what it read before. Other reads keep their transaction: a
server-side cursor (an export's stream) needs one. A connection taken from the pool is pinged (one round trip)
only if it sat there more than `PING_AFTER` seconds (`_ping_when_idle`): a dead connection is found and replaced
before use, as with `pool_pre_ping` (without a ping a click just after a server restart failed once), and one
given back a moment ago goes straight to work. Pinging every checkout was 8 round trips a click (the decision and
the delivery of its news) and 6% of the server's CPU under load.

The async edges wait on the writer through `GroupCommitWriter.submit_async`: the round's results for one event loop
are handed over in ONE `call_soon_threadsafe` after the COMMIT. (`asyncio.wrap_future` wakes the loop once per call,
each wake a write to its self-pipe, where the writer thread gives the GIL up to the loop and waits to get it back:
measured in the Slack latency bench, half a second of the writer's 4 s.)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import models.audit  # noqa: F401  (registers the tables on metadata)
import models.broadcasts  # noqa: F401
import models.channels  # noqa: F401
import models.installations  # noqa: F401
import models.leave  # noqa: F401
import models.messaging  # noqa: F401
import models.people  # noqa: F401
import models.requests  # noqa: F401
from models import postgres_path
from models.base import metadata
from models.loop_units import LoopWriter, connect

log = logging.getLogger(__name__)

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def normalize_url(url: str) -> str:
    """Accept plain postgres URLs (as operators write them) and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


PING_AFTER = 1.0  # seconds in the pool after which a connection is pinged before it is handed out


def _ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping` for connections idle more than PING_AFTER seconds only (see the module's docstring). A ping
    that fails raises DisconnectionError: the pool drops that connection and hands out a fresh one."""
    dialect = engine.dialect

    @sa.event.listens_for(engine, "checkin")
    def _given_back(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")  # none: a connection made just now
        if since is None or time.monotonic() - since < PING_AFTER:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(f"a pooled connection was dead: {exc}") from exc


def _connect_for_the_loop(engine: Engine) -> None:
    """psycopg connections whose waits go to the event loop in a unit run there (models/loop_units.py)."""

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        return connect(*cargs, **cparams)


def _sqlite_engine(url: str, synchronous: str, echo: bool) -> Engine:
    if synchronous.upper() not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"MADOGUCHI_SQLITE_SYNCHRONOUS must be one of {SYNCHRONOUS_LEVELS}, not {synchronous!r}")
    in_memory = _in_memory(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if in_memory:
        # one shared connection, or every checkout would see a new empty database
        kwargs["poolclass"] = sa.pool.StaticPool
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # straight to the driver: this runs for every unit of work, and needs no statement machinery
        conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if conn.info.get("write", True) else "BEGIN")

    return engine


MAX_GROUP = 64  # calls sharing one commit at most: a round must not grow without bound under load
# Calls between the writer's WAL checkpoints: a decision writes ~20 pages, so about SQLite's default of 1,000.
CHECKPOINT_EVERY = 50


class _Unit:
    """A unit of work inside a group commit: its SAVEPOINT, and whether it was rolled back."""

    __slots__ = ("name", "rolled_back")

    def __init__(self, name: str) -> None:
        self.name, self.rolled_back = name, False


class LoopWaiter:
    """Where the writer hands a call's result to async code: an asyncio future of `loop`, settled on the loop
    together with the round's other results for it (see the module's docstring)."""

    __slots__ = ("loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.future = loop, loop.create_future()

    def set_running_or_notify_cancel(self) -> bool:
        return True  # a cancelled waiter (the caller gave up) is skipped when settled; the call itself runs


Waiter = Future[Any] | LoopWaiter
Call = tuple[Waiter, Callable[..., Any], tuple[Any, ...], dict[str, Any], bool]  # ..., durable


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """On the loop: hand each result of a round to its caller (one loop wake for the whole round)."""
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _answer(group: list[Call], results: list[tuple[bool, Any]]) -> None:
    """Give every call of a round its result: concurrent futures one by one, loop waiters one wake per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (waiter, *_), (ok, value) in zip(group, results, strict=True):
        if isinstance(waiter, LoopWaiter):
            by_loop.setdefault(waiter.loop, []).append((waiter.future, ok, value))
        elif ok:
            waiter.set_result(value)
        else:
            waiter.set_exception(value)
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


class Checkpointer:
    """The SQLite WAL's checkpoints, on a thread and a connection of their own (started at the first one).

    PASSIVE: it copies what no reader still needs into the database file and syncs it, without waiting for
    readers or writers; the writer goes on committing meanwhile (WAL mode lets one checkpoint run beside one
    writer). What it cannot copy yet waits for the next one: nothing is lost by a checkpoint that stops short.

    Then it copies what was committed during that copy (a few calls' pages) holding the writer's `turn`, so that
    the WAL is wholly in the database file before the next write begins: SQLite starts a WAL over from its top
    only at a write that begins so. Without that step, under a steady load the writer always began beside a
    checkpoint, and the WAL never started over: it grew by every page written (about 125 KB a click) for as long
    as the load lasted, and stayed that size on disk after. A commit that grows the file also costs the kernel
    more than one that overwrites it (in-process, clicks one after the other: p50 0.79-1.14 ms with the WAL
    growing, 0.69-0.81 with it starting over; the Slack latency bench's ack p50 at 1, eight pairs: median 1.60 ->
    1.40 ms). The writer waits for that step (1-3 ms here) once every `CHECKPOINT_EVERY` calls; a lone click
    meanwhile goes to the writer's thread instead of running inline."""

    def __init__(self, db: Database, turn: threading.Lock) -> None:
        self._db = db
        self._turn = turn  # the writer's: held by whoever runs a round
        self._wake = threading.Condition()
        self._wanted = self._stopping = False
        self._thread: threading.Thread | None = None
        self.done = 0  # checkpoints run

    def wanted(self) -> None:
        """Ask for a checkpoint; returns at once (one asked while one runs is run after it, once)."""
        with self._wake:
            if self._stopping:
                return
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="madoguchi-db-checkpoint", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _take_turn(self) -> bool:
        """The writer's turn, once its round is done; False when stopping (the writer may be the one stopping us)."""
        while not self._turn.acquire(timeout=0.05):
            if self._stopping:
                return False
        return True

    def stop(self, wait: bool = True) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _work(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                with self._wake:
                    while not (self._wanted or self._stopping):
                        self._wake.wait()
                    if self._stopping:
                        return
                    self._wanted = False
                try:
                    conn = conn or self._db.engine.connect()
                    raw: Any = conn.connection.driver_connection
                    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    if self._take_turn():
                        try:  # what was committed meanwhile, with no write under way (see the docstring)
                            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        finally:
                            self._turn.release()
                    self.done += 1
                except Exception:  # the next one will try again; a checkpoint loses nothing by waiting
                    log.exception("WAL checkpoint failed")
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()


class GroupCommitWriter(Executor):
    """One thread that runs submitted calls in turn; the calls waiting when a round starts share ONE
    transaction and ONE commit (see the module's docstring). Made by `Database.writer` for SQLite.
    `submit_first` calls (a person waiting for an answer) go before the others still waiting.

    Each call says whether its result tells somebody something (`durable`, the default). The writer's own
    connection commits without an fsync when the database is FULL (`defers_sync`); a round with a durable call
    is made durable (the WAL's fdatasync) before any of its results is handed back. `committed` and
    `durable_through` count rounds: what is committed, and what of it would survive a power cut."""

    def __init__(self, db: Database, max_group: int = MAX_GROUP) -> None:
        self._db, self._max_group = db, max_group
        self._first: collections.deque[Call] = collections.deque()
        self._then: collections.deque[Call] = collections.deque()
        self._shutdown = False
        self._ready = threading.Condition()
        self._conn: Connection | None = None  # the writer's own, kept between rounds (its PRAGMAs are its own)
        self._wal: str | None = None  # the WAL file to fdatasync, when the writer defers the sync
        self._directory_synced = False
        self.defers_sync = db.synchronous in ("FULL", "EXTRA") and not db.in_memory
        self.committed = 0
        self.durable_through = 0
        self._barrier: asyncio.Future[Any] | None = None  # the empty durable call callers wait on (made_durable)
        self._since_checkpoint = 0  # calls committed since the last checkpoint was asked for
        self._turn = threading.Lock()  # held by whoever runs a round: the writer thread, or a caller inline
        self.checkpointer = Checkpointer(db, self._turn)
        self._thread = threading.Thread(target=self._work, name="madoguchi-db-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:  # type: ignore[override]
        future: Future[Any] = Future()
        self._put(self._then, (future, fn, args, kwargs, True))
        return future

    def submit_first(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Like `submit`, ahead of the plain submissions still waiting."""
        future: Future[Any] = Future()
        self._put(self._first, (future, fn, args, kwargs, True))
        return future

    def submit_async(self, fn: Callable[..., Any], /, *args: Any, first: bool = False, durable: bool = True,
                     alone: bool = False) -> asyncio.Future[Any]:
        """Like `submit` (`first`: `submit_first`), from a coroutine: an asyncio future of the running loop, settled
        after the COMMIT together with the round's other results for that loop. `durable=False`: the caller tells
        nobody what the call did (a Slack click's ack), so its round need not wait for an fsync; whatever tells
        them later waits for `made_durable` first. `alone` (with `durable=False`): the caller is alone (no other
        person's call is on its way), so run it on the caller's thread if the writer has nothing to do (`_inline`)."""
        loop = asyncio.get_running_loop()
        if alone and not durable:
            done = self._inline(loop, fn, args)
            if done is not None:
                return done
        waiter = LoopWaiter(loop)
        self._put(self._first if first else self._then, (waiter, fn, args, {}, durable))
        return waiter.future

    def _inline(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any],
                args: tuple[Any, ...]) -> asyncio.Future[Any] | None:
        """A lone person's call that waits for no disk, while the writer has nothing to do: run it on the caller's
        thread (the event loop), as a round of its own: nothing else is waiting for the loop, and the two thread
        hops to the writer and back cost about as much as a decision (see the module's docstring). None: the
        writer is busy or has calls waiting; then the call waits its turn with them."""
        with self._ready:
            if self._first or self._then or self._shutdown or not self._turn.acquire(blocking=False):
                return None
        try:
            (ok, value), = self._run([(fn, args, {}, False)])
        finally:
            self._turn.release()
        future = loop.create_future()
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
        return future

    async def made_durable(self) -> None:
        """Return once every round committed so far would survive a power cut (at once if it would already).
        Callers waiting together share one empty durable call (after a burst, each click's reply asks at once)."""
        wanted = self.committed
        while self.durable_through < wanted:
            barrier = self._barrier
            if barrier is None or barrier.done() or barrier.get_loop() is not asyncio.get_running_loop():
                barrier = self._barrier = self.submit_async(_nothing, first=True)
            # shielded: one caller giving up (its task cancelled) must not cancel the others' wait
            await asyncio.shield(barrier)

    def _put(self, line: collections.deque[Call], call: Call) -> None:
        with self._ready:
            if self._shutdown:
                raise RuntimeError("the database writer is shut down")
            line.append(call)
            self._ready.notify()

    @property
    def checkpoints(self) -> int:
        """WAL checkpoints run so far (by the checkpointer)."""
        return self.checkpointer.done

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._ready:
            self._shutdown = True
            self._ready.notify()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()
        self.checkpointer.stop(wait=wait)

    def _work(self) -> None:
        try:
            while True:
                with self._ready:
                    while not (self._first or self._then or self._shutdown):
                        self._ready.wait()
                    if self._shutdown and not (self._first or self._then):
                        return  # what was submitted before the shutdown has run
                    group: list[Call] = []
                    for line in (self._first, self._then):
                        while line and len(group) < self._max_group:
                            group.append(line.popleft())
                self._round([g for g in group if g[0].set_running_or_notify_cancel()])
        finally:
            with self._turn:
                self._close()

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._db.engine.connect()
            conn.info["write"] = True
            raw = conn.connection.driver_connection
            # A round's units are SAVEPOINTs; a decision changes ~20 pages, more than SQLite keeps of a
            # savepoint's journal in memory by default (64 KiB), so it spilled to a temp file on every click.
            # Only the writer's connection: an export's sort (another connection) must not grow in memory.
            raw.execute("PRAGMA temp_store=MEMORY")  # type: ignore[union-attr]
            # SQLite checkpoints in the COMMIT that crosses 1,000 WAL pages, on the committing thread; a round
            # run inline is on the event loop, which must not copy pages and fsync. The checkpointer does it.
            raw.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
            if self.defers_sync:
                raw.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
                self._wal = _main_file(raw) + "-wal"
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _round(self, group: list[Call]) -> None:
        if not group:
            return
        with self._turn:
            results = self._run([call[1:] for call in group])
        _answer(group, results)

    def _run(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], bool]]
             ) -> list[tuple[bool, Any]]:
        """One round (the caller holds the turn): the calls in one transaction, each result or error; every call
        gets the error if BEGIN, COMMIT or the sync failed (nothing of the round may be relied on)."""
        results: list[tuple[bool, Any]] = []
        try:
            conn = self._connection()
            with conn.begin():
                self._db._local.group = conn
                raw = conn.connection.driver_connection
                try:
                    for fn, args, kwargs, _durable in calls:
                        try:
                            results.append((True, fn(*args, **kwargs)))
                        except BaseException as exc:  # the call's own units were undone; others stand
                            results.append((False, exc))
                        if not raw.in_transaction:  # type: ignore[union-attr]
                            # SQLite gave the whole transaction up (an I/O error, a full disk): the
                            # calls before this one are undone too; none of the round may say it worked
                            raise sa.exc.OperationalError("group commit", None,
                                                          Exception("the transaction was rolled back"))
                finally:
                    self._db._local.group = None
            self.committed += 1
            self._since_checkpoint += len(calls)
            if self._since_checkpoint >= CHECKPOINT_EVERY and not self._db.in_memory:
                self._since_checkpoint = 0
                self.checkpointer.wanted()
            if not self.defers_sync:
                self.durable_through = self.committed
            elif any(call[3] for call in calls):
                self._sync()
        except BaseException as exc:
            self._close()  # a fresh connection for the next round
            return [(False, exc)] * len(calls)
        return results

    def _sync(self) -> None:
        """Make every committed round durable: what SQLite does at each COMMIT when synchronous=FULL (WAL), done
        once for the rounds committed since the last sync. No WAL file: everything is checkpointed (synced)."""
        assert self._wal is not None
        through = self.committed
        try:
            _fsync(self._wal, data_only=True)
        except FileNotFoundError:
            pass
        if not self._directory_synced:  # a new WAL file's directory entry is part of what must survive
            _fsync(os.path.dirname(self._wal) or ".")
            self._directory_synced = True
        self.durable_through = through


def _nothing() -> None:
    pass


def _main_file(raw: Any) -> str:
    """The path of the connection's main database file."""
    for _seq, name, path in raw.execute("PRAGMA database_list"):
        if name == "main":
            return str(path)
    raise RuntimeError("no main database")


def _fsync(path: str, *, data_only: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        (os.fdatasync if data_only else os.fsync)(fd)
    finally:
        os.close(fd)


class Database:
    """One per process: owns the engine; hands out units of work."""

    def __init__(self, url: str, *, synchronous: str = "FULL", echo: bool = False, pool_size: int = 5) -> None:
        self.url = normalize_url(url)
        self.pool_size = pool_size
        self.synchronous = synchronous.upper()
        self.in_memory = _in_memory(self.url)
        if self.url.startswith("sqlite"):
            self.engine = _sqlite_engine(self.url, synchronous, echo)
        else:
            self.engine = sa.create_engine(self.url, echo=echo, pool_size=pool_size)
            if self.engine.dialect.driver == "psycopg":
                _connect_for_the_loop(self.engine)
            _ping_when_idle(self.engine)
            postgres_path.sync_for_sqlalchemy(self.engine)
        # PostgreSQL: a write unit of work runs in psycopg's pipeline mode (see the module's docstring); False: each
        # statement waits for its answer (tests/integration/test_pipeline.py compares the two)
        self.pipelined = True
        self._local = threading.local()  # `group`: the group-commit connection of the writer thread, if any
        self._writer: Executor | LoopWriter | None = None
        self._writer_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def writer(self) -> Executor | LoopWriter:
        """Where async code runs use cases (see the module's docstring); made on first use."""
        with self._writer_lock:
            if self._writer is None:
                if self.dialect == "sqlite":
                    self._writer = GroupCommitWriter(self)
                elif self.engine.dialect.driver == "psycopg":
                    self._writer = LoopWriter(slots=self.pool_size)
                else:
                    self._writer = ThreadPoolExecutor(max_workers=max(4, self.pool_size),
                                                      thread_name_prefix="madoguchi-db")
            return self._writer

    @contextmanager
    def unit_of_work(self, *, write: bool = True, transaction: bool = True) -> Iterator[Connection]:
        """One connection, one transaction: commits when the block ends, rolls back if it raises. On the
        writer thread of SQLite, a SAVEPOINT in the round's shared transaction instead (committed with it).
        `transaction=False` (reads only): on PostgreSQL, no transaction of its own (see the module's docstring)."""
        group: Connection | None = getattr(self._local, "group", None)
        if group is not None:
            with self._savepoint(group, write) as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.info["write"] = write
            if self.dialect == "postgresql":
                if not (write or transaction):  # see the module's docstring
                    conn.execution_options(isolation_level="AUTOCOMMIT")  # no BEGIN / COMMIT round trips
                elif write and self.pipelined:  # see the module's docstring
                    with postgres_path.pipelined_transaction(conn):
                        yield conn
                    return
            with conn.begin():
                yield conn

    @contextmanager
    def _savepoint(self, conn: Connection, write: bool) -> Iterator[Connection]:
        if "unit" in conn.info:
            raise RuntimeError("a unit of work inside a unit of work")
        raw = conn.connection.driver_connection
        unit = _Unit("uow")
        raw.execute(f"SAVEPOINT {unit.name}")  # type: ignore[union-attr]
        conn.info["unit"] = unit
        try:
            yield conn
        except BaseException:
            if not unit.rolled_back:
                raw.execute(f"ROLLBACK TO {unit.name}")  # type: ignore[union-attr]
            raise
        finally:
            del conn.info["unit"]
            raw.execute(f"RELEASE {unit.name}")  # type: ignore[union-attr]

    def rollback(self, conn: Connection) -> None:
        """Undo the unit of work `conn` belongs to (a refusal leaves no trace): its SAVEPOINT in a group commit,
        else its transaction. Use this, not `conn.rollback()`, which would undo the whole round."""
        unit: _Unit | None = conn.info.get("unit")
        if unit is None:
            if "pipeline" in conn.info:
                postgres_path.rollback(conn)
            else:
                conn.rollback()
            return
        conn.connection.driver_connection.execute(f"ROLLBACK TO {unit.name}")  # type: ignore[union-attr]
        unit.rolled_back = True

    def create_all(self) -> None:
        """Create the schema directly (tests of pure SQL only; the product uses Alembic: `madoguchi db upgrade`)."""
        metadata.create_all(self.engine)

    def dispose(self) -> None:
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)
        self.engine.dispose()
