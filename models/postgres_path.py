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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

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
            make_reader: Callable[..., Reader]) -> tuple[list[Any], int] | None:
    """Run the plan on psycopg's cursor: (rows, rowcount); None when SQLAlchemy should run it instead."""
    if many and (plan_.columns or plan_.expanding):
        return None  # executemany with RETURNING, or IN lists per row: SQLAlchemy's own batching
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    sql = plan_.sql
    try:
        if many:
            cursor.executemany(sql, [plan_.values(given) for given in rows_in])
            return [], max(cursor.rowcount, 0)
        given = rows_in[0]
        sql = plan_.sql_for(given)
        cursor.execute(sql, plan_.values(given))
        if not plan_.columns:
            return [], max(cursor.rowcount, 0)
        read = plan_.reader(conn.dialect, cursor, make_reader)
        rows = list(map(read, cursor.fetchall()))
        return rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, rows_in, exc, conn.dialect.loaded_dbapi.Error,
                                         dialect=conn.dialect) from exc
    finally:
        cursor.close()
