"""The nudge policy in workflows.yaml: the shipped defaults, and bad values refused with the place named."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
import yaml

from config.policy import PolicyError, parse_policy
from config.settings import DEFAULT_WORKFLOWS


def shipped() -> dict[str, Any]:
    return dict(yaml.safe_load(DEFAULT_WORKFLOWS.read_text(encoding="utf-8")))


def test_the_shipped_defaults_remind_back_off_and_escalate() -> None:
    nudges = parse_policy(shipped()).defaults.nudges
    assert nudges.before_due_business_days == [Decimal(1)] and nudges.at_due
    assert nudges.overdue_every_business_days == [Decimal(1), Decimal(2)]  # every day, then every 2
    assert nudges.escalate_after_business_days == Decimal(3) and nudges.escalate_to == "manager"
    assert nudges.final == "stay"


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("overdue_every_business_days", [0], "defaults.nudges.overdue_every_business_days[0]: Input should be greater "
                                         "than 0"),
    ("before_due_business_days", [-1], "defaults.nudges.before_due_business_days[0]: Input should be greater"),
    ("escalate_after_business_days", 90, "defaults.nudges.escalate_after_business_days: Input should be less than "
                                         "or equal to 60"),
    ("escalate_to", "boss", "defaults.nudges.escalate_to: Value error, unknown approver 'boss'"),
])
def test_bad_nudge_values_name_the_place(key: str, value: Any, expected: str) -> None:
    data = copy.deepcopy(shipped())
    data["defaults"]["nudges"][key] = value
    with pytest.raises(PolicyError) as caught:
        parse_policy(data, "workflows.yaml")
    assert any(p.startswith(f"workflows.yaml: {expected}") for p in caught.value.problems), caught.value.problems


def test_the_shipped_final_deadline_is_after_the_escalation() -> None:
    nudges = parse_policy(shipped()).defaults.nudges
    assert nudges.final_after_business_days == Decimal(5) > (nudges.escalate_after_business_days or 0)


def test_return_to_requester_is_accepted_per_type() -> None:
    data = copy.deepcopy(shipped())
    data["types"]["expense"]["nudges"] = {"final": "return_to_requester", "final_after_business_days": 4}
    policy = parse_policy(data)
    assert policy.nudges_for("expense").final == "return_to_requester"
    assert policy.nudges_for("leave").final == "stay"


@pytest.mark.parametrize(("where", "nudges", "expected"), [
    ("defaults", {"final": "return_to_requester", "final_after_business_days": 3},
     "defaults.nudges: Value error, final_after_business_days (3) must be more than escalate_after_business_days "
     "(3)"),
    ("defaults", {"final_after_business_days": 0}, "defaults.nudges.final_after_business_days: Input should be "
                                                  "greater than 0"),
    ("defaults", {"final": "auto_approve_inform"}, "defaults.nudges.final: final: auto_approve_inform would never "
                                                   "apply"),
    ("expense", {"final": "auto_approve_inform"}, "types.expense.nudges.final: final: auto_approve_inform would "
                                                  "never apply"),
    ("expense", {"final": "approve"}, "types.expense.nudges.final: Input should be 'stay', 'auto_approve_inform' "
                                      "or 'return_to_requester'"),
])
def test_bad_final_policies_name_the_place(where: str, nudges: dict[str, Any], expected: str) -> None:
    data = copy.deepcopy(shipped())
    if where == "defaults":
        data["defaults"]["nudges"].update(nudges)
    else:
        data["types"][where]["nudges"] = nudges
    with pytest.raises(PolicyError) as caught:
        parse_policy(data, "workflows.yaml")
    assert any(p.startswith(f"workflows.yaml: {expected}") for p in caught.value.problems), caught.value.problems


def test_stay_does_not_care_when_the_final_deadline_is() -> None:
    data = copy.deepcopy(shipped())
    data["defaults"]["nudges"].update({"escalate_after_business_days": 10})  # final_after stays 5: unused by stay
    assert parse_policy(data).defaults.nudges.final == "stay"
