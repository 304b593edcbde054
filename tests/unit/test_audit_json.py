"""The audit chain's canonical JSON: the text each event's hash covers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from workflow.audit import canonical_json


def _reference(data: dict[str, Any]) -> str:
    """What json.dumps makes with the chain's options (the encoder made once must give the same text)."""
    def default(value: Any) -> Any:
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(f"not JSON serializable: {type(value).__name__}")
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=default)


@pytest.mark.parametrize("data", [
    {},
    {"b": 1, "a": [1, 2.5, None, True], "名前": "出張（大阪）"},
    {"due_at": datetime(2026, 6, 2, 1, 2, 3, 456789, tzinfo=UTC), "on": date(2026, 6, 2), "days": Decimal("1.50")},
    {"payload": {"items": [{"amount": 150000, "tax_rate": "10"}], "purpose": "x"}, "people": [3, 1]},
])
def test_canonical_json_is_json_dumps_with_the_chains_options(data: dict[str, Any]) -> None:
    assert canonical_json(data) == _reference(data)
    assert canonical_json(data) == canonical_json(data)  # the shared encoder keeps nothing between calls


def test_canonical_json_refuses_what_it_cannot_hash() -> None:
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        canonical_json({"x": object()})
