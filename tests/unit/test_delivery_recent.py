"""Delivery's memories (`bot.delivery._Lately`: the requests it read lately, what each posted message shows): bounded,
the least recently used dropped first, an entry used again kept."""

from __future__ import annotations

from typing import Any, cast

from bot.delivery import _Lately
from workflow.queries import RequestDetails


def details(n: int) -> RequestDetails:
    return cast(RequestDetails, f"details of {n}")  # the memory only keeps them


def test_at_most_size_requests_are_kept_the_least_recently_used_go_first() -> None:
    recent = _Lately(3)
    for n in (1, 2, 3):
        recent[n] = details(n)
    assert recent.get(1) == details(1)  # used again: now the most recent
    recent[4] = details(4)
    assert list(recent) == [3, 1, 4]
    assert recent.get(2) is None
    recent[3] = details(33)  # read again (a newer version): replaced, and most recent
    recent[5] = details(5)
    assert list(recent) == [4, 3, 5] and recent.get(3) == details(33)


def test_get_takes_a_default_like_a_dict() -> None:
    recent: Any = _Lately(2)
    assert recent.get(7, "none") == "none"
