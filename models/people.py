"""People and the org: departments, employees, chat identities, delegations."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import JSONType, UTCDateTime, metadata, prepared, utcnow
from models.statements import run

departments = sa.Table(
    "departments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(40), nullable=False, unique=True),
    sa.Column("name_ja", sa.String(200), nullable=False),
    sa.Column("name_en", sa.String(200), nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("departments.id"), nullable=True),
    # use_alter: departments and employees point at each other
    sa.Column("head_id", sa.Integer, sa.ForeignKey("employees.id", use_alter=True), nullable=True),
)

employees = sa.Table(
    "employees", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(40), nullable=True, unique=True),  # the employee number HR uses
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name_ja", sa.String(200), nullable=False),
    sa.Column("name_en", sa.String(200), nullable=False),
    sa.Column("department_id", sa.Integer, sa.ForeignKey("departments.id"), nullable=True),
    sa.Column("manager_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=True),
    sa.Column("substitute_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=True),
    sa.Column("locale", sa.String(8), nullable=False, default="ja"),  # the org CSV's (HR's) language
    # The person's own choice ("ja" | "en"; NULL = automatic) and what their chat platform last reported
    # (normalised; NULL = never reported). Org import writes neither: HR's file never overrides a person.
    sa.Column("locale_choice", sa.String(8), nullable=True),
    sa.Column("platform_locale", sa.String(8), nullable=True),
    # where messages go: "slack" or "teams" as the person (or an admin) chose; None: where they were last seen
    sa.Column("notify_platform", sa.String(20), nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False, default="Asia/Tokyo"),
    sa.Column("hire_date", sa.Date, nullable=True),
    sa.Column("work_days_per_week", sa.Integer, nullable=False, default=5),
    sa.Column("weekly_hours", sa.Numeric(5, 2, asdecimal=False), nullable=True),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)

# A table, not a list column: "who holds role X" is an indexed lookup even with 30,000 people.
employee_roles = sa.Table(
    "employee_roles", metadata,
    sa.Column("employee_id", sa.Integer, sa.ForeignKey("employees.id"), primary_key=True),
    sa.Column("role", sa.String(40), primary_key=True),
    sa.Index("ix_employee_roles_role", "role"),
)

chat_identities = sa.Table(
    "chat_identities", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("employee_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False, index=True),
    sa.Column("platform", sa.String(20), nullable=False),  # slack | teams | playground
    sa.Column("workspace", sa.String(100), nullable=False),  # Slack team id / Teams tenant id
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    # how the platform reaches this person unprompted (Teams: the conversation reference of their personal chat
    # with the bot); None where the user id is enough (Slack)
    sa.Column("address", JSONType, nullable=True),
    sa.UniqueConstraint("platform", "workspace", "user_id", name="uq_chat_identities_platform_user"),
)

delegations = sa.Table(
    "delegations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("from_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False, index=True),
    sa.Column("to_id", sa.Integer, sa.ForeignKey("employees.id"), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("request_types", JSONType, nullable=True),  # None = every type
    sa.Column("source", sa.String(20), nullable=False, default="manual"),  # manual | leave
    sa.Column("source_request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)


LocaleSource = Literal["choice", "platform", "org"]


@dataclass(frozen=True)
class Department:
    id: int
    code: str
    name_ja: str
    name_en: str
    parent_id: int | None
    head_id: int | None


@dataclass(frozen=True)
class Employee:
    id: int
    code: str | None
    email: str
    name_ja: str
    name_en: str
    department_id: int | None
    manager_id: int | None
    substitute_id: int | None
    roles: tuple[str, ...]
    org_locale: str  # the org CSV's language
    locale_choice: str | None  # the person's own choice; None = automatic
    platform_locale: str | None  # what their chat platform last reported
    timezone: str
    hire_date: date | None
    work_days_per_week: int
    weekly_hours: float | None
    active: bool

    @property
    def locale(self) -> str:
        """The language everything is shown to this person in: their choice, else what their chat platform
        reported, else the org's setting."""
        return self.locale_choice or self.platform_locale or self.org_locale

    @property
    def locale_source(self) -> LocaleSource:
        """Where `locale` comes from."""
        if self.locale_choice:
            return "choice"
        return "platform" if self.platform_locale else "org"

    def name(self, locale: str | None = "ja") -> str:
        return self.name_en if (locale or "ja").startswith("en") else self.name_ja

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Delegation:
    id: int
    from_id: int
    to_id: int
    starts_at: datetime
    ends_at: datetime
    request_types: tuple[str, ...] | None
    source: str
    source_request_id: int | None

    def covers(self, moment: datetime, request_type: str) -> bool:
        in_window = self.starts_at <= moment < self.ends_at
        return in_window and (self.request_types is None or request_type in self.request_types)


_EMPLOYEE_COLUMNS = [c for c in employees.c if c.name not in ("created_at", "updated_at")]


def _employee(row: sa.Row, roles: tuple[str, ...]) -> Employee:
    # by position (no mapping built per row): every employee SELECT starts with _EMPLOYEE_COLUMNS, checked below
    (id_, code, email, name_ja, name_en, department_id, manager_id, substitute_id, locale, locale_choice,
     platform_locale, _notify_platform, timezone, hire_date, work_days_per_week, weekly_hours,
     active) = row[:_EMPLOYEE_WIDTH]
    # the frozen dataclass filled directly, in its fields' order: its generated __init__ sets each of the 17 fields
    # through object.__setattr__ (2.6 us a person against 1; a submit reads five people)
    employee = object.__new__(Employee)
    employee.__dict__.update(
        id=id_, code=code, email=email, name_ja=name_ja, name_en=name_en, department_id=department_id,
        manager_id=manager_id, substitute_id=substitute_id, roles=roles, org_locale=locale,
        locale_choice=locale_choice, platform_locale=platform_locale, timezone=timezone, hire_date=hire_date,
        work_days_per_week=work_days_per_week, weekly_hours=weekly_hours, active=active,
    )
    return employee


_EMPLOYEE_WIDTH = len(_EMPLOYEE_COLUMNS)
if [f.name for f in fields(Employee)] != [
        "id", "code", "email", "name_ja", "name_en", "department_id", "manager_id", "substitute_id", "roles",
        "org_locale", "locale_choice", "platform_locale", "timezone", "hire_date", "work_days_per_week",
        "weekly_hours", "active"]:
    raise TypeError("Employee's fields changed: update _employee, which fills them directly")
if [c.name for c in _EMPLOYEE_COLUMNS] != [
        "id", "code", "email", "name_ja", "name_en", "department_id", "manager_id", "substitute_id", "locale",
        "locale_choice", "platform_locale", "notify_platform", "timezone", "hire_date", "work_days_per_week",
        "weekly_hours", "active"]:
    raise TypeError("employees' columns changed: update _employee, which reads them by position")


# Roles travel with the employee row as one comma-joined string: one query, not one per person.
_HELD = employee_roles.alias("held")
_ROLES = (
    sa.select(sa.func.aggregate_strings(_HELD.c.role, ","))
    .where(_HELD.c.employee_id == employees.c.id)
    .correlate(employees)
    .scalar_subquery()
    .label("roles")
)
_SELECT_EMPLOYEES = sa.select(*_EMPLOYEE_COLUMNS, _ROLES)


def _employee_row(row: sa.Row) -> Employee:
    roles = row[_EMPLOYEE_WIDTH]  # the column after the employee's own (_SELECT_EMPLOYEES)
    return _employee(row, tuple(sorted(roles.split(","))) if roles else ())


def get_employee(conn: Connection, employee_id: int) -> Employee | None:
    stmt = prepared(("get_employee",), lambda: _SELECT_EMPLOYEES.where(employees.c.id == sa.bindparam("id")))
    row = run(conn, stmt, {"id": employee_id}).first()
    return _employee_row(row) if row else None


def get_employees(conn: Connection, ids: set[int]) -> dict[int, Employee]:
    if not ids:
        return {}
    stmt = prepared(("get_employees",), lambda: _SELECT_EMPLOYEES.where(
        employees.c.id.in_(sa.bindparam("ids", expanding=True))))
    return {e.id: e for e in map(_employee_row, run(conn, stmt, {"ids": sorted(ids)}))}


def find_employee_by_email(conn: Connection, email: str) -> Employee | None:
    stmt = prepared(("employee_by_email",), lambda: _SELECT_EMPLOYEES.where(
        sa.func.lower(employees.c.email) == sa.bindparam("email")))
    row = run(conn, stmt, {"email": email.strip().lower()}).first()
    return _employee_row(row) if row else None


def all_employees(conn: Connection, *, active_only: bool = False) -> list[Employee]:
    query = _SELECT_EMPLOYEES.order_by(employees.c.id)
    if active_only:
        query = query.where(employees.c.active.is_(True))
    return [_employee_row(r) for r in conn.execute(query)]


def employees_with_role(conn: Connection, role: str) -> list[Employee]:
    """Active holders of a role, by employee id."""
    stmt = prepared(("employees_with_role",), lambda: _SELECT_EMPLOYEES
                    .join(employee_roles, employee_roles.c.employee_id == employees.c.id)
                    .where(employee_roles.c.role == sa.bindparam("role"), employees.c.active.is_(True))
                    .order_by(employees.c.id))
    return [_employee_row(r) for r in run(conn, stmt, {"role": role})]


def set_roles(conn: Connection, employee_id: int, roles: set[str]) -> None:
    conn.execute(employee_roles.delete().where(employee_roles.c.employee_id == employee_id))
    if roles:
        conn.execute(employee_roles.insert(), [{"employee_id": employee_id, "role": r} for r in sorted(roles)])


def get_department(conn: Connection, department_id: int) -> Department | None:
    stmt = prepared(("get_department",), lambda: sa.select(departments)
                    .where(departments.c.id == sa.bindparam("id")))
    row = run(conn, stmt, {"id": department_id}).first()
    return Department(**row._mapping) if row else None


def all_departments(conn: Connection) -> list[Department]:
    return [Department(**r._mapping) for r in conn.execute(sa.select(departments).order_by(departments.c.id))]


def insert_employee(conn: Connection, roles: set[str] | frozenset[str] = frozenset(), **values: object) -> int:
    employee_id = int(conn.execute(employees.insert().values(**values).returning(employees.c.id)).scalar_one())
    set_roles(conn, employee_id, set(roles))
    return employee_id


def insert_department(conn: Connection, **values: object) -> int:
    return int(conn.execute(departments.insert().values(**values).returning(departments.c.id)).scalar_one())


def _delegation(row: sa.Row) -> Delegation:
    m = row._mapping
    types = m["request_types"]
    return Delegation(
        id=m["id"], from_id=m["from_id"], to_id=m["to_id"], starts_at=m["starts_at"], ends_at=m["ends_at"],
        request_types=tuple(types) if types is not None else None, source=m["source"],
        source_request_id=m["source_request_id"],
    )


def delegations_from(conn: Connection, from_ids: set[int], moment: datetime) -> list[Delegation]:
    """Delegations in force at `moment` given by any of `from_ids`."""
    if not from_ids:
        return []
    stmt = prepared(("delegations_from",), lambda: sa.select(delegations).where(
        delegations.c.from_id.in_(sa.bindparam("ids", expanding=True)),
        delegations.c.starts_at <= sa.bindparam("at"),
        delegations.c.ends_at > sa.bindparam("at"),
        delegations.c.revoked_at.is_(None),
    ))
    rows = run(conn, stmt, {"ids": sorted(from_ids), "at": moment})
    return [_delegation(r) for r in rows]


def delegations_to(conn: Connection, to_id: int, moment: datetime) -> list[Delegation]:
    rows = conn.execute(sa.select(delegations).where(
        delegations.c.to_id == to_id,
        delegations.c.starts_at <= moment,
        delegations.c.ends_at > moment,
        delegations.c.revoked_at.is_(None),
    ))
    return [_delegation(r) for r in rows]


def delegations_involving(conn: Connection, person_id: int, after: datetime, limit: int) -> list[Delegation]:
    """Delegations given or received by a person that end after `after` (in force now or still to come)."""
    rows = conn.execute(sa.select(delegations).where(
        sa.or_(delegations.c.from_id == person_id, delegations.c.to_id == person_id),
        delegations.c.ends_at > after,
        delegations.c.revoked_at.is_(None),
    ).order_by(delegations.c.starts_at, delegations.c.id).limit(limit))
    return [_delegation(r) for r in rows]


def insert_delegation(conn: Connection, **values: object) -> int:
    return int(conn.execute(delegations.insert().values(**values).returning(delegations.c.id)).scalar_one())


def update_employee(conn: Connection, employee_id: int, **values: object) -> None:
    """Set the given columns of one employee (roles: see set_roles)."""
    conn.execute(employees.update().where(employees.c.id == employee_id).values(**values))


def set_locale_column(conn: Connection, employee_id: int, column: Literal["locale_choice", "platform_locale"],
                      value: str | None, now: datetime) -> bool:
    """Set one of a person's own language columns, only if it differs; True when it changed. Conditional, so
    two replicas writing the same value at once change it (and report a change) once."""
    target = employees.c[column]
    result = conn.execute(employees.update()
                          .where(employees.c.id == employee_id, target.is_distinct_from(value))
                          .values({column: value, "updated_at": now}))
    return result.rowcount == 1


def update_department(conn: Connection, department_id: int, **values: object) -> None:
    conn.execute(departments.update().where(departments.c.id == department_id).values(**values))


# ------------------------------------------------------------------------------------------------ chat identities

# Written as text: both SQLite and PostgreSQL speak this ON CONFLICT, and two replicas (or two clicks) meeting a
# new person at once must not fail on the unique key; the loser simply finds the winner's row.
# `now` is typed so it is stored as every other instant (untyped, SQLite's driver wrote its own "+00:00" form).
_REMEMBER_IDENTITY = sa.text(
    "INSERT INTO chat_identities (employee_id, platform, workspace, user_id, last_used_at) "
    "VALUES (:employee_id, :platform, :workspace, :user_id, :now) "
    "ON CONFLICT (platform, workspace, user_id) DO NOTHING"
).bindparams(sa.bindparam("now", type_=UTCDateTime()))


def employee_of_identity(conn: Connection, platform: str, workspace: str, user_id: str) -> Employee | None:
    """The employee a chat identity was matched to (active or not), or None when it is new."""
    stmt = prepared(("employee_of_identity",), lambda: _SELECT_EMPLOYEES
                    .join(chat_identities, chat_identities.c.employee_id == employees.c.id)
                    .where(chat_identities.c.platform == sa.bindparam("platform"),
                           chat_identities.c.workspace == sa.bindparam("workspace"),
                           chat_identities.c.user_id == sa.bindparam("user_id")))
    row = run(conn, stmt, {"platform": platform, "workspace": workspace, "user_id": user_id}).first()
    return _employee_row(row) if row else None


def identity_last_seen(conn: Connection, platform: str, workspace: str,
                       user_id: str) -> tuple[Employee, datetime | None] | None:
    """The employee a chat identity was matched to and when the identity was last seen; None when it is new."""
    stmt = prepared(("identity_last_seen",), lambda: sa.select(*_SELECT_EMPLOYEES.selected_columns,
                                                                chat_identities.c.last_used_at)
                    .join(chat_identities, chat_identities.c.employee_id == employees.c.id)
                    .where(chat_identities.c.platform == sa.bindparam("platform"),
                           chat_identities.c.workspace == sa.bindparam("workspace"),
                           chat_identities.c.user_id == sa.bindparam("user_id")))
    row = run(conn, stmt, {"platform": platform, "workspace": workspace, "user_id": user_id}).first()
    return (_employee_row(row), row._mapping["last_used_at"]) if row else None


def remember_identity(conn: Connection, employee_id: int, platform: str, workspace: str, user_id: str,
                      now: datetime) -> None:
    """Record that a chat identity is this employee; does nothing if the identity is already known."""
    conn.execute(_REMEMBER_IDENTITY, {"employee_id": employee_id, "platform": platform, "workspace": workspace,
                                      "user_id": user_id, "now": now})


def touch_identity(conn: Connection, platform: str, workspace: str, user_id: str, now: datetime) -> None:
    """Note when a chat identity was last seen."""
    conn.execute(chat_identities.update().where(
        chat_identities.c.platform == platform, chat_identities.c.workspace == workspace,
        chat_identities.c.user_id == user_id).values(last_used_at=now))


def identity_address(conn: Connection, platform: str, workspace: str, user_id: str) -> tuple[bool, dict | None]:
    """(whether the identity is known, the address stored for it)."""
    row = conn.execute(sa.select(chat_identities.c.address).where(
        chat_identities.c.platform == platform, chat_identities.c.workspace == workspace,
        chat_identities.c.user_id == user_id)).first()
    if row is None:
        return False, None
    return True, dict(row.address) if row.address else None


def set_identity_address(conn: Connection, platform: str, workspace: str, user_id: str, address: dict) -> None:
    conn.execute(chat_identities.update().where(
        chat_identities.c.platform == platform, chat_identities.c.workspace == workspace,
        chat_identities.c.user_id == user_id).values(address=address))


def notify_platform(conn: Connection, employee_id: int) -> str | None:
    """The platform the person's messages go to, as chosen; None: the one they last used."""
    row = conn.execute(sa.select(employees.c.notify_platform).where(employees.c.id == employee_id)).first()
    return str(row.notify_platform) if row is not None and row.notify_platform else None


def set_notify_platform(conn: Connection, employee_id: int, platform: str | None, now: datetime) -> bool:
    """Record the choice, only if it differs; True when it changed (conditional, as set_locale_column)."""
    result = conn.execute(employees.update()
                          .where(employees.c.id == employee_id, employees.c.notify_platform.is_distinct_from(platform))
                          .values(notify_platform=platform, updated_at=now))
    return result.rowcount == 1
