"""SpiffWorkflow 3.2 baseline for the approval-lifecycle benchmark.

A lifecycle is: submit a request, then the manager, the department head and
finance approve it in turn (``three_step_approval.bpmn``: start event, three
sequential ``userTask``s, end event).  The BPMN is parsed once with
``SpiffWorkflow.bpmn.parser.BpmnParser``; each workflow is stored as the JSON of
``BpmnWorkflowSerializer`` in one SQLite row (WAL, ``synchronous=FULL``).

Four transactions per lifecycle, each ``BEGIN IMMEDIATE`` ... ``COMMIT``:

1. create the workflow, run engine steps to the first user task, serialize, INSERT;
2-4. SELECT the JSON, deserialize, complete the ready user task with
   ``{"decision": "approved", "by": <approver>}``, run engine steps, serialize, UPDATE.

Every lifecycle checks that the right task was ready at each step and that
the workflow is completed at the end, so the baseline cannot do less work.

``run_concurrent`` runs C lifecycles at once as a straightforward SpiffWorkflow
service would: C threads (``bench.floor.run_in_threads``), each with its own
connection (busy timeout) and one transaction per step. SpiffWorkflow has no
group commit, so none is given to it. Afterwards every stored workflow is
deserialized and must be completed.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from SpiffWorkflow.bpmn.parser import BpmnParser, BpmnValidator
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

BPMN_PATH = pathlib.Path(__file__).with_name("three_step_approval.bpmn")
PROCESS_ID = "three_step_approval"
# (user task id in the BPMN, approver recorded in the task data), in route order.
STEPS: tuple[tuple[str, str], ...] = (
    ("approve_manager", "manager"),
    ("approve_department_head", "department_head"),
    ("approve_finance", "finance"),
)
WARMUP_LIFECYCLES = 20
DB_FILENAME = "spiff_baseline.sqlite3"
BUSY_TIMEOUT_S = 30.0  # threads wait for SQLite's one write lock rather than fail


class BaselineError(RuntimeError):
    """The workflow did not reach the state the lifecycle requires."""


def _require(condition: bool, message: str) -> None:
    """Fail loudly (unlike ``assert``, this survives ``python -O``)."""
    if not condition:
        raise BaselineError(message)


def load_spec(path: pathlib.Path = BPMN_PATH) -> BpmnProcessSpec:
    """Parse and validate the BPMN file; return the process spec (done once)."""
    parser = BpmnParser(validator=BpmnValidator())
    parser.add_bpmn_file(str(path))
    return parser.get_spec(PROCESS_ID)


def open_db(workdir: pathlib.Path) -> sqlite3.Connection:
    """Open the file database in *workdir* with the product's durability settings."""
    conn = sqlite3.connect(workdir / DB_FILENAME, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    _require(mode == "wal", f"journal_mode is {mode!r}, expected 'wal'")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS workflow (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
    return conn


def _ready_user_task_name(workflow: BpmnWorkflow) -> str | None:
    """Name of the single READY manual task, or None when there is none."""
    ready = workflow.get_tasks(state=TaskState.READY, manual=True)
    _require(len(ready) <= 1, f"expected at most one ready user task, got {len(ready)}")
    return ready[0].task_spec.name if ready else None


def submit(conn: sqlite3.Connection, spec: BpmnProcessSpec, serializer: BpmnWorkflowSerializer) -> int:
    """Transaction 1: start a workflow, run it to the first user task, INSERT it."""
    workflow = BpmnWorkflow(spec)
    workflow.do_engine_steps()
    _require(_ready_user_task_name(workflow) == STEPS[0][0], "first approval is not ready after submit")
    state = serializer.serialize_json(workflow)
    conn.execute("BEGIN IMMEDIATE")
    row_id = conn.execute("INSERT INTO workflow (state) VALUES (?)", (state,)).lastrowid
    conn.execute("COMMIT")
    if row_id is None:
        raise BaselineError("INSERT returned no row id")
    return row_id


def approve(
    conn: sqlite3.Connection, serializer: BpmnWorkflowSerializer, row_id: int, task_name: str, by: str
) -> BpmnWorkflow:
    """One approval transaction: load, complete the ready user task, run, store."""
    conn.execute("BEGIN IMMEDIATE")
    (state,) = conn.execute("SELECT state FROM workflow WHERE id = ?", (row_id,)).fetchone()
    workflow = serializer.deserialize_json(state)
    (task,) = workflow.get_tasks(state=TaskState.READY, manual=True)
    _require(task.task_spec.name == task_name, f"ready task is {task.task_spec.name}, expected {task_name}")
    task.data.update({"decision": "approved", "by": by})
    task.run()
    workflow.do_engine_steps()
    conn.execute("UPDATE workflow SET state = ? WHERE id = ?", (serializer.serialize_json(workflow), row_id))
    conn.execute("COMMIT")
    return workflow


def run_one_lifecycle(
    conn: sqlite3.Connection, spec: BpmnProcessSpec, serializer: BpmnWorkflowSerializer
) -> None:
    """Submit, approve three times, and check that the workflow completed."""
    row_id = submit(conn, spec, serializer)
    workflow: BpmnWorkflow | None = None
    for task_name, by in STEPS:
        workflow = approve(conn, serializer, row_id, task_name, by)
    _require(workflow is not None and workflow.is_completed(), f"workflow {row_id} is not completed")


def run_lifecycles(n: int, workdir: pathlib.Path) -> float:
    """Run *n* timed lifecycles (after an untimed warm-up); return mean seconds per lifecycle."""
    if n < 1:
        raise ValueError("n must be at least 1")
    spec = load_spec()
    serializer = BpmnWorkflowSerializer()
    conn = open_db(workdir)
    try:
        for _ in range(WARMUP_LIFECYCLES):
            run_one_lifecycle(conn, spec, serializer)
        started = time.perf_counter()
        for _ in range(n):
            run_one_lifecycle(conn, spec, serializer)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return elapsed / n


def check_completed(workdir: pathlib.Path, serializer: BpmnWorkflowSerializer, lifecycles: int) -> None:
    """Fail unless the database holds exactly *lifecycles* workflows, every one of them completed."""
    conn = open_db(workdir)
    try:
        states = [state for (state,) in conn.execute("SELECT state FROM workflow")]
    finally:
        conn.close()
    _require(len(states) == lifecycles, f"{len(states)} workflows stored, expected {lifecycles}")
    for state in states:
        _require(serializer.deserialize_json(state).is_completed(), "a stored workflow is not completed")


def run_concurrent(n: int, workdir: pathlib.Path, concurrency: int) -> float:
    """Wall-clock seconds per lifecycle (1 / throughput) with *concurrency* threads, each with its own
    connection and one transaction per step (after an untimed warm-up); every workflow is checked afterwards."""
    from bench.floor import run_in_threads  # the floor's driver, so both baselines run concurrency alike

    if n < 1 or concurrency < 1:
        raise ValueError("n and concurrency must be at least 1")
    spec = load_spec()  # parsed once, shared: the threads only read it
    open_db(workdir).close()  # the table, made before the threads race to make it

    @contextmanager
    def person() -> Iterator[Callable[[], None]]:
        conn, serializer = open_db(workdir), BpmnWorkflowSerializer()
        try:
            yield lambda: run_one_lifecycle(conn, spec, serializer)
        finally:
            conn.close()

    warmup = max(WARMUP_LIFECYCLES, concurrency)
    run_in_threads(warmup, concurrency, person)
    elapsed = run_in_threads(n, concurrency, person)
    check_completed(workdir, BpmnWorkflowSerializer(), warmup + n)
    return elapsed / n
