"""Nudge benchmark: does one tick cost what is due, not what is open? And the naive design beside it.

1. Ours: an SQLite file (WAL, synchronous=FULL) with `--small` and `--large` open requests (one pending
   assignment and its before-due / due / overdue / escalation nudge rows each, due in the coming weeks) and the
   same `--due` requests whose reminder is due now, placed at random among them (the worst case for locality).
   One whole tick (claim, digests, outbox rows, back-off rows, commit) is timed on each: `tick ratio` is
   large / small (target <= 2).
2. The naive design: one APScheduler 3 job per deadline in an SQLAlchemy job store (SQLite), `--deadlines` of
   them, `--due` of which fell due during 2 hours of downtime; after the restart (default misfire grace time)
   how many ran. Ours for the same: the rows are still there, and the first tick sends them all as one digest per
   person. Printed for both: deadlines delivered after the restart, ms to add a deadline, RSS after start.

    python bench/nudges.py                     # 1,000 vs 1,000,000 open; 100,000 APScheduler deadlines
    python bench/nudges.py --large 100000 --deadlines 10000   # quicker
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from config.policy import Policy, load_policy  # noqa: E402
from config.settings import DEFAULT_WORKFLOWS  # noqa: E402
from models import messaging, people  # noqa: E402
from models import requests as rq  # noqa: E402
from models.db import Database  # noqa: E402
from models.schema import upgrade  # noqa: E402
from workflow.nudges import DIGEST_KIND, Nudger  # noqa: E402

NOW = datetime(2026, 6, 3, 1, 0, tzinfo=UTC)  # Wednesday 10:00 in Tokyo: working hours
APPROVERS = 20
CHUNK = 50_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------------------------ ours


def build(path: Path, open_requests: int, due: int, seed: int = 7) -> Database:
    """A database with `open_requests` pending requests, `due` of them with a reminder due at NOW."""
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    rnd = random.Random(seed)
    due_at_now = set(rnd.sample(range(open_requests), due))
    with db.unit_of_work() as conn:
        requester = people.insert_employee(conn, email="r@example.jp", name_ja="申請者", name_en="Requester",
                                           hire_date=date(2020, 4, 1), locale="ja", timezone="Asia/Tokyo",
                                           active=True)
        approvers = [people.insert_employee(conn, email=f"a{i}@example.jp", name_ja=f"承認者{i}",
                                            name_en=f"Approver {i}", hire_date=date(2020, 4, 1), locale="ja",
                                            timezone="Asia/Tokyo", active=True, manager_id=requester)
                     for i in range(APPROVERS)]
    for start in range(0, open_requests, CHUNK):
        ids = range(start + 1, min(start + CHUNK, open_requests) + 1)
        with db.unit_of_work() as conn:
            _insert_chunk(conn, ids, requester, approvers, due_at_now)
    return db


def _insert_chunk(conn: sa.Connection, ids: range, requester: int, approvers: list[int],
                  due_now: set[int]) -> None:
    created = NOW - timedelta(days=1)
    conn.execute(rq.requests.insert(), [
        {"id": i, "number": f"EXP-2026-{i:07d}", "type": "expense", "fiscal_year": 2026, "requester_id": requester,
         "payload": {}, "warnings": None, "status": "pending", "version": 1, "round": 1, "created_at": created,
         "updated_at": created, "decided_at": None} for i in ids])
    conn.execute(rq.steps.insert(), [
        {"id": i, "request_id": i, "round": 1, "position": 0, "key": "manager", "kind": "approval", "required": 1,
         "cycle": 1, "status": "active", "activated_at": created, "due_at": NOW + timedelta(days=2),
         "completed_at": None} for i in ids])
    conn.execute(rq.assignments.insert(), [
        {"id": i, "request_id": i, "step_id": i, "approver_id": approvers[i % len(approvers)], "cycle": 1,
         "status": "pending", "acted_by_id": None, "comment": None, "decided_at": None} for i in ids])
    rows = []
    for i in ids:
        # the due one gets its before-due reminder now; the others fall due over the coming weeks
        first = NOW - timedelta(minutes=1) if i - 1 in due_now else NOW + timedelta(hours=1 + i % 500)
        for n, kind in enumerate(("before_due", "due", "overdue", "escalation")):
            rows.append({"request_id": i, "assignment_id": i, "target_id": approvers[i % len(approvers)],
                         "kind": kind, "due_at": first + timedelta(days=n), "state": "pending"})
    conn.execute(messaging.nudges.insert(), rows)


def time_tick(db: Database, policy: Policy, rounds: int) -> tuple[float, int, int]:
    """Median ms of one whole tick at NOW over `rounds` (the due rows are put back between rounds)."""
    times, digests, sent = [], 0, 0
    for _ in range(rounds + 1):  # the first round warms caches and statement plans up: not counted
        with db.unit_of_work() as conn:
            conn.execute(sa.text("DELETE FROM nudges WHERE sent_at IS NOT NULL AND kind = 'overdue' AND state = "
                                 "'pending'"))
            conn.execute(sa.text("UPDATE nudges SET state = 'pending', sent_at = NULL WHERE state = 'sent'"))
            conn.execute(messaging.digest_requests.delete())  # (what each digest shows: it refers to the outbox)
            conn.execute(messaging.outbox.delete())
        started = time.perf_counter()
        report = Nudger(db, policy).tick(NOW)
        times.append((time.perf_counter() - started) * 1000)
        digests, sent = report.digests, report.nudges
    return statistics.median(times[1:]), digests, sent


def ours(small: int, large: int, due: int, rounds: int, workdir: Path) -> dict[str, Any]:
    policy = load_policy(DEFAULT_WORKFLOWS)
    out: dict[str, Any] = {}
    for label, n in (("small", small), ("large", large)):
        started = time.perf_counter()
        db = build(workdir / f"{label}.db", n, due)
        built = time.perf_counter() - started
        ms, digests, sent = time_tick(db, policy, rounds)
        out[label] = {"open": n, "tick_ms": ms, "digests": digests, "sent": sent, "build_s": built}
        db.dispose()
    return out


def ours_add_ms(workdir: Path, n: int = 500) -> float:
    """ms to add one deadline: one nudge row in its own transaction (synchronous=FULL)."""
    db = build(workdir / "add.db", 1, 0)
    started = time.perf_counter()
    for i in range(n):
        with db.unit_of_work() as conn:
            messaging.schedule_nudges(conn, [{"request_id": 1, "assignment_id": 1, "target_id": 2, "kind": "due",
                                              "due_at": NOW + timedelta(minutes=i), "state": "pending"}])
    ms = (time.perf_counter() - started) * 1000 / n
    db.dispose()
    return ms


def ours_restart(path: Path) -> dict[str, Any]:
    """A fresh process after downtime: open the database, tick once; what went out and the RSS."""
    policy = load_policy(DEFAULT_WORKFLOWS)
    db = Database(f"sqlite:///{path}")
    report = Nudger(db, policy).tick(NOW)
    with db.unit_of_work(write=False) as conn:
        people_reached = conn.execute(sa.select(sa.func.count()).select_from(messaging.outbox)
                                      .where(messaging.outbox.c.kind == DIGEST_KIND)).scalar_one()
    return {"delivered": report.nudges, "digests": people_reached, "rss_mb": rss_mb()}


# ------------------------------------------------------------------------------------------------ APScheduler

RAN: list[str] = []


def deadline(name: str) -> None:
    RAN.append(name)


def aps_fill(url: str, deadlines: int, due: int) -> dict[str, Any]:
    """Before the downtime: one job per deadline; `due` of them fall due within the 2 hours it will be down."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)}, timezone=UTC)
    scheduler.start(paused=True)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(deadlines):
        when = now + timedelta(seconds=30 + i % 7000) if i < due else now + timedelta(days=3 + i % 30)
        scheduler.add_job(deadline, "date", run_date=when, args=[f"d{i}"], id=f"d{i}")
    add_ms = (time.perf_counter() - started) * 1000 / deadlines
    scheduler.shutdown(wait=False)
    # the 2 hours of downtime: move the stored run times of the first `due` jobs into the past
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE apscheduler_jobs SET next_run_time = next_run_time - 7200 WHERE id IN "
                             f"({','.join(repr(f'd{i}') for i in range(due))})"))
    engine.dispose()
    return {"add_ms": add_ms}


def aps_restart(url: str, wait: float) -> dict[str, Any]:
    """The process comes back: start the scheduler on the same job store (default misfire grace: 1 s)."""
    import logging

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    logging.basicConfig(level=logging.ERROR)
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)}, timezone=UTC)
    scheduler.start()
    rss = rss_mb()
    time.sleep(wait)
    scheduler.shutdown(wait=True)
    return {"delivered": len(RAN), "rss_mb": rss}


def child(phase: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--phase", phase, *args], check=True, capture_output=True,
                          text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------------------------------------ main


def run(small: int, large: int, due: int, deadlines: int, rounds: int, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"ours": ours(small, large, due, rounds, workdir)}
    result["tick_ratio"] = result["ours"]["large"]["tick_ms"] / result["ours"]["small"]["tick_ms"]
    result["ours_add_ms"] = ours_add_ms(workdir)
    build(workdir / "restart.db", deadlines, due).dispose()  # the same deadlines as rows; the process "restarts"
    result["ours_restart"] = child("ours-restart", str(workdir / "restart.db"))
    url = f"sqlite:///{workdir / 'aps.db'}"
    result["aps_fill"] = child("aps-fill", url, str(deadlines), str(due))
    result["aps_restart"] = child("aps-restart", url, "3")
    return result


def report(r: dict[str, Any], due: int) -> None:
    s, large = r["ours"]["small"], r["ours"]["large"]
    print(f"one tick, {due} due: {s['open']:,} open {s['tick_ms']:.2f} ms, {large['open']:,} open "
          f"{large['tick_ms']:.2f} ms ({large['sent']} nudges in {large['digests']} digests)")
    print(f"tick ratio: {r['tick_ratio']:.2f}  (target <= 2)")
    print(f"after a restart ({due} fell due during 2 h of downtime):")
    print(f"  ours (rows + tick):            delivered {r['ours_restart']['delivered']}/{due} "
          f"(as {r['ours_restart']['digests']} digests), add a deadline {r['ours_add_ms']:.2f} ms, "
          f"RSS after start {r['ours_restart']['rss_mb']:.0f} MB")
    print(f"  APScheduler job per deadline:  delivered {r['aps_restart']['delivered']}/{due}, "
          f"add a deadline {r['aps_fill']['add_ms']:.2f} ms, RSS after start {r['aps_restart']['rss_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--deadlines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--phase", nargs="+")
    args = parser.parse_args(argv)
    if args.phase:
        phase, *rest = args.phase
        if phase == "ours-restart":
            print(json.dumps(ours_restart(Path(rest[0]))))
        elif phase == "aps-fill":
            print(json.dumps(aps_fill(rest[0], int(rest[1]), int(rest[2]))))
        elif phase == "aps-restart":
            print(json.dumps(aps_restart(rest[0], float(rest[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-nudges-") as tmp:
        report(run(args.small, args.large, args.due, args.deadlines, args.rounds, Path(tmp)), args.due)


if __name__ == "__main__":
    main()
