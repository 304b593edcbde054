"""The benchmark's three implementations still run the lifecycle they claim (tiny n; no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import floor, ours


def test_ours_and_floor_complete_lifecycles(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert ours.run_lifecycles(2, tmp_path / "a") > 0
    assert floor.run_lifecycles(2, tmp_path / "b") > 0


def test_spiff_baseline_completes_lifecycles(tmp_path: Path) -> None:
    pytest.importorskip("SpiffWorkflow", reason="SpiffWorkflow is a bench extra: pip install -e '.[bench]'")
    from bench import spiff_baseline

    assert spiff_baseline.run_lifecycles(2, tmp_path) > 0
