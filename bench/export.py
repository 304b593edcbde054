"""How much memory and time does `madoguchi export` take as the data grows? The export streams (one statement,
`yield_per`), so its peak memory should stay flat from thousands of rows to hundreds of thousands; this prints
rows, seconds and the Python heap's peak (tracemalloc) per size and backend.

    python bench/export.py                      # 10,000 and 100,000 requests
    python bench/export.py --sizes 1000 300000
    MADOGUCHI_BENCH_POSTGRES_URL=postgresql+psycopg://... python bench/export.py   # a PostgreSQL row too

The PostgreSQL URL (MADOGUCHI_BENCH_POSTGRES_URL, else MADOGUCHI_TEST_POSTGRES_URL) is a server where this may
create and drop a database of its own; it is never printed. Seeding is bulk SQL (no engine), not timed."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.export import Format, Period, export  # noqa: E402
from models import people  # noqa: E402
from models.db import Database  # noqa: E402
from models.requests import requests  # noqa: E402
from models.schema import upgrade  # noqa: E402
from tests.conftest import own_postgres_database  # noqa: E402

TOKYO = ZoneInfo("Asia/Tokyo")
PAYLOAD = {"purpose": "大阪出張 / business trip to Osaka", "items": [
    {"date": "2026-06-01", "payee": "JR東日本", "amount": 14_720, "tax_rate": "10", "category": "travel"}] * 3}


def seed(db: Database, n: int) -> None:
    with db.unit_of_work() as conn:
        who = people.insert_employee(conn, roles=frozenset(), email="alice@example.jp", name_ja="高橋 愛",
                                     name_en="Ai Takahashi", department_id=None, manager_id=None, hire_date=None,
                                     locale="ja", timezone="Asia/Tokyo", active=True)
    start = datetime(2026, 4, 1, tzinfo=UTC)
    batch = 5000
    for first in range(0, n, batch):
        rows = [{"number": f"EXP-2026-{i:07d}", "type": "expense", "fiscal_year": 2026, "requester_id": who,
                 "payload": PAYLOAD, "warnings": None, "status": "approved", "version": 4, "round": 1,
                 "created_at": start + timedelta(seconds=i * 30), "updated_at": start + timedelta(seconds=i * 30),
                 "decided_at": start + timedelta(seconds=i * 30 + 600)} for i in range(first, min(n, first + batch))]
        with db.unit_of_work() as conn:
            conn.execute(requests.insert(), rows)


def measure(db: Database) -> tuple[int, float, float]:
    """(rows, seconds, peak MiB of the Python heap) of a CSV export to /dev/null: timed in one run, its memory
    traced in a second (tracemalloc slows everything down several times)."""
    with open(os.devnull, "w", encoding="utf-8", newline="") as sink:
        began = time.perf_counter()
        rows = export(db, "requests", Period(None, None), TOKYO, Format.csv, sink)
        took = time.perf_counter() - began
        tracemalloc.start()
        export(db, "requests", Period(None, None), TOKYO, Format.csv, sink)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return rows, took, peak


@contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/export.db", synchronous="OFF")
        upgrade(db.engine)
        try:
            yield db
        finally:
            db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    backends: list[tuple[str, object]] = [("sqlite", sqlite_database)]
    pg_url = os.environ.get("MADOGUCHI_BENCH_POSTGRES_URL") or os.environ.get("MADOGUCHI_TEST_POSTGRES_URL")
    if pg_url:
        backends.append(("postgresql", lambda: own_postgres_database("madoguchi_bench_", server=pg_url)))
    else:
        print("PostgreSQL skipped: set MADOGUCHI_BENCH_POSTGRES_URL")
    print(f"{'backend':<11} {'requests':>9} {'seconds':>8} {'rows/s':>9} {'peak MiB':>9}")
    for name, make in backends:
        for n in args.sizes:
            with make() as db:  # type: ignore[operator]
                seed(db, n)
                rows, took, peak = measure(db)
            assert rows == n, (rows, n)
            print(f"{name:<11} {rows:>9,} {took:>8.2f} {rows / took:>9,.0f} {peak:>9.1f}")


if __name__ == "__main__":
    main()
