"""The PostgreSQL counterpart of the SQLite fast path (`models.statements`): a prepared Core statement compiled once
per shape by SQLAlchemy's psycopg dialect (its SQL, with the casts it renders), then run straight on psycopg's
cursor with the bind and result processors of its column types, so rows go in and come out exactly as through
`Connection.execute`.

Why: measured here (loopback, a SELECT of one employee by id), `Connection.execute` with a cached statement costs
112 us of CPU, psycopg's own cursor 46 us; a click on PostgreSQL runs about 25 statements and the delivery of its news
as many again, so the server spent 12-16 ms of CPU per click against 4 on SQLite (`bench/slack_latency.py`).

What this path leaves to SQLAlchemy (`plan_for` answers None): text() statements, statements with Python-side
defaults or literal-execute parameters, and executemany with RETURNING (SQLAlchemy's insertmanyvalues batches them).
A psycopg error is raised as SQLAlchemy's own exception class for it (`DBAPIError.instance`), as through
`Connection.execute`.

A unit of work that writes runs in psycopg's pipeline mode (`pipelined_transaction`): each statement is sent at once,
and the unit waits for the server only where it needs an answer: the rows of a SELECT or a RETURNING, the rowcount of
a conditional update (`PendingCount`, asked for when a caller reads it), and the COMMIT at the end. BEGIN goes out with
the first statement, and the writes nobody reads back (outbox rows, nudges, audit events, a step's new status) go out
together with COMMIT. A decision (a click) waited for the server 21 times, now 10; a delivery row's record (BEGIN,
UPDATE, COMMIT) 3 times, now once. Measured in-process, clicks alternating between the two modes in one process
(`Database.pipelined`): 4.4-5.6 -> 3.9-4.4 ms a decision, its CPU 7-10 % less (psycopg's Python code per statement
stays: most of a PostgreSQL decision's CPU).
- An error is raised where the unit next waits: a statement that fails while nobody waits for it (a duplicate key in an
  INSERT) raises at the next read, rowcount or COMMIT, and the whole unit is rolled back, as before; the server skips
  what was sent after it. No use case catches an error of one statement and goes on.
- A statement SQLAlchemy runs itself (text(), defaults on the Python side) is synced at once (`sync_for_sqlalchemy`):
  it reads the answer's description right after sending.
- Reads without a transaction (autocommit) and read units are not pipelined: each of their statements needs its answer,
  and a server-side cursor (an export's stream) cannot run in a pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

Processor = Callable[[Any], Any] | None
Reader = Callable[[Sequence[Any]], Any]


class PostgresPlan:
    """A statement compiled for psycopg: its SQL (per shape of its IN lists), the parameters it takes with their
    defaults and bind processors, and (made at its first run, from the driver's column types) its row reader."""

    __slots__ = ("compiled", "sql", "params", "expanding", "columns", "keys", "read", "_shapes")

    def __init__(self, compiled: Any, dialect: Dialect, columns: list[Any]) -> None:
        self.compiled, self.sql = compiled, compiled.string
        # rendered name -> (default, processor); the callers pass values by the rendered name (a bindparam's key)
        self.params: dict[str, tuple[Any, Processor]] = {
            name: (bind.effective_value, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in compiled.bind_names.items()}
        self.expanding = frozenset(name for bind, name in compiled.bind_names.items() if bind.expanding)
        self.columns = columns
        self.keys = tuple(str(c.key) for c in columns)
        self.read: Reader | None = None
        self._shapes: dict[tuple[int, ...], str] = {}

    def values(self, given: dict[str, Any]) -> dict[str, Any]:
        """The driver's parameters: each value (or the statement's own literal) through its bind processor; an IN
        list's items as name_1, name_2... as SQLAlchemy renders them."""
        out: dict[str, Any] = {}
        for name, (default, process) in self.params.items():
            value = given.get(name, default)
            if name in self.expanding:
                for i, item in enumerate(value or (), 1):
                    out[f"{name}_{i}"] = process(item) if process is not None else item
            else:
                out[name] = process(value) if process is not None else value
        return out

    def sql_for(self, given: dict[str, Any]) -> str:
        """The SQL for these values: the plan's own, or rendered once per length of each IN list."""
        if not self.expanding:
            return self.sql
        lengths = tuple(len(given.get(name, self.params[name][0]) or ()) for name in sorted(self.expanding))
        sql = self._shapes.get(lengths)
        if sql is None:
            shape: dict[str, Any] = {name: None for name in self.params}
            shape.update({name: [None] * n for name, n in zip(sorted(self.expanding), lengths, strict=True)})
            sql = self._shapes[lengths] = self.compiled.construct_expanded_state(shape).statement
        return sql

    def reader(self, dialect: Dialect, cursor: Any, make: Callable[..., Reader]) -> Reader:
        """The row reader, made at the first run: result processors need the driver's type of each column. Only
        then is the cursor asked for its description: psycopg builds a Column object per column each time."""
        if self.read is None:
            readers = tuple(c.type.dialect_impl(dialect).result_processor(dialect, d.type_code)
                            for c, d in zip(self.columns, cursor.description, strict=True))
            self.read = make(self.keys, readers)
        return self.read


def plan(stmt: Any, dialect: Dialect, keys: tuple[str, ...], columns: list[Any]) -> PostgresPlan | None:
    """The plan of a statement whose rows have `columns` (`keys`: an INSERT's given columns), or None for what
    SQLAlchemy should run (see the module's docstring; the caller has left out text() and Python defaults)."""
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if isinstance(stmt, sa.Insert) else None)
    if compiled.literal_execute_params or compiled.positiontup:  # rendered per call, or not psycopg's pyformat
        return None
    return PostgresPlan(compiled, dialect, columns)


def execute(conn: Connection, plan_: PostgresPlan, rows_in: list[dict[str, Any]], many: bool,
            make_reader: Callable[..., Reader]) -> tuple[list[Any], Any] | None:
    """Run the plan on psycopg's cursor: (rows, rowcount); None when SQLAlchemy should run it instead."""
    if many and (plan_.columns or plan_.expanding):
        return None  # executemany with RETURNING, or IN lists per row: SQLAlchemy's own batching
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    pipeline = conn.info.get("pipeline")
    cursor = dbapi.cursor()
    sql = plan_.sql
    try:
        if many:
            cursor.executemany(sql, [plan_.values(given) for given in rows_in])
            if pipeline is not None:
                return [], PendingCount(cursor, pipeline, conn, sql)
            return [], max(cursor.rowcount, 0)
        given = rows_in[0]
        sql = plan_.sql_for(given)
        cursor.execute(sql, plan_.values(given))
        if not plan_.columns:
            if pipeline is not None:  # sent; its answer comes with the next one read, or with COMMIT
                return [], PendingCount(cursor, pipeline, conn, sql)
            return [], max(cursor.rowcount, 0)
        fetched = cursor.fetchall()  # in a pipeline, this waits for the answer: the reader needs its description
        read = plan_.reader(conn.dialect, cursor, make_reader)
        rows = list(map(read, fetched))
        return rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, rows_in, exc, conn.dialect.loaded_dbapi.Error,
                                         dialect=conn.dialect) from exc
    finally:
        if pipeline is None:  # in a pipeline the cursor is still to receive its answer (PendingCount)
            cursor.close()


def send(conn: Connection, plan_: PostgresPlan, given: dict[str, Any],
         make_reader: Callable[..., Reader]) -> Callable[[], tuple[list[Any], int]] | None:
    """Send a query whose rows are read later, in a pipeline (`statements.run_later`): returns what reads them, or
    None when it cannot be sent so (no pipeline, or no rows to read): the caller runs it at once instead."""
    pipeline = conn.info.get("pipeline")
    if pipeline is None or not plan_.columns:
        return None
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    sql = plan_.sql_for(given)
    with _wrapped(conn, sql):
        cursor.execute(sql, plan_.values(given))

    def rows() -> tuple[list[Any], int]:
        with _wrapped(conn, sql):  # this statement's error, or that of one sent before it
            fetched = cursor.fetchall()  # waits for the answers up to this one (one wait for several sent together)
        read = plan_.reader(conn.dialect, cursor, make_reader)
        found = list(map(read, fetched))
        return found, cursor.rowcount if cursor.rowcount >= 0 else len(found)

    return rows


class PendingCount:
    """The rowcount of a statement sent in a pipeline, known once the pipeline has synced: `FastResult.rowcount`
    asks for it (`count()`) only when a caller reads it (a conditional update checking that it won)."""

    __slots__ = ("cursor", "pipeline", "conn", "sql")

    def __init__(self, cursor: Any, pipeline: Any, conn: Connection, sql: str) -> None:
        self.cursor, self.pipeline, self.conn, self.sql = cursor, pipeline, conn, sql

    def count(self) -> int:
        with _wrapped(self.conn, self.sql):  # this statement's error, or that of one sent before it
            self.pipeline.sync()
        return max(self.cursor.rowcount, 0)


@contextmanager
def pipelined_transaction(conn: Connection) -> Iterator[None]:
    """One transaction in psycopg's pipeline mode (see the module's docstring): BEGIN, the block's statements and
    COMMIT are sent as they come, and the block waits for the server only where it reads an answer; the last wait
    is for COMMIT. An error in the block (or in a statement it sent) rolls the transaction back and is raised.

    BEGIN and COMMIT are ours, on a connection in autocommit mode: psycopg's own BEGIN waits for its answer in a
    pipeline (it must know that the transaction started), and its COMMIT waits, then the pipeline's end waits
    again. SQLAlchemy's transaction on top is an empty one (autocommit: its commit and rollback send nothing)."""
    conn.execution_options(isolation_level="AUTOCOMMIT")  # SQLAlchemy resets it when the connection goes back
    raw: Any = conn.connection.driver_connection
    error = conn.dialect.loaded_dbapi.Error
    with _wrapped(conn, "COMMIT"), raw.pipeline() as pipeline:
        conn.info["pipeline"] = pipeline  # the connection's info outlives the checkout: removed below
        try:
            raw.execute("BEGIN")
            try:
                yield
            except BaseException:
                try:
                    pipeline.sync()  # the answers still owed, and out of an aborted pipeline
                except error:
                    pass  # the statement that failed raised already, or the block raised for its own reason
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
        finally:
            del conn.info["pipeline"]


def rollback(conn: Connection) -> None:
    """Undo what a pipelined transaction did so far (a refusal); it goes on as a new one, as after
    `Connection.rollback()` a new transaction begins with the next statement."""
    raw: Any = conn.connection.driver_connection
    with _wrapped(conn, "ROLLBACK"):
        conn.info["pipeline"].sync()
        raw.execute("ROLLBACK")
        raw.execute("BEGIN")


@contextmanager
def _wrapped(conn: Connection, sql: str) -> Iterator[None]:
    """A psycopg error raised by the block, as SQLAlchemy's exception class for it (as `Connection.execute` raises)."""
    error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, error, dialect=conn.dialect) from exc


def sync_for_sqlalchemy(engine: Engine) -> None:
    """A statement run through `Connection.execute` inside a pipeline is synced at once: SQLAlchemy reads its
    description and rowcount right after executing it, before psycopg would have its answer."""

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _synced(conn: Connection, cursor: Any, statement: Any, parameters: Any, context: Any,
                executemany: bool) -> None:
        pipeline = conn.info.get("pipeline")
        if pipeline is not None:
            pipeline.sync()
