"""Paid leave grants and the leave taken from them (the rows behind 年次有給休暇管理簿)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import Days, UTCDateTime, metadata

leave_grants = sa.Table(
    "leave_grants", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("employee_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False),
    sa.Column("granted_on", sa.Date, nullable=False),
    sa.Column("days", Days, nullable=False),
    sa.Column("expires_on", sa.Date, nullable=False),  # exclusive: usable while the day is before it
    sa.Column("source", sa.String(20), nullable=False),  # law | manual | import
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("employee_id", "granted_on", name="uq_leave_grants_employee_date"),
)

leave_taken = sa.Table(
    "leave_taken", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("employee_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False, index=True),
    sa.Column("grant_id", sa.Integer, sa.ForeignKey("leave_grants.id"), nullable=False, index=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=True),
    sa.Column("taken_on", sa.Date, nullable=False),
    sa.Column("unit", sa.String(10), nullable=False),  # full | am | pm | hourly
    sa.Column("hours", sa.Numeric(5, 2, asdecimal=True), nullable=True),
    sa.Column("days", Days, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class GrantRow:
    id: int
    employee_id: int
    granted_on: date
    days: Decimal
    expires_on: date
    source: str
    created_at: datetime


@dataclass(frozen=True)
class TakenRow:
    id: int
    employee_id: int
    grant_id: int
    request_id: int | None
    taken_on: date
    unit: str
    hours: Decimal | None
    days: Decimal
    created_at: datetime


def grants_of(conn: Connection, employee_id: int) -> list[GrantRow]:
    rows = conn.execute(sa.select(leave_grants).where(leave_grants.c.employee_id == employee_id)
                        .order_by(leave_grants.c.granted_on))
    return [GrantRow(**r._mapping) for r in rows]


def taken_of(conn: Connection, employee_id: int) -> list[TakenRow]:
    rows = conn.execute(sa.select(leave_taken).where(leave_taken.c.employee_id == employee_id)
                        .order_by(leave_taken.c.taken_on, leave_taken.c.id))
    return [TakenRow(**r._mapping) for r in rows]


def insert_grant_if_missing(conn: Connection, **values: Any) -> bool:
    """Insert a grant unless one exists for that employee and date (grants are idempotent)."""
    exists = conn.execute(sa.select(leave_grants.c.id).where(
        leave_grants.c.employee_id == values["employee_id"], leave_grants.c.granted_on == values["granted_on"],
    )).first()
    if exists:
        return False
    conn.execute(leave_grants.insert().values(**values))
    return True


def insert_taken(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(leave_taken.insert(), rows)
