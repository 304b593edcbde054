"""The footprint bench runs end to end with --quick (no timing or size asserted): `madoguchi serve` and the bare
Bolt app each start, get ready, are measured and stopped; without --no-image and without docker, the image part
says it was skipped instead of failing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_footprint_bench_prints_both_sides_and_the_ratios() -> None:
    done = subprocess.run([sys.executable, "bench/footprint.py", "--quick", "--no-image"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "image size: skipped (--no-image)" in out
    assert re.search(r"^  idle RSS \(median\)\s+\d+\.\d MB\s+\d+\.\d MB\s+ratio \d+\.\d\d", out, re.M), out
    assert re.search(r"^  cold start to /readyz\s+\d+ ms\s+\d+ ms\s+ratio \d+\.\d\d", out, re.M), out
    assert re.search(r"^  RSS ratio: \d+\.\d\d  start ratio: \d+\.\d\d$", out, re.M), out


def test_a_bad_option_is_refused_with_a_message() -> None:
    done = subprocess.run([sys.executable, "bench/footprint.py", "--rounds", "0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--rounds must be at least 1" in done.stderr
