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
