"""Replies sent after an answer (`bot.slack.app.Background`) behind the people's requests (`bot.people_first`): while
a person waits, they are parked, and one task waits for the gate for all of them; once it opens they start in the
order they came; an error in one does not stop the others; shutdown (`drain`) waits for parked ones too; and the
gate lets them go after `max_wait` even under a load that never pauses."""

from __future__ import annotations

import asyncio

from bot.people_first import PeopleFirst
from bot.slack.app import Background


async def test_replies_parked_while_a_person_waits_start_in_order_once_the_gate_opens() -> None:
    gate = PeopleFirst(hold=0.01, max_wait=60.0)
    later = Background(gate)
    done: list[str] = []

    async def reply(name: str) -> None:
        done.append(name)

    async def broken() -> None:
        raise RuntimeError("the Web API said no")

    with gate.serving():
        later.start(reply("a"), "reply a")
        later.start(broken(), "broken reply")
        later.start(reply("b"), "reply b")
        await asyncio.sleep(0.03)
        assert done == []  # a person is still waiting
        assert len(later._tasks) == 1  # one task waits for the gate, not one per reply
    with gate.serving():  # the next click, within `hold`: still parked
        later.start(reply("c"), "reply c")
    assert not gate.open and done == []
    await asyncio.wait_for(later.drain(), 5)
    assert gate.open and done == ["a", "b", "c"]


async def test_with_the_gate_open_a_reply_starts_at_once() -> None:
    gate = PeopleFirst(hold=0.0, max_wait=60.0)
    later = Background(gate)
    done: list[str] = []

    async def reply() -> None:
        done.append("now")

    later.start(reply(), "reply")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert done == ["now"]


async def test_parked_replies_go_after_max_wait_under_a_load_that_never_pauses() -> None:
    gate = PeopleFirst(hold=0.0, max_wait=0.05)
    later = Background(gate)
    done: list[str] = []

    async def reply() -> None:
        done.append("sent")

    with gate.serving():
        later.start(reply(), "reply")
        await asyncio.wait_for(later.drain(), 5)  # the person is still waiting, yet the reply went
        assert done == ["sent"] and not gate.open
        later.start(reply(), "reply")  # overdue: parked work goes at once until the gate opens
        await asyncio.wait_for(later.drain(), 5)
        assert done == ["sent", "sent"]
