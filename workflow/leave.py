"""Paid leave against the database: grants by law, balances, the check at filing, consumption at approval,
年5日 status, and the leave ledger (年次有給休暇管理簿) as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from config.i18n import LocalText
from models import leave as rows
from models import people
from models import requests as req_rows
from models.people import Employee
from workflow import leave_law as law
from workflow import messages as msg
from workflow.calendar import BusinessCalendar


@dataclass(frozen=True)
class LeaveDay:
    """One working day of a leave request and what it costs."""

    on: date
    unit: law.LeaveUnit
    hours: Decimal | None
    days: Decimal


@dataclass(frozen=True)
class Balance:
    as_of: date
    available: Decimal  # in valid grants, minus what was taken
    reserved: Decimal  # asked for by requests still waiting for approval
    hourly_used: Decimal  # hours taken in the current grant year
    hourly_reserved: Decimal  # hours asked for by hourly requests still waiting
    five_day: law.FiveDayStatus | None



def sync_grants(conn: Connection, employee: Employee, as_of: date, now: datetime) -> int:
    """Insert the statutory grants due by `as_of` that are not stored yet; returns how many were added."""
    if employee.hire_date is None:
        return 0
    added = 0
    for grant in law.grant_schedule(employee.hire_date, as_of, employee.work_days_per_week, employee.weekly_hours):
        added += rows.insert_grant_if_missing(
            conn, employee_id=employee.id, granted_on=grant.granted_on, days=grant.days,
            expires_on=grant.expires_on, source="law", created_at=now,
        )
    return added


def leave_days(payload: dict[str, Any], calendar: BusinessCalendar,
               hours_per_day: Decimal) -> tuple[list[LeaveDay], dict[str, LocalText]]:
    """The working days a leave payload covers, or field errors (half days and hours are for one date)."""
    unit: law.LeaveUnit = payload["unit"]
    start, end = date.fromisoformat(payload["period"]["start"]), date.fromisoformat(payload["period"]["end"])
    if unit != "full" and start != end:
        return [], {"period": msg.HALF_DAY_ONE_DATE}
    hours = Decimal(payload["hours"]) if payload.get("hours") is not None else None
    if unit == "hourly" and hours is None:
        return [], {"hours": msg.HOURS_REQUIRED}
    days = calendar.business_days(start, end)
    if not days:
        return [], {"period": msg.NO_WORKING_DAYS}
    cost = law.unit_days(unit, hours, hours_per_day)
    return [LeaveDay(d, unit, hours if unit == "hourly" else None, cost) for d in days], {}


def _uses(conn: Connection, employee_id: int) -> tuple[list[rows.GrantRow], list[law.GrantUse], list[rows.TakenRow]]:
    grants = rows.grants_of(conn, employee_id)
    taken = rows.taken_of(conn, employee_id)
    used: dict[int, Decimal] = {}
    for t in taken:
        used[t.grant_id] = used.get(t.grant_id, Decimal(0)) + t.days
    uses = [law.GrantUse(law.Grant(g.granted_on, g.days, g.expires_on), used.get(g.id, Decimal(0))) for g in grants]
    return grants, uses, taken


def _pending_days(conn: Connection, employee: Employee, calendar: BusinessCalendar, hours_per_day: Decimal,
                  exclude_request_id: int | None) -> list[LeaveDay]:
    """Days asked for by this person's leave requests that still wait for a decision."""
    query = sa.select(req_rows.requests.c.id, req_rows.requests.c.payload, req_rows.requests.c.type).where(
        req_rows.requests.c.requester_id == employee.id,
        req_rows.requests.c.status.in_(("pending", "sent_back")),
    )
    out: list[LeaveDay] = []
    for request_id, payload, _type in conn.execute(query):
        if request_id == exclude_request_id or "unit" not in payload or "period" not in payload:
            continue
        days, errors = leave_days(payload, calendar, hours_per_day)
        if not errors:
            out.extend(days)
    return out


def _hourly_window(grants: list[rows.GrantRow], on: date) -> tuple[date, date] | None:
    current = [g for g in grants if g.granted_on <= on]
    if not current:
        return None
    start = current[-1].granted_on
    return start, law.period_end(start, 12)


def balance(conn: Connection, employee: Employee, as_of: date, calendar: BusinessCalendar,
            hours_per_day: Decimal, *, exclude_request_id: int | None = None) -> Balance:
    grants, uses, taken = _uses(conn, employee.id)
    pending = _pending_days(conn, employee, calendar, hours_per_day, exclude_request_id)
    window = _hourly_window(grants, as_of)
    hourly = sum((t.hours or Decimal(0) for t in taken
                  if t.unit == "hourly" and window and window[0] <= t.taken_on < window[1]), Decimal(0))
    five = law.five_day_status([u.grant for u in uses], _distinct_taken(taken), as_of)
    hourly_pending = sum((d.hours or Decimal(0) for d in pending
                          if d.unit == "hourly" and window and window[0] <= d.on < window[1]), Decimal(0))
    return Balance(as_of, law.available_on(uses, as_of), sum((d.days for d in pending), Decimal(0)), hourly,
                   hourly_pending, five)


def _distinct_taken(taken: list[rows.TakenRow]) -> list[law.Taken]:
    """One entry per request and date: a day split across two grants is still one day taken."""
    merged: dict[tuple[int | None, date, str], Decimal] = {}
    for t in taken:
        key = (t.request_id, t.taken_on, t.unit)
        merged[key] = merged.get(key, Decimal(0)) + t.days
    return [law.Taken(on, unit, days) for (_rid, on, unit), days in merged.items()]  # type: ignore[arg-type]


def check_request(conn: Connection, employee: Employee, days: list[LeaveDay], calendar: BusinessCalendar,
                  hours_per_day: Decimal, now: datetime,
                  exclude_request_id: int | None = None) -> dict[str, LocalText]:
    """Refuse leave beyond the balance (pending requests count) or beyond the hourly cap; {} when fine."""
    first = days[0].on
    sync_grants(conn, employee, max(first, now.date()), now)
    bal = balance(conn, employee, first, calendar, hours_per_day, exclude_request_id=exclude_request_id)
    asked = sum((d.days for d in days), Decimal(0))
    if asked > bal.available - bal.reserved:
        return {"period": msg.fill(msg.NOT_ENOUGH_LEAVE, available=law.format_days(bal.available),
                                   reserved=law.format_days(bal.reserved), asked=law.format_days(asked))}
    hourly = sum((d.hours or Decimal(0) for d in days), Decimal(0))
    cap = law.hourly_cap_hours(hours_per_day)
    if hourly and bal.hourly_used + bal.hourly_reserved + hourly > cap:
        used = bal.hourly_used + bal.hourly_reserved
        return {"hours": msg.fill(msg.HOURLY_CAP, cap=law.format_days(cap), used=law.format_days(used), asked=law.format_days(hourly))}
    return {}


def consume(conn: Connection, employee: Employee, request_id: int, days: list[LeaveDay], now: datetime) -> None:
    """Record approved leave, taking each day from the oldest valid grant. Raises law.InsufficientLeave."""
    sync_grants(conn, employee, max(days[-1].on, now.date()), now)
    grants, uses, _taken = _uses(conn, employee.id)
    grant_ids = {(g.granted_on, g.expires_on): g.id for g in grants}
    inserts: list[dict[str, Any]] = []
    for day in days:
        for grant, amount in law.allocate(uses, day.on, day.days):
            inserts.append({"employee_id": employee.id, "grant_id": grant_ids[(grant.granted_on, grant.expires_on)],
                            "request_id": request_id, "taken_on": day.on, "unit": day.unit,
                            "hours": day.hours, "days": amount, "created_at": now})
            uses = [law.GrantUse(u.grant, u.used + amount) if u.grant == grant else u for u in uses]
    rows.insert_taken(conn, inserts)


LEDGER_HEADER = ["社員番号", "氏名", "メールアドレス", "入社日", "基準日（付与日）", "付与日数", "有効期限",
                 "取得日", "取得単位", "取得日数", "時間数", "申請番号", "年5日取得状況"]
UNIT_JA = {"full": "全日", "am": "午前半休", "pm": "午後半休", "hourly": "時間単位"}


def ledger_csv(conn: Connection, fiscal_year_start: date, fiscal_year_end: date) -> str:
    """年次有給休暇管理簿: per worker, each grant (date, days) and each date taken in the period."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(LEDGER_HEADER)
    numbers: dict[int, str] = {r.id: r.number for r in conn.execute(
        sa.select(req_rows.requests.c.id, req_rows.requests.c.number))}
    for emp in people.all_employees(conn):
        grants, uses, taken = _uses(conn, emp.id)
        five = law.five_day_status([u.grant for u in uses], _distinct_taken(taken), fiscal_year_end)
        status = f"{law.format_days(five.taken)}/5" if five else ""
        by_grant = {g.id: [t for t in taken if t.grant_id == g.id
                           and fiscal_year_start <= t.taken_on <= fiscal_year_end] for g in grants}
        for g in grants:
            if g.expires_on <= fiscal_year_start or g.granted_on > fiscal_year_end:
                continue
            base = [emp.code or "", emp.name_ja, emp.email, emp.hire_date or "", g.granted_on, law.format_days(g.days),
                    g.expires_on]
            entries: list[rows.TakenRow | None] = list(by_grant[g.id]) or [None]
            for t in entries:
                tail = ([t.taken_on, UNIT_JA.get(t.unit, t.unit), law.format_days(t.days), law.format_days(t.hours) if t.hours else "",
                         numbers.get(t.request_id or 0, "")] if t else ["", "", "", "", ""])
                writer.writerow([*base, *tail, status])
    return out.getvalue()
