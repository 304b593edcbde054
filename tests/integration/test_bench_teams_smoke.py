"""The Teams bench runs end to end with --quick and prints every row, ours (the real server, each invoke an
approval) among them (no timing asserted)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from bench.teams_latency import CONCURRENCIES, ROWS

ROOT = Path(__file__).resolve().parents[2]
FIGURES = re.compile(r"^(?P<label>.+?)\s+(?P<conc>\d+)\s+(?P<p50>\d+\.\d\d)\s+(?P<p99>\d+\.\d\d)\s+\d+\s+"
                     r"(?P<cpu>\d+\.\d\d)\s+(?P<codes>list|frozenset|-)$")


def test_the_teams_bench_prints_a_row_per_sdk_and_concurrency() -> None:
    done = subprocess.run([sys.executable, "bench/teams_latency.py", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    figures = {(m["label"], int(m["conc"])): m for m in map(FIGURES.match, lines) if m}
    labels = {row.key: row.label for row in ROWS}
    for key in ("ours", "stock", "fixed"):
        for concurrency in CONCURRENCIES:
            found = figures[(labels[key], concurrency)]
            assert float(found["p50"]) > 0 and float(found["cpu"]) > 0
    # each row had a process of its own: the stock one really ran stock msrest, the fixed one the frozenset
    assert {figures[(labels["stock"], c)]["codes"] for c in CONCURRENCIES} == {"list"}
    assert {figures[(labels["fixed"], c)]["codes"] for c in CONCURRENCIES} == {"frozenset"}
    if importlib.util.find_spec("microsoft_agents.hosting.aiohttp") is None:
        assert f"{labels['agents']:<30} skipped: microsoft-agents-hosting-aiohttp not installed" in done.stdout
    else:
        assert all((labels["agents"], c) in figures for c in CONCURRENCIES), done.stdout
    assert "stub connector calls: 0" in done.stdout
    # ours approved a pending request with every invoke (the bench checks each answer) and says how it compares
    assert re.search(r"^p50 ratio: \d+\.\d\d", done.stdout, re.M) and "ours p99 at concurrency 50" in done.stdout
