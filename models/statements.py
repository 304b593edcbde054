"""Running our prepared Core statements with as little machinery per call as possible.

SQLAlchemy Core builds, types and compiles every statement (the Table definitions stay the single truth), but
on SQLite — the embedded default, where a use case's cost is CPU, not network — a statement built once is
compiled once per shape and then run straight on the driver's cursor, with the bind and result processors of
its column types (so values are stored exactly as SQLAlchemy would store them). Measured here: a SELECT by id
costs 46 us through `Connection.execute` with a cached statement and 7 us on the cursor. Other dialects, and
anything this fast path does not handle, go through `Connection.execute` unchanged.

Per call, what is left is kept small (a use case runs about 15 statements and binds about 80 values): each plan
has one generated function that turns a parameter dict into the driver's values and one that turns the driver's
tuples into rows (tuples with names: `Request(*row)` costs no mapping), UTCDateTime has one-step processors, and
a text() statement whose values are plain strings and numbers (the counter upsert) runs on the cursor as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.base import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.processors import str_to_datetime

from models import postgres_path
from models.base import UTCDateTime

Processor = Callable[[Any], Any] | None


class FastRow(tuple[Any, ...]):
    """A result row: a tuple of its values in column order (`row[0]`, `Request(*row)`), plus `row.name` and
    `row._mapping["name"]` as on SQLAlchemy's Row. Each plan makes a subclass that knows its column keys."""

    __slots__ = ()
    _keys: tuple[str, ...] = ()
    _index: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._index[name]]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._keys, self, strict=True))


class FastResult:
    """The part of SQLAlchemy's Result our models use."""

    __slots__ = ("_rows", "_count")

    def __init__(self, rows: list[FastRow], rowcount: int | postgres_path.PendingCount) -> None:
        self._rows = rows
        self._count = rowcount

    @property
    def rowcount(self) -> int:
        count = self._count
        if type(count) is not int:  # a statement sent in a pipeline (PostgreSQL): its answer is waited for now
            count = self._count = count.count()  # type: ignore[union-attr]
        return count  # type: ignore[return-value]

    def __iter__(self) -> Iterator[FastRow]:
        return iter(self._rows)

    def first(self) -> FastRow | None:
        return self._rows[0] if self._rows else None

    def one(self) -> FastRow:
        if len(self._rows) != 1:
            raise sa.exc.NoResultFound() if not self._rows else sa.exc.MultipleResultsFound()
        return self._rows[0]

    def all(self) -> list[FastRow]:
        return self._rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]


# ---------------------------------------------------------------------------------------------- UTC instants
# UTCDateTime on SQLite is two layers of SQLAlchemy processors per value (the TypeDecorator's astimezone and
# replace, then DATETIME's %-formatting of a dict): about 2 us a value, and a use case binds `now` a dozen times.
# These do the same in one step; tests/integration/test_statements.py compares them with SQLAlchemy's own.
_UTC_MEMO: tuple[datetime | None, str | None] = (None, None)


def _utc_text(value: datetime | None) -> str | None:
    """What SQLAlchemy stores for an instant on SQLite: its UTC wall time, 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    global _UTC_MEMO
    if value is None:
        return None
    memo = _UTC_MEMO  # one read: another thread may replace the pair, never half of it
    # the very object bound last (a use case binds its `now` many times). Not `==`: two wall times of one zone
    # that differ only by fold compare equal, yet are different instants. The memo holds the object, so its id
    # cannot be reused by another.
    if value is memo[0]:
        return memo[1]
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
    # isoformat pads the year to 4 digits like DATETIME's format; [:26] drops the "+00:00" of the UTC value
    text = value.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    _UTC_MEMO = (value, text)
    return text


# Stored text -> instant, for the texts read lately: a use case reads the same few instants again and again (its
# request's, its steps' times: nine per decision), and a datetime is immutable, so one object can serve them all.
_UTC_READ: dict[str, datetime] = {}
_UTC_READ_MAX = 4096  # then it starts again: the texts read lately are those of the requests being worked on


def _utc_value(value: str | None) -> datetime | None:
    """What SQLAlchemy reads back for an instant on SQLite: DATETIME's parse, then UTCDateTime's zone."""
    if value is None:
        return None
    instant = _UTC_READ.get(value)
    if instant is None:
        parsed = str_to_datetime(value)
        assert parsed is not None
        instant = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if len(_UTC_READ) >= _UTC_READ_MAX:
            _UTC_READ.clear()  # another thread's lookup meanwhile simply misses
        _UTC_READ[value] = instant
    return instant


def _processors(type_: Any, dialect: Dialect, coltype: Any = None) -> tuple[Processor, Processor]:
    """(bind, result) processors of a column type on this dialect: SQLAlchemy's own, or the one-step
    equivalents above where the type is UTCDateTime over SQLite's DATETIME in its default format."""
    impl = type_.dialect_impl(dialect)
    if isinstance(type_, UTCDateTime):
        inner = impl.impl_instance
        if (type(inner) is SQLITE_DATETIME and not inner._reg
                and inner._storage_format == SQLITE_DATETIME._storage_format):
            return _utc_text, _utc_value
    return impl.bind_processor(dialect), impl.result_processor(dialect, coltype)


# ---------------------------------------------------------------------------------------------- plans
class _Plan:
    """A statement compiled for SQLite, with the functions that turn parameters into the driver's positional
    values (`bind`) and the driver's tuples into rows (`read`). With expanding binds (IN lists) the SQL depends
    on the lists' lengths: `sql_for` renders it once per shape."""

    __slots__ = ("sql", "names", "defaults", "expanding", "bind", "read", "keys", "untyped", "_shapes")

    def __init__(self, sql: str, names: tuple[str, ...], binders: tuple[Processor, ...],
                 defaults: tuple[Any, ...], expanding: frozenset[str], keys: tuple[str, ...],
                 readers: tuple[Processor, ...], untyped: bool) -> None:
        self.sql, self.names, self.defaults = sql, names, defaults
        self.expanding, self.keys, self.untyped = expanding, keys, untyped
        self.bind = _make_binder(names, binders, defaults, expanding)
        self.read = _make_reader(keys, readers) if keys else None
        self._shapes: dict[tuple[int, ...], str] = {}

    def sql_for(self, params: dict[str, Any]) -> str:
        """The SQL for these values: the plan's own, or with each IN list's markers for its length."""
        if not self.expanding:
            return self.sql
        lengths = tuple(len(params.get(name, default) or ()) for name, default in zip(self.names, self.defaults,
                                                                                      strict=True)
                        if name in self.expanding)
        sql = self._shapes.get(lengths)
        if sql is None:
            sql = self.sql
            expanded = (name for name in self.names if name in self.expanding)
            for name, length in zip(expanded, lengths, strict=True):
                # an empty IN matches nothing, as SQLAlchemy renders it
                sql = sql.replace(f"(__[POSTCOMPILE_{name}])",
                                  "(" + ", ".join("?" * length) + ")" if length else "(NULL) AND 1 != 1", 1)
            self._shapes[lengths] = sql
        return sql


def _make_binder(names: tuple[str, ...], binders: tuple[Processor, ...], defaults: tuple[Any, ...],
                 expanding: frozenset[str]) -> Callable[[dict[str, Any]], list[Any]]:
    """`params -> [values in position order]` (an IN list's items in its place) as ONE generated expression: no
    loop and no test of which position has a processor, per call (a use case binds about 80 values)."""
    env: dict[str, Any] = {}
    parts = []
    for i, (name, binder, default) in enumerate(zip(names, binders, defaults, strict=True)):
        env[f"d{i}"] = default
        get = f"g({name!r}, d{i})"  # a value the statement carries itself (a literal) unless given
        if binder is not None:
            env[f"b{i}"] = binder
        if name in expanding:
            parts.append(f"*map(b{i}, {get} or ())" if binder is not None else f"*({get} or ())")
        else:
            parts.append(f"b{i}({get})" if binder is not None else get)
    source = f"def bind(params):\n    g = params.get\n    return [{', '.join(parts)}]\n"
    exec(source, env)  # names and positions come from our compiled statement, never from data
    return env["bind"]  # type: ignore[no-any-return]


def _make_reader(keys: tuple[str, ...], readers: tuple[Processor, ...]) -> Callable[[Sequence[Any]], FastRow]:
    """`driver tuple -> FastRow`: the row class of this plan, and the result processors where there are some."""
    row_class = type("FastRow", (FastRow,), {"__slots__": (), "_keys": keys,
                                             "_index": {k: i for i, k in enumerate(keys)}})
    if not any(readers):
        return row_class  # the driver's tuple as it is
    env: dict[str, Any] = {"Row": row_class}
    parts = []
    for i, reader in enumerate(readers):
        if reader is None:
            parts.append(f"raw[{i}]")
        else:
            env[f"r{i}"] = reader
            parts.append(f"r{i}(raw[{i}])")
    exec(f"def read(raw):\n    return Row(({', '.join(parts)},))\n", env)
    return env["read"]  # type: ignore[no-any-return]


_PLANS: dict[tuple[int, tuple[str, ...]], _Plan | None] = {}


def _python_defaults(stmt: Any, keys: Sequence[str]) -> bool:
    """True if executing would need a Python-side column default or onupdate that the fast path skips."""
    table = getattr(stmt, "table", None)
    if table is None or not isinstance(stmt, (sa.Insert, sa.Update)):
        return False
    given = set(keys) | {getattr(c, "key", c) for c in getattr(stmt, "_values", None) or {}}
    for column in table.c:
        default = column.default if isinstance(stmt, sa.Insert) else column.onupdate
        if default is not None and column.key not in given:
            return True
    return False


def _plan(stmt: Any, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
    untyped = isinstance(stmt, sa.TextClause)
    if untyped and stmt._bindparams and any(  # a text() parameter with a declared type: SQLAlchemy's job
            not isinstance(b.type, sa.types.NullType) for b in stmt._bindparams.values()):
        return None
    if _python_defaults(stmt, keys):
        return None
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if isinstance(stmt, sa.Insert) else None)
    names = tuple(compiled.positiontup or ())
    binds = compiled.binds
    binders = tuple(_processors(binds[n].type, dialect)[0] for n in names)
    defaults = tuple(binds[n].effective_value for n in names)
    # by the name the SQL uses: a literal list (`in_(("a", "b"))`) has an anonymous key but a rendered name
    expanding = frozenset(n for n in names if binds[n].expanding)
    # text(): the driver's description names the columns (see run)
    columns = [] if untyped else _result_columns(stmt)
    keys = tuple(str(c.key) for c in columns)
    if _clashes(keys):
        return None
    readers = tuple(_processors(c.type, dialect, None)[1] for c in columns)
    return _Plan(compiled.string, names, binders, defaults, expanding, keys, readers, untyped)


def _pg_plan(stmt: Any, dialect: Dialect, keys: tuple[str, ...]) -> postgres_path.PostgresPlan | None:
    if isinstance(stmt, sa.TextClause) or _python_defaults(stmt, keys):
        return None
    columns = _result_columns(stmt)
    return None if _clashes(str(c.key) for c in columns) else postgres_path.plan(stmt, dialect, keys, columns)


def _result_columns(stmt: Any) -> list[Any]:
    """The columns a statement's rows have: a SELECT's, or what an INSERT / UPDATE returns; none otherwise."""
    if isinstance(stmt, sa.Select):
        return list(stmt.selected_columns)
    if getattr(stmt, "_returning", None):
        return list(stmt.exported_columns)
    return []


def _clashes(keys: Iterable[str]) -> bool:
    """`row.count` would be tuple.count: rows with such a column are left to SQLAlchemy's Row."""
    return any(hasattr(FastRow, k) for k in keys)


_PLAIN = (int, str, float, type(None))


def _untyped_values_plain(rows: list[dict[str, Any]]) -> bool:
    """Whether a text() statement's values go to the driver as they are (SQLAlchemy would pick a type, and a
    processor, for anything else, such as a datetime)."""
    return all(type(v) in _PLAIN for row in rows for v in row.values())


def run(conn: Connection, stmt: Any, params: dict[str, Any] | list[dict[str, Any]] | None = None) -> Any:
    """Execute a prepared statement: straight on the SQLite cursor (or psycopg's: `_run_postgres`) when possible,
    else `conn.execute`."""
    if conn.dialect.name != "sqlite":
        if conn.dialect.driver == "psycopg":
            return _run_postgres(conn, stmt, params)
        return conn.execute(stmt, params) if params is not None else conn.execute(stmt)
    if type(params) is list:
        return _run_many(conn, stmt, params)
    values: dict[str, Any] = params or {}  # type: ignore[assignment]
    plan = _plan_for(conn, stmt, values)
    if plan is None or (plan.untyped and not _untyped_values_plain([values])):
        return conn.execute(stmt, params) if params is not None else conn.execute(stmt)
    # the pool's attribute (SQLAlchemy's driver_connection is two properties deep to the same sqlite3 object)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(plan.sql_for(values) if plan.expanding else plan.sql, plan.bind(values))
    if plan.read is None and not plan.untyped:
        return FastResult([], max(cursor.rowcount, 0))
    return _result(plan, cursor)


_PG_PLANS: dict[tuple[int, tuple[str, ...]], postgres_path.PostgresPlan | None] = {}


def _run_postgres(conn: Connection, stmt: Any, params: dict[str, Any] | list[dict[str, Any]] | None) -> Any:
    """`run` on PostgreSQL through psycopg: the statement on psycopg's cursor (models/postgres_path.py), or
    `conn.execute` for what that path leaves to SQLAlchemy."""
    many = type(params) is list
    rows_in: list[dict[str, Any]] = params if many else [params or {}]  # type: ignore[assignment,list-item]
    if rows_in:
        plan = _cached(_PG_PLANS, _pg_plan, conn, stmt, rows_in[0])
        if plan is not None:
            if many and 1 < len(rows_in) <= MULTI_ROWS and not plan.columns and isinstance(stmt, _INSERT):
                multi = _multi_values(conn, stmt, rows_in)
                if multi is not None:
                    return multi
            done = postgres_path.execute(conn, plan, rows_in, many, _make_reader)
            if done is not None:
                return FastResult(*done)
    return conn.execute(stmt, params) if params is not None else conn.execute(stmt)


class Later:
    """A query sent, whose rows are read when asked for (`run_later`)."""

    __slots__ = ("_read", "_result")

    def __init__(self, read: Callable[[], tuple[list[Any], int]] | None, result: Any = None) -> None:
        self._read, self._result = read, result

    def result(self) -> Any:
        """The query's result (a FastResult, or SQLAlchemy's), read once: on PostgreSQL the wait is here."""
        if self._read is not None:
            self._result = FastResult(*self._read())
            self._read = None
        return self._result


def run_later(conn: Connection, stmt: Any, params: dict[str, Any]) -> Later:
    """`run` for a query whose rows are needed a moment later. In a pipelined PostgreSQL unit it is sent now and its
    rows read at `Later.result()`: queries sent one after the other are then answered together, one wait for the
    server instead of one each (models/postgres_path.py). Elsewhere (SQLite) it runs at once, as `run` does."""
    if "pipeline" in conn.info:  # (a pipelined psycopg unit: models/postgres_path.py)
        plan = _cached(_PG_PLANS, _pg_plan, conn, stmt, params)
        if plan is not None:
            read = postgres_path.send(conn, plan, params, _make_reader)
            if read is not None:
                return Later(read)
    return Later(None, run(conn, stmt, params))


# An INSERT of a few rows at once on PostgreSQL (a decision's outbox rows, reminders, audit events) goes as ONE
# statement with a VALUES row each: psycopg's executemany sends a statement per row, each with its own parameters
# to adapt and its own answer to take in (a decision's 9 rows were 9 of its 23 statements). Larger batches (a
# broadcast to the whole company) stay executemany: a plan per row count is kept, so the counts are bounded.
MULTI_ROWS = 32
_PG_MULTI: dict[tuple[int, tuple[str, ...], int], postgres_path.PostgresPlan | None] = {}


def _multi_values(conn: Connection, stmt: Any, rows_in: list[dict[str, Any]]) -> FastResult | None:
    """`rows_in` inserted by one multi-row INSERT (see MULTI_ROWS); None if their keys differ (the caller runs
    them as before)."""
    keys = tuple(rows_in[0])
    if any(tuple(row) != keys for row in rows_in):
        return None
    n = len(rows_in)
    cache_key = (id(stmt), keys, n)
    try:
        plan = _PG_MULTI[cache_key]
    except KeyError:
        table = stmt.table
        try:
            rows = [{k: sa.bindparam(f"{k}_m{i}", type_=table.c[k].type) for k in keys} for i in range(n)]
            plan = postgres_path.plan(stmt.values(rows), conn.dialect, (), [])
        except (KeyError, sa.exc.SQLAlchemyError):  # a key that is no column, VALUES given already: as before
            plan = None
        _PG_MULTI[cache_key] = plan
    if plan is None:
        return None
    flat = {f"{k}_m{i}": value for i, row in enumerate(rows_in) for k, value in row.items()}
    done = postgres_path.execute(conn, plan, [flat], False, _make_reader)
    return FastResult(*done) if done is not None else None


def _run_many(conn: Connection, stmt: Any, rows_in: list[dict[str, Any]]) -> Any:
    """`run` with a list of parameter sets: one executemany where the driver can, else one statement each."""
    if not rows_in:
        return FastResult([], 0)
    plan = _plan_for(conn, stmt, rows_in[0])
    if plan is None or (plan.untyped and not _untyped_values_plain(rows_in)):
        return conn.execute(stmt, rows_in)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    bind = plan.bind
    if plan.read is None and not plan.expanding and not plan.untyped:
        cursor.executemany(plan.sql, list(map(bind, rows_in)))
        return FastResult([], cursor.rowcount)
    out: list[FastRow] = []
    count = 0
    for values in rows_in:
        cursor.execute(plan.sql_for(values), bind(values))
        result = _result(plan, cursor)
        out += result._rows
        count += result.rowcount
    return FastResult(out, count)


def _plan_for(conn: Connection, stmt: Any, first: dict[str, Any]) -> _Plan | None:
    return _cached(_PLANS, _plan, conn, stmt, first)


_P = TypeVar("_P")


def _cached(plans: dict[tuple[int, tuple[str, ...]], _P | None],
            make: Callable[[Any, Dialect, tuple[str, ...]], _P | None], conn: Connection, stmt: Any,
            first: dict[str, Any]) -> _P | None:
    """A statement's plan, made once per shape. An INSERT's SQL names the columns given: its plan is per set of
    keys (in the callers' order: one order per call site, so no sort on every call)."""
    cache_key = (id(stmt), tuple(first) if isinstance(stmt, _INSERT) else ())
    try:
        return plans[cache_key]
    except KeyError:
        plan = plans[cache_key] = make(stmt, conn.dialect, cache_key[1])
        _KEEP.append(stmt)  # the plan is keyed by id(): keep the statement alive so the id is never reused
        return plan


_INSERT = sa.Insert


def _result(plan: _Plan, cursor: Any) -> FastResult:
    read = plan.read
    if read is None and plan.untyped and cursor.description:  # text(): the driver names the columns
        read = plan.read = _make_reader(tuple(d[0] for d in cursor.description), ())
    if read is None:
        return FastResult([], max(cursor.rowcount, 0))
    rows = list(map(read, cursor.fetchall()))
    # a SELECT's rowcount is -1 on the driver; an UPDATE ... RETURNING's is known once its rows are fetched
    return FastResult(rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows))


_KEEP: list[Any] = []
