"""An employee row (its columns, then the roles) becomes the Employee its constructor would make."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import date

import pytest

from models.people import Employee, _employee_row


def test_an_employee_row_is_what_the_constructor_makes() -> None:
    row = (7, "E007", "a@example.jp", "あ", "A", 2, 3, 4, "ja", "en", None, "teams", "Asia/Tokyo", date(2020, 4, 1),
           4, 30.5, True, "finance,admin")
    built = _employee_row(row)  # type: ignore[arg-type]
    made = Employee(id=7, code="E007", email="a@example.jp", name_ja="あ", name_en="A", department_id=2,
                    manager_id=3, substitute_id=4, roles=("admin", "finance"), org_locale="ja", locale_choice="en",
                    platform_locale=None, timezone="Asia/Tokyo", hire_date=date(2020, 4, 1), work_days_per_week=4,
                    weekly_hours=30.5, active=True)
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert list(vars(built)) == list(vars(made)) and built.locale == "en" and built.has_role("finance")
    assert _employee_row(row[:-1] + (None,)).roles == ()  # type: ignore[arg-type]
    with pytest.raises(FrozenInstanceError):
        built.active = False  # type: ignore[misc]
