"""The engine's copy-with-changes of the rows a route keeps in step: what dataclasses.replace gives."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from config.i18n import LocalText
from models.requests import Assignment, Step
from workflow.engine import _with
from workflow.outcomes import Outcome

NOW = datetime(2026, 6, 2, 1, 2, 3, tzinfo=UTC)
STEP = Step(1, 2, 1, 0, "manager", "approval", 0, 1, "waiting", None, None, None)
ASSIGNMENT = Assignment(3, 2, 1, 4, 1, "pending", None, None, None)
OUTCOME = Outcome(True, "approved", LocalText(ja="承認しました", en="Approved"))


@pytest.mark.parametrize(("row", "values"), [
    (STEP, {"status": "active", "activated_at": NOW, "due_at": NOW}),
    (STEP, {}),
    (ASSIGNMENT, {"status": "approved", "acted_by_id": 4, "comment": "ok", "decided_at": NOW}),
    (OUTCOME, {"open_assignments": (5, 6)}),
])
def test_with_is_replace(row: Any, values: dict[str, Any]) -> None:
    changed = _with(row, **values)
    expected = replace(row, **values)
    assert changed == expected and type(changed) is type(row)
    if not isinstance(row, Outcome):  # an outcome holds dicts: not hashable
        assert hash(changed) == hash(expected)
    assert changed is not row and row == replace(row)  # the original stays as it was
    with pytest.raises(FrozenInstanceError):
        changed.id = 0


def test_with_refuses_a_name_that_is_no_field() -> None:
    with pytest.raises(TypeError, match="no field"):
        _with(STEP, stauts="active")
