"""bench/export.py still measures what it claims, at a tiny size (no timing asserted): every seeded request is
exported, on SQLite and PostgreSQL."""

from __future__ import annotations

from bench import export as bench
from models.db import Database


def test_the_export_bench_exports_every_seeded_request(db: Database) -> None:
    bench.seed(db, 30)
    rows, seconds, peak = bench.measure(db)
    assert rows == 30 and seconds > 0 and peak > 0
