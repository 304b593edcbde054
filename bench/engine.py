"""Benchmark harness: one approval lifecycle, three implementations, side by side.

A lifecycle is submit + three sequential approvals (manager, department head,
finance), each step its own durable transaction on an SQLite file in WAL mode
with ``synchronous=FULL``.  Implementations measured:

* ``ours``  -- ``bench.ours.run_lifecycles`` (the madoguchi workflow engine);
* ``floor`` -- ``bench.floor.run_lifecycles`` (the same transactions with no engine);
* ``spiff`` -- ``bench.spiff_baseline.run_lifecycles`` (SpiffWorkflow 3.2 + JSON blob).

Each is measured twice: one lifecycle at a time (sequential), and with
``--concurrency C`` lifecycles in flight at once, as C people use a chat product
(ours: C asyncio tasks through the writer, exactly as the edges call it; floor and
spiff: C threads, each with its own connection; plus ``floor (group commit)``, a
hand-written group commit with no engine). Every row's database is checked after
its run (all lifecycles completed, the expected rows), so none can do less work.

Each round of each implementation runs in a fresh temporary directory; rounds
are interleaved (ours, floor, spiff, then the concurrent rows, ours, ...) and the
median is reported. If ``MADOGUCHI_BENCH_POSTGRES_URL`` (else
``MADOGUCHI_TEST_POSTGRES_URL``) is set, ``ours`` is also run (sequentially)
against that PostgreSQL database.

Usage, from the repository root::

    python bench/engine.py [--n 500] [--rounds 3] [--concurrency 32] [--quick]
    python -m bench.engine --quick
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

if __package__ in (None, ""):  # run as a script: make ``import bench.*`` work
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RunFn = Callable[[int, Path], float]
ConcurrentFn = Callable[[int, Path, int], float]  # (n, workdir, concurrency) -> wall seconds per lifecycle


class OursFn(Protocol):
    """``bench.ours.run_lifecycles``: like RunFn, plus an optional database URL."""

    def __call__(self, n: int, workdir: Path, database_url: str | None = None) -> float: ...


DEFAULT_N = 500
QUICK_N = 30
DEFAULT_ROUNDS = 3
DEFAULT_CONCURRENCY = 32
TARGET_VS_SPIFF = 2.0  # issue 6: ours / Spiff throughput at least this
TARGET_TO_FLOOR = 3.0  # issue 6: ours / floor time at most this
POSTGRES_ENV_VARS = ("MADOGUCHI_BENCH_POSTGRES_URL", "MADOGUCHI_TEST_POSTGRES_URL")


@dataclass(frozen=True)
class Result:
    """Median seconds per lifecycle of one implementation over its rounds."""

    name: str
    seconds: float

    @property
    def ms(self) -> float:
        """Milliseconds per lifecycle."""
        return self.seconds * 1000.0

    @property
    def per_second(self) -> float:
        """Lifecycles per second."""
        return 1.0 / self.seconds


def load_implementations() -> tuple[OursFn, dict[str, RunFn]]:
    """Import ours (also returned alone) and the three timed implementations; fail clearly if missing."""
    try:
        from bench.floor import run_lifecycles as run_floor
        from bench.ours import run_lifecycles as run_ours
        from bench.spiff_baseline import run_lifecycles as run_spiff
    except ImportError as exc:
        raise SystemExit(f"benchmark implementation not importable: {exc}") from exc
    return run_ours, {"ours": run_ours, "floor": run_floor, "spiff": run_spiff}


def load_concurrent(concurrency: int) -> dict[str, RunFn]:
    """The concurrent rows, each bound to *concurrency* so they fit `measure`; named '<row> (concurrency C)'."""
    try:
        from bench.floor import run_concurrent as floor_concurrent
        from bench.floor import run_concurrent_group_commit as floor_group_commit
        from bench.ours import run_concurrent as ours_concurrent
        from bench.spiff_baseline import run_concurrent as spiff_concurrent
    except ImportError as exc:
        raise SystemExit(f"benchmark implementation not importable: {exc}") from exc
    rows: dict[str, ConcurrentFn] = {"ours": ours_concurrent, "floor": floor_concurrent,
                                     "floor (group commit)": floor_group_commit, "spiff": spiff_concurrent}
    return {concurrent_name(name, concurrency): bind_concurrency(fn, concurrency) for name, fn in rows.items()}


def bind_concurrency(fn: ConcurrentFn, concurrency: int) -> RunFn:
    """*fn* at a fixed concurrency, shaped like the sequential rows."""
    def run(n: int, workdir: Path) -> float:
        return fn(n, workdir, concurrency)
    return run


def concurrent_name(row: str, concurrency: int) -> str:
    """The result key of a concurrent row."""
    return f"{row} (concurrency {concurrency})"


def time_once(fn: RunFn, n: int) -> float:
    """Run *fn* for *n* lifecycles in a fresh temporary directory; seconds per lifecycle."""
    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-") as tmp:
        seconds = fn(n, Path(tmp))
    if not seconds > 0:
        raise SystemExit(f"implementation returned a non-positive time: {seconds!r}")
    return seconds


def measure(impls: dict[str, RunFn], n: int, rounds: int) -> dict[str, Result]:
    """Interleave *rounds* rounds of every implementation; keep each one's median."""
    samples: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(rounds):
        for name, fn in impls.items():
            samples[name].append(time_once(fn, n))
    return {name: Result(name, statistics.median(times)) for name, times in samples.items()}


def sqlalchemy_version() -> str:
    """Installed SQLAlchemy version, or a note that it is missing."""
    try:
        import sqlalchemy
    except ImportError:
        return "not installed"
    return str(sqlalchemy.__version__)


def print_header(n: int, rounds: int, concurrency: int) -> None:
    """Machine facts and benchmark settings."""
    print(
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"sqlite {sqlite3.sqlite_version}, cpus {os.cpu_count()}, "
        f"SQLAlchemy {sqlalchemy_version()}, {platform.platform()}"
    )
    print(
        f"settings: n={n} lifecycles (submit + 3 approvals, 4 transactions each), "
        f"rounds={rounds} (median), journal_mode=WAL, synchronous=FULL, "
        + (f"concurrency={concurrency} (and 1)" if concurrency else "sequential only")
    )
    print()


NAME_WIDTH = 36


def print_row(result: Result) -> None:
    """One table row: name, ms per lifecycle, lifecycles per second."""
    print(f"{result.name:<{NAME_WIDTH}} {result.ms:>14.3f} {result.per_second:>14.1f}")


def print_table(results: Sequence[Result]) -> None:
    """The side-by-side table."""
    print(f"{'implementation':<{NAME_WIDTH}} {'ms/lifecycle':>14} {'lifecycles/s':>14}")
    for result in results:
        print_row(result)


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def print_ratios(ours: Result, floor: Result, spiff: Result, suffix: str = "") -> None:
    """The two headline ratios (throughput vs Spiff; time vs the floor) and whether issue 6's targets hold.
    *suffix* (e.g. ' (concurrency 32)') names the concurrent ratios apart from the sequential ones."""
    vs_spiff, to_floor = ours.per_second / spiff.per_second, ours.seconds / floor.seconds
    print(f"ratio vs SpiffWorkflow{suffix}: {vs_spiff:.2f}")
    print(f"ratio to floor{suffix}: {to_floor:.2f}")
    print(f"targets: ratio vs SpiffWorkflow >= {TARGET_VS_SPIFF:g} ({_verdict(vs_spiff >= TARGET_VS_SPIFF)}), "
          f"ratio to floor <= {TARGET_TO_FLOOR:g} ({_verdict(to_floor <= TARGET_TO_FLOOR)})")
    if not suffix:  # one at a time: the most any engine writing these rows durably could reach (same fsyncs)
        print(f"bound: the floor's own ratio vs SpiffWorkflow: {floor.per_second / spiff.per_second:.2f} "
              "(an engine that cost nothing beyond the floor's statements and commits, one lifecycle at a time)")


FEW_PER_PERSON = 4  # below this many lifecycles per person, the start and the last stragglers dominate a run


def print_concurrent(results: dict[str, Result], n: int, concurrency: int) -> None:
    """The concurrent table, its ratios, and ours against the group-committed floor."""
    def row(name: str) -> Result:
        return results[concurrent_name(name, concurrency)]

    print(f"concurrent: {concurrency} lifecycles in flight (ms/lifecycle = wall time / n, i.e. 1000 / throughput)")
    if n < FEW_PER_PERSON * concurrency:
        # all C threads of a baseline start together and back off in SQLite's busy handler at once: a run this
        # short measures that burst, not the steady state (--quick is a smoke run, not a figure)
        print(f"note: n < {FEW_PER_PERSON} x concurrency: these figures are dominated by the start of the run; "
              "use a larger --n")
    print_table([row(name) for name in ("ours", "floor", "floor (group commit)", "spiff")])
    print()
    suffix = f" (concurrency {concurrency})"
    print_ratios(row("ours"), row("floor"), row("spiff"), suffix)
    print(f"ratio to floor (group commit){suffix}: {row('ours').seconds / row('floor (group commit)').seconds:.2f}"
          "  (no target: the floor with the product's own commit shape)")


def postgres_url() -> tuple[str, str] | None:
    """(variable name, URL) of the first PostgreSQL URL set in the environment."""
    for var in POSTGRES_ENV_VARS:
        url = os.environ.get(var, "").strip()
        if url:
            return var, url
    return None


def run_postgres(ours: OursFn, n: int, rounds: int) -> None:
    """Run ``ours`` against PostgreSQL if a URL is configured, else say why not."""
    found = postgres_url()
    if found is None:
        print(f"PostgreSQL: skipped (neither {' nor '.join(POSTGRES_ENV_VARS)} is set)")
        return
    var, url = found

    def on_postgres(n_: int, workdir: Path) -> float:
        return ours(n_, workdir, database_url=url)

    print(f"PostgreSQL: database from ${var}")
    print_row(measure({"ours (PostgreSQL)": on_postgres}, n, rounds)["ours (PostgreSQL)"])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help=f"lifecycles per round (default {DEFAULT_N})")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="rounds per implementation")
    parser.add_argument("--quick", action="store_true", help=f"CI smoke run: n={QUICK_N} unless --n is given")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"lifecycles in flight in the concurrent rows (default {DEFAULT_CONCURRENCY}; "
                             "0: sequential rows only)")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = QUICK_N if args.quick else DEFAULT_N
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    if args.concurrency < 0:
        parser.error("--concurrency must be 0 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the tables (sequential, concurrent), the ratios and the optional PostgreSQL row."""
    args = parse_args(argv)
    run_ours, impls = load_implementations()
    sequential = list(impls)
    if args.concurrency:
        impls |= load_concurrent(args.concurrency)  # one measure: every round interleaves all the rows
    print_header(args.n, args.rounds, args.concurrency)
    results = measure(impls, args.n, args.rounds)
    print("sequential: one lifecycle at a time")
    print_table([results[name] for name in sequential])
    print()
    print_ratios(results["ours"], results["floor"], results["spiff"])
    print()
    if args.concurrency:
        print_concurrent(results, args.n, args.concurrency)
        print()
    run_postgres(run_ours, args.n, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
