"""The built-in 年5日 campaign: each worker short of the 5 days their newest 10+ day grant obliges them to take
gets a personal nudge with their numbers and a "request leave" button, once per period: monthly (on or after
`monthly_day`), and weekly (on or after `weekly_day`) in the last `final_months` of their one-year window.
Their manager gets one digest of the team's shortfall on each day some of their people were nudged.

Runs on business days from `hour` (company time). Every send is claimed by a unique row
(`campaign_claims`, ON CONFLICT DO NOTHING) in the same transaction as its outbox row, so replicas ticking
together, or a tick run twice, send each nudge once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from config.policy import FiveDayCampaign, Policy
from models import broadcasts as rows
from models import messaging
from models.db import Database
from models.people import Employee
from workflow.audiences import five_day_shortfall
from workflow.engine import calendar_for
from workflow.leave_law import FiveDayStatus, add_months, format_days

NUDGE_KIND = "five_day_nudge"
DIGEST_KIND = "five_day_digest"
KINDS = (NUDGE_KIND, DIGEST_KIND)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def period_of(status: FiveDayStatus, today: date, cfg: FiveDayCampaign) -> str | None:
    """The cadence period `today` is in for this worker ("2026-06" or "2026-W23"), or None before the
    period's day has come (e.g. before the 1st... or before Monday)."""
    final_start = add_months(status.window_end, -cfg.final_months) if cfg.final_months else status.window_end
    if today >= final_start:
        if today.weekday() < WEEKDAYS.index(cfg.weekly_day):
            return None
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{today:%Y-%m}" if today.day >= cfg.monthly_day else None


def run(db: Database, policy: Policy, now: datetime, stop: Callable[[], bool] = lambda: False) -> int:
    """Send what the campaign owes as of `now`; returns how many messages were enqueued. (One transaction:
    `stop`, the tick's shutdown question, has nothing to cut short.)"""
    cfg = policy.campaigns.five_day
    tz = ZoneInfo(policy.company.timezone)
    local = now.astimezone(tz)
    calendar = calendar_for(policy)
    if not cfg.enabled or local.hour < cfg.hour or not calendar.is_business_day(local.date()):
        return 0
    today = local.date()
    with db.unit_of_work() as conn:
        if not rows.claim(conn, f"five_day:run:{today}", now):
            return 0  # today's run is done (or under way on another replica: it waited for it here)
        short = five_day_shortfall(conn, policy, calendar, today, now)
        nudged = _nudge_workers(conn, policy, short, today, now, cfg)
        digests = _digest_managers(conn, short, nudged, today, now) if cfg.notify_managers else 0
    return len(nudged) + digests


def _nudge_workers(conn: Connection, policy: Policy, short: list[tuple[Employee, FiveDayStatus]], today: date,
                   now: datetime, cfg: FiveDayCampaign) -> list[Employee]:
    leave_type = next((k for k, s in policy.types.items() if s.behaviour == "leave"), None)
    nudged, outbox = [], []
    for person, status in short:
        period = period_of(status, today, cfg)
        key = f"five_day:worker:{person.id}:{status.granted_on}:{period}"
        if period is None or not rows.claim(conn, key, now):
            continue
        nudged.append(person)
        outbox.append(_row(key, person.id, NUDGE_KIND, {**numbers(status, today), "leave_type": leave_type}, now))
    messaging.enqueue(conn, outbox)
    return nudged


def _digest_managers(conn: Connection, short: list[tuple[Employee, FiveDayStatus]], nudged: list[Employee],
                     today: date, now: datetime) -> int:
    """One digest per manager of someone nudged today, listing every short member of their team."""
    managers = {p.manager_id for p in nudged if p.manager_id is not None}
    outbox = []
    for manager_id in sorted(managers):
        key = f"five_day:manager:{manager_id}:{today}"
        if not rows.claim(conn, key, now):
            continue
        team = [{"employee": p.id, **numbers(s, today)} for p, s in short if p.manager_id == manager_id]
        team.sort(key=lambda t: (t["days_left"], t["employee"]))  # the most urgent first
        outbox.append(_row(key, manager_id, DIGEST_KIND, {"team": team}, now))
    messaging.enqueue(conn, outbox)
    return len(outbox)


def numbers(status: FiveDayStatus, today: date) -> dict[str, Any]:
    """A worker's figures as the message shows them: taken, still to take, the last day (inclusive)."""
    last_day = date.fromordinal(status.window_end.toordinal() - 1)
    return {"taken": format_days(status.taken), "required": format_days(status.required),
            "shortfall": format_days(status.shortfall), "deadline": last_day.isoformat(),
            "days_left": (status.window_end - today).days}


def _row(key: str, recipient_id: int, kind: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"idempotency_key": key, "recipient_id": recipient_id, "kind": kind, "request_id": None,
            "payload": {"kind": kind, **payload}, "state": "pending", "attempts": 0, "next_attempt_at": now,
            "created_at": now}
