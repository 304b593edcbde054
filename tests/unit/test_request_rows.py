"""Rows of requests, steps and assignments become their dataclasses by position, as their constructors make them."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from models import requests as rq

NOW = datetime(2026, 6, 2, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize(("cls", "build", "row"), [
    (rq.Step, rq._STEP, (1, 2, 1, 0, "manager", "approval", 0, 1, "active", NOW, NOW, None)),
    (rq.Assignment, rq._ASSIGNMENT, (3, 2, 1, 4, 1, "approved", 4, "ok", NOW)),
    (rq.Request, rq._REQUEST, (2, "EXP-2026-0001", "expense", 2026, 3, {"a": [1]}, None, "pending", 1, 1, NOW,
                               NOW, None)),
])
def test_built_rows_are_what_the_constructor_makes(cls: type, build: object, row: tuple[object, ...]) -> None:
    built = build(row)  # type: ignore[operator]
    made = cls(*row)
    assert built == made and repr(built) == repr(made) and type(built) is cls
    if cls is not rq.Request:  # a request holds its payload dict: not hashable
        assert hash(built) == hash(made)
    with pytest.raises(FrozenInstanceError):
        built.id = 0
    with pytest.raises(ValueError):  # a row of another width is refused, not half read
        build(row[:-1])  # type: ignore[operator]


def test_a_dataclass_whose_fields_are_not_the_columns_is_refused() -> None:
    @dataclass(frozen=True)
    class Swapped:
        request_id: int
        id: int

    table = sa.Table("swapped", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("request_id", sa.Integer))
    with pytest.raises(TypeError, match="not the columns of swapped"):
        rq._row_builder(Swapped, table)  # type: ignore[type-var]
