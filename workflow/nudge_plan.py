"""An assignment's nudge plan: when its reminders fall due, and when it escalates and meets its final deadline.

Both come from the type's nudge policy (workflows.yaml `nudges`), counted in business days from the step's due
time. An open assignment carries at most two pending nudge rows, one per chain, each the next thing due:
- the approver's reminders: the `before_due` ones, `due`, the first `overdue`; then, overdue, the back-off
  (the policy's gaps, the last one repeating), counted from when the last reminder went out;
- the actions: the `escalation`, then the `final` deadline (unless the final policy is `stay`).

The engine writes each chain's first row when a step starts (workflow/engine.py); the tick writes a chain's
next row when it takes one (workflow/nudges.py). Writing the whole plan up front was four or five rows per
approver, each in four indexes: a decision that closes one step and opens the next cancelled and wrote them
all, in the transaction that answers the click. Now it is one or two.

A reminder taken late (the process was down, or the approver was off work) covers every reminder of the plan
that has fallen due meanwhile: the digest says the most pressing of them, once, and the next row is the first
reminder still ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from config.policy import NudgePolicy, Policy
from workflow.calendar import BusinessCalendar

BEFORE_DUE, DUE, OVERDUE = "before_due", "due", "overdue"
ESCALATION = "escalation"
FINAL = "final"  # the row of a step's final deadline (workflows.yaml: nudges.final)
REMINDERS = (BEFORE_DUE, DUE, OVERDUE)  # the approver's own, least pressing first
ACTIONS = (ESCALATION, FINAL)

Moment = tuple[str, datetime]  # (kind, when)


def shift(calendar: BusinessCalendar, policy: Policy, moment: datetime, business_days: Decimal) -> datetime:
    """The same local clock time `business_days` business days later (or earlier, if negative); fractions are
    working hours."""
    tz = ZoneInfo(policy.company.timezone)
    local = moment.astimezone(tz)
    whole = int(business_days)
    day = calendar.add_business_days(local.date(), whole) if whole else local.date()
    shifted = datetime.combine(day, local.time(), tz)
    rest = business_days - whole
    if rest:
        shifted = calendar.add_business_hours(shifted, float(rest * policy.company.hours_per_day))
    return shifted.astimezone(UTC)


@dataclass(frozen=True)
class NudgePlan:
    """The fixed moments of one assignment's nudges (the overdue back-off is not fixed: it counts from when
    each reminder goes out)."""

    reminders: tuple[Moment, ...]  # in time order
    actions: tuple[Moment, ...]  # escalation, then final

    def first_rows(self, now: datetime) -> list[Moment]:
        """What a newly started assignment carries: each chain's first moment still ahead."""
        return [m for m in (_next(self.reminders, now), _next(self.actions, now)) if m is not None]

    def next_reminder(self, now: datetime) -> Moment | None:
        """The first fixed reminder still ahead of `now` (None: only the back-off is left, if any)."""
        return _next(self.reminders, now)

    def reminder_due(self, kind: str, now: datetime) -> str:
        """What a reminder row of `kind` taken at `now` says: the most pressing reminder fallen due by then."""
        fallen = [k for k, at in self.reminders if at <= now]
        return max([kind, *fallen], key=severity)

    def action_after(self, kind: str) -> Moment | None:
        """The action that follows `kind` (final after escalation), however late: an action is never skipped."""
        kinds = [k for k, _ in self.actions]
        later = self.actions[kinds.index(kind) + 1:] if kind in kinds else ()
        return later[0] if later else None


def plan_for(calendar: BusinessCalendar, policy: Policy, nudges: NudgePolicy, due: datetime) -> NudgePlan:
    """The plan of an assignment whose step is due at `due`."""
    def at(days: Decimal) -> datetime:
        return shift(calendar, policy, due, days)

    reminders = [(BEFORE_DUE, at(-b)) for b in nudges.before_due_business_days]
    if nudges.at_due:
        reminders.append((DUE, due))
    if nudges.overdue_every_business_days:
        reminders.append((OVERDUE, at(nudges.overdue_every_business_days[0])))
    actions = []
    if nudges.escalate_after_business_days is not None:
        actions.append((ESCALATION, at(nudges.escalate_after_business_days)))
    if nudges.final != "stay":  # the tick carries out the final policy (workflow/nudges.py)
        actions.append((FINAL, at(nudges.final_after_business_days)))
    return NudgePlan(tuple(sorted(reminders, key=lambda m: (m[1], severity(m[0])))), tuple(actions))


def severity(kind: str) -> int:
    return REMINDERS.index(kind) if kind in REMINDERS else 0


def _next(moments: tuple[Moment, ...], now: datetime) -> Moment | None:
    return next((m for m in moments if m[1] > now), None)
