"""An assignment's nudge plan (workflow/nudge_plan.py): its moments in business days, each chain's first row, what
a reminder taken late says, and what follows an action."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from config.policy import NudgePolicy, Policy
from workflow.engine import calendar_for
from workflow.nudge_plan import NudgePlan, plan_for

JST = ZoneInfo("Asia/Tokyo")
DUE = datetime(2026, 6, 4, 10, 0, tzinfo=JST).astimezone(UTC)  # Thursday 10:00 JST


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST).astimezone(UTC)


def plan(policy: Policy, **nudges: object) -> NudgePlan:
    return plan_for(calendar_for(policy), policy, NudgePolicy.model_validate(nudges), DUE)


def test_the_shipped_plan_in_business_days(policy: Policy) -> None:
    shipped = plan(policy)
    assert shipped.reminders == (("before_due", jst(2026, 6, 3, 10, 0)), ("due", DUE),
                                 ("overdue", jst(2026, 6, 5, 10, 0)))
    assert shipped.actions == (("escalation", jst(2026, 6, 9, 10, 0)),)  # 3 business days: over the weekend
    assert shipped.first_rows(jst(2026, 6, 2, 10, 0)) == [("before_due", jst(2026, 6, 3, 10, 0)),
                                                          ("escalation", jst(2026, 6, 9, 10, 0))]


def test_reminders_are_in_time_order_and_what_has_passed_is_not_written(policy: Policy) -> None:
    custom = plan(policy, before_due_business_days=[1, 2], at_due=False, overdue_every_business_days=[],
                  escalate_after_business_days=None, final="return_to_requester", final_after_business_days=4)
    assert [k for k, _ in custom.reminders] == ["before_due", "before_due"]
    assert [at for _, at in custom.reminders] == [jst(2026, 6, 2, 10, 0), jst(2026, 6, 3, 10, 0)]
    assert custom.actions == (("final", jst(2026, 6, 10, 10, 0)),)
    # a step started after its first reminder's moment: the chain starts with the next one
    assert custom.first_rows(jst(2026, 6, 2, 12, 0)) == [("before_due", jst(2026, 6, 3, 10, 0)),
                                                         ("final", jst(2026, 6, 10, 10, 0))]
    # nothing left ahead: no row
    assert custom.first_rows(jst(2026, 6, 11, 10, 0)) == []


def test_a_reminder_taken_late_says_the_most_pressing_one_due(policy: Policy) -> None:
    shipped = plan(policy)
    assert shipped.reminder_due("before_due", jst(2026, 6, 3, 10, 0)) == "before_due"
    assert shipped.reminder_due("before_due", jst(2026, 6, 4, 9, 59)) == "before_due"
    assert shipped.reminder_due("before_due", jst(2026, 6, 4, 10, 0)) == "due"
    assert shipped.reminder_due("before_due", jst(2026, 6, 8, 9, 0)) == "overdue"
    assert shipped.reminder_due("overdue", jst(2026, 6, 12, 9, 0)) == "overdue"  # the back-off's rows
    assert shipped.next_reminder(jst(2026, 6, 4, 10, 0)) == ("overdue", jst(2026, 6, 5, 10, 0))
    assert shipped.next_reminder(jst(2026, 6, 5, 10, 0)) is None  # from here on, the back-off


def test_the_final_deadline_follows_the_escalation_however_late(policy: Policy) -> None:
    returning = plan(policy, final="return_to_requester", final_after_business_days=5)
    assert returning.action_after("escalation") == ("final", jst(2026, 6, 11, 10, 0))
    assert returning.action_after("final") is None
    assert plan(policy).action_after("escalation") is None  # final: stay writes no row
