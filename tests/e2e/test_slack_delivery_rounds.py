"""How the delivery loop spends its calls: copies of a card that already show the right thing are not updated
again, DM channels are opened once per person, requests delivered side by side keep each request's order, and a
decision's card is not held behind a broadcast's backlog. Both backends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from bot.delivery import IN_FLIGHT, SlackDelivery
from models.messaging import OutboxMessage, outbox
from tests.e2e import test_slack_delivery
from tests.e2e.test_slack_delivery import World
from workflow import broadcasts
from workflow.audiences import Audience

world = test_slack_delivery.world  # the same fixture: a server, a stub Slack, a delivery driven by the test


def _again(world: World, kind: str) -> None:
    """Make the rows of this kind due once more, as an expired lease would."""
    with world.db.unit_of_work() as conn:
        conn.execute(outbox.update().where(outbox.c.kind == kind)
                     .values(state="pending", next_attempt_at=world.clock.now))


def _request_ids(statement: str) -> list[int]:
    """The requests a traced statement reads: `steps.request_id = 7` or `steps.request_id IN (7, 8)`."""
    found = re.search(r"steps\.request_id (?:= \d+|IN \([\d, ]+\))", statement)
    return [int(i) for i in re.findall(r"\d+", found[0])] if found else []


def _updates(world: World, channel: str) -> int:
    return sum(1 for c in world.api.called("chat.update") if c["channel"] == channel)


async def test_a_card_copy_that_already_shows_the_outcome_is_not_updated_again(world: World) -> None:
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    world.submit()
    await world.deliver()
    assignment = next(r.payload["assignment_id"] for r in world.rows() if r.kind == "approval_requested")
    assert world.engine.decide(assignment, world.org.manager, "approve").ok
    await world.deliver()
    assert _updates(world, "DU-manager") == 1 and _updates(world, "DU-alice") == 1

    _again(world, "step_decided")  # the requester's news goes out again (e.g. its lease ran out)
    assert await world.deliver() == 1
    assert _updates(world, "DU-alice") == 2  # the row's own message is always sent
    assert _updates(world, "DU-manager") == 1  # the card shows that already: not sent again

    # a process that remembers nothing (a restart) updates every copy once: never a stale card
    world.delivery = SlackDelivery(world.db, world.delivery.policy, world.delivery.client, pace=0,
                                   clock=world.clock)
    _again(world, "step_decided")
    assert await world.deliver() == 1
    assert _updates(world, "DU-manager") == 2


async def test_a_dm_channel_is_opened_once_per_person(world: World) -> None:
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    for _ in range(3):
        world.submit()
    await world.deliver()
    opened = [c["users"] for c in world.api.called("conversations.open")]
    assert sorted(opened) == ["U-alice", "U-manager"]
    assert len(world.api.called("chat.postMessage")) == 6


async def test_requests_delivered_side_by_side_keep_each_requests_order(world: World) -> None:
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    ids = [world.submit() for _ in range(4)]
    with world.db.unit_of_work(write=False) as conn:
        assignments = {r.request_id: r.payload["assignment_id"] for r in
                       conn.execute(sa.select(outbox).where(outbox.c.kind == "approval_requested"))}
    # every request's first news and its decision are due in the same round, so they are claimed together
    for request_id in ids:
        assert world.engine.decide(assignments[request_id], world.org.manager, "approve").ok
    assert await world.deliver() == len(world.rows())
    # (the next approvers have no Slack identity here: their cards are dead, which is not this test's point)
    assert {r.state for r in world.rows() if r.recipient_id in (world.org.alice, world.org.manager)} == {"sent"}
    # each request's status message was posted first, then updated in place with its decision (not a second
    # post): the decision's row was planned only after the first row was recorded
    posts = [c for c in world.api.called("chat.postMessage") if c["channel"] == "DU-alice"]
    assert len(posts) == len(ids)
    updates = [c for c in world.api.called("chat.update") if c["channel"] == "DU-alice"]
    assert len(updates) == len(ids)
    status = {r.request_id: r.message_ref for r in world.rows() if r.kind == "submitted"}
    assert {u["ts"] for u in updates} == {ref["ts"] for ref in status.values() if ref}
    # and, in the calls as Slack got them, each status message's update comes after the post that made it
    calls = world.api.calls
    first_post_to_alice = next(i for i, c in enumerate(calls) if c.method == "chat.postMessage"
                               and c.body.get("channel") == "DU-alice")
    for ref in status.values():
        assert ref is not None
        updated = next(i for i, c in enumerate(calls) if c.method == "chat.update" and c.body.get("ts") == ref["ts"])
        assert first_post_to_alice < updated


async def test_without_a_pace_batches_follow_one_another_while_earlier_rows_are_under_way(world: World) -> None:
    """IN_FLIGHT batches at most: with Slack holding every post, that many batches are claimed (not one: a slow
    call holds nothing back; not all: what is claimed stays bounded); once Slack answers, every row goes, each
    request's news in order."""
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    requests = IN_FLIGHT + 2
    for _ in range(requests):
        world.submit()  # two rows each: the requester's status message and the manager's card
    world.delivery.batch = 2
    held = world.api.hold("chat.postMessage")
    delivering = asyncio.ensure_future(world.deliver())

    def claimed() -> int:
        return sum(1 for r in world.rows() if r.state == "sending")

    for _ in range(200):
        if claimed() >= 2 * IN_FLIGHT:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # nothing more is claimed while they wait
    assert claimed() == 2 * IN_FLIGHT < 2 * requests and not delivering.done()
    held.set()
    assert await delivering == 2 * requests
    assert {r.state for r in world.rows()} == {"sent"}
    posts = [c for c in world.api.called("chat.postMessage") if c["channel"] == "DU-alice"]
    assert len(posts) == requests and not world.api.called("chat.update")  # each status message posted once


async def test_a_requests_rows_read_its_details_once_while_later_batches_are_claimed(world: World) -> None:
    """A decision's rows (the requester's news, the next approvers' cards) are planned one after the other; their
    request's details are read once for all of them while its version is unchanged, even when later batches are
    claimed while the first row waits for Slack, as under load (SQLite: the statements are traced)."""
    if world.db.dialect != "sqlite":
        pytest.skip("statements are counted with sqlite3's trace callback")
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    world.known_on_slack(world.org.finance1, "U-finance1")
    world.known_on_slack(world.org.finance2, "U-finance2")
    ids = [world.submit() for _ in range(IN_FLIGHT + 2)]
    await world.deliver()
    for row in [r for r in world.rows() if r.kind == "approval_requested"]:
        assert world.engine.decide(row.payload["assignment_id"], world.org.manager, "approve").ok
    statements: list[str] = []

    def traced(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    sa.event.listen(world.db.engine, "checkout", traced)
    world.db.dispose()  # every connection from here on is a new checkout, traced
    try:
        world.delivery.batch = 3  # a decision's three rows: the requester's news and the two finance cards
        held = world.api.hold("chat.update")  # each request's first row waits for Slack...
        delivering = asyncio.ensure_future(world.deliver())
        for _ in range(200):  # ...while the next batches are claimed
            if sum(1 for r in world.rows() if r.state == "sending") >= 3 * IN_FLIGHT:
                break
            await asyncio.sleep(0.01)
        held.set()
        assert await delivering == 3 * len(ids)
    finally:
        sa.event.remove(world.db.engine, "checkout", traced)
    routes_read = [s for s in statements if s.startswith("SELECT") and "FROM steps" in s and "steps.round" in s]
    # one read of each request's route, not one per row; a batch's requests are read together (one IN list)
    assert sorted(i for s in routes_read for i in _request_ids(s)) == sorted(ids)
    assert len(routes_read) < len(ids)


async def _a_decision_behind_a_backlog(world: World, broadcast_count: int) -> tuple[OutboxMessage, int]:
    """Everyone on Slack, a request's card delivered, `broadcast_count` HR broadcasts to everyone not yet delivered,
    then the card's approval: returns the card's row and how many people each broadcast reaches."""
    org = world.org
    people = {org.ceo, org.sales_head, org.manager, org.alice, org.bob, org.finance1, org.finance2, org.legal,
              org.seal_keeper, org.it1, org.it2, org.hr, org.admin}
    for person in people:
        world.known_on_slack(person, f"U{person}")
    world.submit()
    await world.deliver()
    for i in range(broadcast_count):
        created = broadcasts.create(world.db, world.delivery.policy, broadcasts.Draft(
            org.hr, Audience("everyone"), message_ja=f"お知らせ {i}", message_en=f"Notice {i}"), world.clock.now)
        assert created.ok
    card = next(r for r in world.rows() if r.kind == "approval_requested")
    world.clock.advance(seconds=1)
    assert world.engine.decide(card.payload["assignment_id"], org.manager, "approve").ok
    return card, len(people)


@asynccontextmanager
async def _while_slack_holds(world: World, method: str) -> AsyncIterator[tuple[list[str], asyncio.Future[int]]]:
    """A delivery round under way while Slack holds every `method` call: the Web API methods as they reach Slack
    (before any answer), and the round. On leaving, Slack answers and the round ends."""
    arrived: list[str] = []
    world.api.witness = arrived.append
    held = world.api.hold(method)
    delivering = asyncio.ensure_future(world.deliver())
    try:
        yield arrived, delivering
    finally:
        held.set()
        try:
            await delivering
        finally:
            world.api.witness = None


async def _until(condition: Callable[[], bool], tries: int, failure: str) -> None:
    """Wait (tries x 10 ms at most) until `condition` holds; else the test fails saying `failure`."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(failure)


async def test_a_decision_s_card_is_not_held_behind_a_broadcast_s_backlog(world: World) -> None:
    """An HR broadcast's DMs that were due first (at Slack's pace, minutes of them) do not hold back the card of a
    decision taken after: the requester's news, which updates the clicked card, is claimed before them."""
    card, people = await _a_decision_behind_a_backlog(world, 3)  # a backlog: everyone's DM of three broadcasts
    backlog = sum(1 for r in world.rows() if r.kind == broadcasts.KIND)
    assert backlog == 3 * people
    world.delivery.batch = 5
    calls = world.api.emulator.calls
    start = len(calls)
    await world.deliver()
    after = calls[start:]
    updated = next(i for i, c in enumerate(after) if c.method == "chat.update"
                   and c.body["channel"] == card.message_ref["channel"] and c.body["ts"] == card.message_ref["ts"])
    posted_before = sum(1 for c in after[:updated] if c.method == "chat.postMessage")
    assert posted_before < world.delivery.batch  # at most the rest of the card's own batch; claimed in order: 39
    assert sum(1 for c in after if c.method == "chat.postMessage") >= backlog  # and the backlog went out after it


async def test_while_a_decision_s_news_waits_for_slack_the_backlog_behind_it_waits_too(world: World) -> None:
    """Claimed first is not enough: rows of later batches, quicker to plan, could be sent while the news is still
    under way. Nothing claimed with it or after it goes out until it is done (a Slack slow to answer the card's
    update holds the broadcast's DMs, not the other way round)."""
    _card, people = await _a_decision_behind_a_backlog(world, 1)
    world.delivery.batch = 3
    async with _while_slack_holds(world, "chat.update") as (arrived, _delivering):
        # the news's updates reach Slack and wait there...
        await _until(lambda: "chat.update" in arrived, 500, "the card's update never reached Slack")
        for _ in range(30):  # ...and the later batches have every chance to overtake them meanwhile
            await asyncio.sleep(0.01)
        assert "chat.postMessage" not in arrived
    assert arrived.count("chat.postMessage") >= people  # then they all went


async def test_a_batch_slower_to_read_ahead_still_goes_before_the_batch_claimed_after_it(world: World) -> None:
    """Each batch's requests are read ahead before its rows are planned, and a batch of one request has nothing to
    read ahead. When the first batch's read is slower, the second must still find the first one's rows of a request
    to wait for, not the other way round: otherwise a request's news went out of order, and the first batch's news
    waited for the second batch, whose rows wait for that news (nothing was ever sent again). PostgreSQL: the test
    holds the requests' table so that the first batch's read waits (SQLite's single writer serialises the reads
    and the claims)."""
    if world.db.dialect != "postgresql":
        pytest.skip("a read is held back with PostgreSQL's table lock")
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    first, second = world.submit(), world.submit()
    # claimed in order (news first): [first's status, second's status, first's card], then [second's card]
    world.delivery.batch = 3
    with world.db.engine.connect() as holder:
        holder.execute(sa.text("LOCK TABLE requests IN ACCESS EXCLUSIVE MODE"))
        delivering = asyncio.ensure_future(world.deliver())
        for _ in range(500):  # both batches claimed; the first one's read waits for the lock
            if sum(1 for r in world.rows() if r.state == "sending") == 4:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the two batches were not claimed")
        await asyncio.sleep(0.05)
        holder.rollback()
    done, _ = await asyncio.wait([delivering], timeout=30)  # a liveness bound, not a speed figure
    assert done, "the delivery round never ended"
    assert await delivering == 4 and {r.state for r in world.rows()} == {"sent"}
    # each request's status message was posted before its card (the emulator's ts increase across its workspace)
    posted = {(r.request_id, r.kind): float(r.message_ref["ts"]) for r in world.rows() if r.message_ref}
    for request_id in (first, second):
        assert posted[request_id, "submitted"] < posted[request_id, "approval_requested"]


async def test_the_rows_behind_news_that_slack_holds_for_long_go_on_after_a_while(world: World) -> None:
    """Waiting behind the news only orders the sends: once it has waited `urgent_wait` (10 s; here 0.2) for news
    still under way, the backlog goes on, so that no bug in that order can ever stop the delivery."""
    _card, people = await _a_decision_behind_a_backlog(world, 1)
    world.delivery.batch = 3
    world.delivery.urgent_wait = 0.2
    # the news's update waits at Slack for as long as the test likes
    async with _while_slack_holds(world, "chat.update") as (arrived, delivering):
        await _until(lambda: arrived.count("chat.postMessage") >= people, 1000,
                     "the backlog waited for the news for ever")
        assert not delivering.done()  # the news is still held at Slack
    assert {r.state for r in world.rows()} == {"sent"}
