"""The database: engine set-up per backend and the unit of work (one connection, one transaction).

SQLite runs in WAL with synchronous=FULL (a decision a person was told about survives a power cut) and
writes begin IMMEDIATE, so a read-then-write use case never fails half way on a lock upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import models.audit  # noqa: F401  (registers the tables on metadata)
import models.broadcasts  # noqa: F401
import models.leave  # noqa: F401
import models.messaging  # noqa: F401
import models.people  # noqa: F401
import models.requests  # noqa: F401
from models.base import metadata

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def normalize_url(url: str) -> str:
    """Accept plain postgres URLs (as operators write them) and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_engine(url: str, synchronous: str, echo: bool) -> Engine:
    if synchronous.upper() not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"MADOGUCHI_SQLITE_SYNCHRONOUS must be one of {SYNCHRONOUS_LEVELS}, not {synchronous!r}")
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
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


class Database:
    """One per process: owns the engine; hands out units of work."""

    def __init__(self, url: str, *, synchronous: str = "FULL", echo: bool = False, pool_size: int = 5) -> None:
        self.url = normalize_url(url)
        if self.url.startswith("sqlite"):
            self.engine = _sqlite_engine(self.url, synchronous, echo)
        else:
            self.engine = sa.create_engine(self.url, echo=echo, pool_size=pool_size, pool_pre_ping=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[Connection]:
        """One connection, one transaction: commits when the block ends, rolls back if it raises."""
        with self.engine.connect() as conn:
            conn.info["write"] = write
            with conn.begin():
                yield conn

    def create_all(self) -> None:
        """Create the schema directly (tests of pure SQL only; the product uses Alembic: `madoguchi db upgrade`)."""
        metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
