"""bench/nudges.py still measures what it claims, at tiny sizes (no timing asserted): the tick sends the due
reminders as digests on both sizes, our rows survive a restart, and the naive APScheduler design runs."""

from __future__ import annotations

from pathlib import Path

from bench import nudges


def test_the_nudge_bench_runs_at_tiny_sizes(tmp_path: Path) -> None:
    result = nudges.run(small=30, large=60, due=5, deadlines=40, rounds=1, workdir=tmp_path)
    assert result["ours"]["small"]["sent"] == result["ours"]["large"]["sent"] == 5
    assert result["ours_restart"]["delivered"] == 5
    assert result["aps_fill"]["add_ms"] > 0 and result["aps_restart"]["delivered"] <= 5
    assert result["tick_ratio"] > 0
