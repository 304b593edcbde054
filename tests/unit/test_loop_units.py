"""Units of work on the event loop's thread (models/loop_units.py), without a database: a unit's waits go to the
loop, which runs other work meanwhile; errors and cancellations reach the unit where it waits; `LoopWriter` runs at
most its slots at once. (tests/integration/test_loop_units_postgres.py: the same with PostgreSQL's waits.)"""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from models.loop_units import LoopWriter, on_loop, run, wait_for

LIMIT = 10.0  # seconds before a test that would hang fails instead


def test_a_unit_runs_on_the_callers_thread_and_returns_its_result() -> None:
    def unit(a: int, b: int) -> tuple[int, bool, str]:
        return a + b, on_loop(), threading.current_thread().name

    assert asyncio.run(run(unit, 2, 3)) == (5, True, threading.current_thread().name)
    assert not on_loop()


def test_outside_a_unit_there_is_no_loop_to_wait_on() -> None:
    async def nothing() -> None:
        pass

    waited = nothing()
    with pytest.raises(RuntimeError, match="outside a unit"):
        wait_for(waited)
    waited.close()


def test_while_one_unit_waits_another_runs_on_the_same_thread() -> None:
    """Unit A waits for an event only unit B sets: with A's wait blocking the thread, this would never end."""

    async def main() -> list[str]:
        event = asyncio.Event()
        said: list[str] = []

        def a() -> str:
            said.append("a waits")
            wait_for(event.wait())
            said.append("a goes on")
            return "a"

        def b() -> str:
            said.append("b sets")
            event.set()
            return "b"

        done = await asyncio.wait_for(asyncio.gather(run(a), run(b)), LIMIT)
        assert done == ["a", "b"]
        return said

    assert asyncio.run(main()) == ["a waits", "b sets", "a goes on"]


def test_an_error_of_what_a_unit_waits_for_is_raised_in_the_unit() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise LookupError("the server went away")

    def unit() -> str:
        try:
            wait_for(fails())
        except LookupError as exc:
            return f"rolled back: {exc}"
        return "committed"

    assert asyncio.run(run(unit)) == "rolled back: the server went away"


def test_an_error_of_the_unit_itself_reaches_the_caller() -> None:
    def unit() -> None:
        wait_for(asyncio.sleep(0))
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        asyncio.run(run(unit))


def test_a_cancelled_caller_has_its_unit_told_where_it_waits() -> None:
    """The unit's own clean-up (a transaction's rollback) runs, and may itself wait on the loop."""

    async def main() -> list[str]:
        said: list[str] = []
        started = asyncio.Event()

        def unit() -> None:
            try:
                started.set()
                wait_for(asyncio.Event().wait())  # never set: only the cancellation ends it
            except asyncio.CancelledError:
                said.append("cancelled where it waited")
                wait_for(asyncio.sleep(0))  # a rollback waits for the server too
                said.append("rolled back")
                raise

        task = asyncio.ensure_future(run(unit))
        await asyncio.wait_for(started.wait(), LIMIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return said

    assert asyncio.run(main()) == ["cancelled where it waited", "rolled back"]


def test_the_writer_runs_at_most_its_slots_at_once_and_the_rest_in_turn() -> None:
    async def main() -> tuple[int, list[int]]:
        writer = LoopWriter(slots=2)
        inside, most, finished = 0, 0, []
        gate = asyncio.Event()

        def unit(i: int) -> int:
            nonlocal inside, most
            inside += 1
            most = max(most, inside)
            wait_for(gate.wait())
            inside -= 1
            finished.append(i)
            return i

        calls = asyncio.gather(*(writer.run(unit, i) for i in range(5)))
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        assert await asyncio.wait_for(calls, LIMIT) == [0, 1, 2, 3, 4]
        return most, finished

    most, finished = asyncio.run(main())
    assert most == 2
    assert finished == [0, 1, 2, 3, 4]


def test_a_unit_run_in_a_copied_context_sees_the_callers_variables() -> None:
    """bot.writer.on_writer runs a call in a copy of the caller's context (the request id reaches the use case)."""
    trace: contextvars.ContextVar[str] = contextvars.ContextVar("trace", default="-")

    def unit() -> tuple[str, str]:
        before = trace.get()
        wait_for(asyncio.sleep(0))
        return before, trace.get()

    async def main() -> tuple[str, str]:
        trace.set("req-1")
        context = contextvars.copy_context()
        trace.set("req-2")  # the caller moves on: the unit keeps what it was given
        return await run(context.run, unit)

    assert asyncio.run(main()) == ("req-1", "req-1")
