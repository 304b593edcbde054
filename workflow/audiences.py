"""Who a broadcast reaches: an Audience (everyone, departments, roles, people, or a saved query) checked and
resolved to active employees. Saved queries: "five_day_shortfall", everyone whose 年5日 window is open and who
has taken fewer than 5 days in it (workflow/leave.py's five-day status)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.engine import Connection

from config.i18n import LocalText
from config.policy import Policy
from models import people
from models.people import Employee
from workflow import leave
from workflow.calendar import BusinessCalendar
from workflow.leave_law import FiveDayStatus

AudienceKind = Literal["everyone", "departments", "roles", "people", "query"]
AUDIENCE_KINDS: tuple[AudienceKind, ...] = ("everyone", "departments", "roles", "people", "query")
FIVE_DAY_SHORTFALL = "five_day_shortfall"
QUERIES: dict[str, LocalText] = {
    FIVE_DAY_SHORTFALL: LocalText.of("年5日の取得が足りない人", "People short of the 5-day leave obligation"),
}

UNKNOWN_KIND = LocalText.of("送信先の種類を選んでください", "Choose who to send to")
NEEDS_VALUES = LocalText.of("送信先を入力してください（カンマ区切り）", "Name who to send to (comma separated)")
UNKNOWN_DEPARTMENTS = LocalText.of("部署コードが見つかりません: {names}", "Unknown department code(s): {names}")
UNKNOWN_ROLES = LocalText.of("その役割の人がいません: {names}", "Nobody holds the role(s): {names}")
UNKNOWN_PEOPLE = LocalText.of("在籍中の社員が見つかりません: {names}", "No active employee with: {names}")
UNKNOWN_QUERY = LocalText.of("保存済みの条件が見つかりません: {names}", "Unknown saved query: {names}")
NOBODY = LocalText.of("この条件に当てはまる人がいません", "Nobody matches this audience")


@dataclass(frozen=True)
class Audience:
    """Who to send to: `values` are department codes, role names, emails or a saved query's name."""

    kind: AudienceKind
    values: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "values": list(self.values)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(data["kind"], tuple(data.get("values") or ()))

    @classmethod
    def parse(cls, kind: str, text: str | None) -> Audience | None:
        """From a form or the CLI: "departments" and "SALES, BACK". None for an unknown kind."""
        if kind not in AUDIENCE_KINDS:
            return None
        values = tuple(v.strip() for v in (text or "").replace("、", ",").split(",") if v.strip())
        return cls(kind, () if kind == "everyone" else values)  # type: ignore[arg-type]


def problems(conn: Connection, audience: Audience) -> LocalText | None:
    """What is wrong with an audience (unknown names, listed), or None."""
    if audience.kind == "everyone":
        return None
    if not audience.values:
        return NEEDS_VALUES
    missing: list[str]
    if audience.kind == "departments":
        known = {d.code.casefold() for d in people.all_departments(conn)}
        missing = [v for v in audience.values if v.casefold() not in known]
        message = UNKNOWN_DEPARTMENTS
    elif audience.kind == "roles":
        missing = [v for v in audience.values if not people.employees_with_role(conn, v)]
        message = UNKNOWN_ROLES
    elif audience.kind == "people":
        missing = [v for v in audience.values if not _active(people.find_employee_by_email(conn, v))]
        message = UNKNOWN_PEOPLE
    else:
        missing = [v for v in audience.values if v not in QUERIES]
        message = UNKNOWN_QUERY
    if not missing:
        return None
    return LocalText.of(message.ja.format(names="、".join(missing)), message.en.format(names=", ".join(missing)))


def _active(person: Employee | None) -> bool:
    return person is not None and person.active


def resolve(conn: Connection, policy: Policy, calendar: BusinessCalendar, audience: Audience, today: date,
            now: datetime) -> list[Employee]:
    """The active employees an audience means today, each once, by id. Unknown names are skipped (they were
    refused when the broadcast was made; someone may have left since)."""
    found: dict[int, Employee] = {}
    if audience.kind == "everyone":
        found = {e.id: e for e in people.all_employees(conn, active_only=True)}
    elif audience.kind == "departments":
        wanted = _with_subdepartments(conn, {v.casefold() for v in audience.values})
        found = {e.id: e for e in people.all_employees(conn, active_only=True) if e.department_id in wanted}
    elif audience.kind == "roles":
        found = {e.id: e for role in audience.values for e in people.employees_with_role(conn, role)}
    elif audience.kind == "people":
        found = {e.id: e for v in audience.values if (e := people.find_employee_by_email(conn, v)) and e.active}
    elif FIVE_DAY_SHORTFALL in audience.values:
        found = {e.id: e for e, _ in five_day_shortfall(conn, policy, calendar, today, now)}
    return [found[k] for k in sorted(found)]


def _with_subdepartments(conn: Connection, codes: set[str]) -> set[int]:
    departments = people.all_departments(conn)
    chosen = {d.id for d in departments if d.code.casefold() in codes}
    while True:  # a department's members include its sub-departments' (営業部 reaches 営業1課)
        more = {d.id for d in departments if d.parent_id in chosen} - chosen
        if not more:
            return chosen
        chosen |= more


def five_day_shortfall(conn: Connection, policy: Policy, calendar: BusinessCalendar, today: date,
                       now: datetime) -> list[tuple[Employee, FiveDayStatus]]:
    """Active employees with an open 年5日 window who have taken fewer than 5 days in it, with their numbers.
    Statutory grants due by today are recorded on the way (idempotent), as everywhere leave is shown."""
    short = []
    for person in people.all_employees(conn, active_only=True):
        if person.hire_date is None:
            continue
        leave.sync_grants(conn, person, today, now)
        status = leave.balance(conn, person, today, calendar, policy.company.hours_per_day).five_day
        if status is not None and status.shortfall > 0:
            short.append((person, status))
    return short
