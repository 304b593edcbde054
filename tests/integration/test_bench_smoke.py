"""The benchmark's implementations still run the lifecycle they claim, one at a time and concurrently (tiny n;
correctness only, no timing asserted): every run checks its rows afterwards and fails if any are missing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench import floor, ours


def test_ours_and_floor_complete_lifecycles(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert ours.run_lifecycles(2, tmp_path / "a") > 0
    assert floor.run_lifecycles(2, tmp_path / "b") > 0


@pytest.mark.parametrize("run", [ours.run_concurrent, floor.run_concurrent, floor.run_concurrent_group_commit],
                         ids=["ours", "floor", "floor-group-commit"])
def test_concurrent_runs_complete_every_lifecycle(tmp_path: Path, run: Callable[[int, Path, int], float]) -> None:
    assert run(3, tmp_path, 2) > 0


def test_the_row_check_sees_a_missing_lifecycle(tmp_path: Path) -> None:
    floor.run_lifecycles(1, tmp_path)
    lifecycles = ours.WARMUP_LIFECYCLES + 1
    ours.check_rows(tmp_path / "floor.db", lifecycles)
    with pytest.raises(RuntimeError, match="requests has"):
        ours.check_rows(tmp_path / "floor.db", lifecycles + 1)


def test_a_failing_thread_fails_the_run() -> None:
    @contextmanager
    def person() -> Iterator[Callable[[], None]]:
        def lifecycle() -> None:
            raise ValueError("refused")
        yield lifecycle

    with pytest.raises(ValueError, match="refused"):
        floor.run_in_threads(4, 2, person)


def test_spiff_baseline_completes_lifecycles(tmp_path: Path) -> None:
    pytest.importorskip("SpiffWorkflow", reason="SpiffWorkflow is a bench extra: pip install -e '.[bench]'")
    from bench import spiff_baseline

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert spiff_baseline.run_lifecycles(2, tmp_path / "a") > 0
    assert spiff_baseline.run_concurrent(3, tmp_path / "b", 2) > 0


def test_the_harness_prints_both_modes_and_their_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("SpiffWorkflow", reason="SpiffWorkflow is a bench extra: pip install -e '.[bench]'")
    from bench import engine

    assert engine.main(["--n", "1", "--rounds", "1", "--concurrency", "2"]) == 0
    out = capsys.readouterr().out
    for line in ("ratio vs SpiffWorkflow: ", "ratio to floor: ", "ratio vs SpiffWorkflow (concurrency 2): ",
                 "ratio to floor (concurrency 2): ", "floor (group commit) (concurrency 2)"):
        assert line in out
