"""bench/broadcast.py still delivers a broadcast through the real delivery loop against the rate-limited stub
(tiny sizes; no timing asserted): nothing lost, nothing duplicated, and the stub did answer 429."""

from __future__ import annotations

from bench import broadcast


def test_broadcast_bench_delivers_everything_once() -> None:
    figures = broadcast.run(recipients=30, cap=20.0, batch=50)
    assert figures.recipients == 31  # everyone: the 30 and the HR author
    assert figures.lost == 0 and figures.duplicated == 0
    assert figures.limited > 0  # the workspace cap was in force
