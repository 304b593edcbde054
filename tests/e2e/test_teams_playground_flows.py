"""The request flows of the issue "Microsoft Teams end to end", through Microsoft's Agents Playground (each person
their own Playground, each a real Teams client) against the real server with its delivery loop: a seal request
through its three approval steps, a leave sent back and resubmitted, an expense withdrawn (and the stale click on
the approver's old card), and a nudge digest with working buttons, its snooze, and the escalation to the
approver's manager, who decides in his place. Every Adaptive Card seen is checked by Microsoft's adaptivecards
library. Both backends.

The harness and the shared helpers are tests/stubs/agents_playground.py and tests/e2e/test_teams_playground.py;
the nudge times follow tests/e2e/test_slack_nudges.py (the shipped policy: reminders the business day before the
due time, at it, when overdue, and an escalation 3 business days past it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bot.scheduler import tick as tick_all
from config.policy import Policy
from models import messaging
from models.audit import audit_events
from models.db import Database
from models.requests import assignments, steps
from tests.conftest import Clock, Org
from tests.e2e.test_teams_edge import executes, inputs
from tests.e2e.test_teams_playground import (  # noqa: F401  (server: the fixture)
    EXPENSE,
    LEAVE,
    PEOPLE,
    _person,
    bot_card,
    execute,
    execute_or_none,
    playground_available,
    server,
    shows,
    statuses,
)
from tests.stubs.agents_playground import AgentsPlayground, PlaygroundUser, Reply
from tests.unit.test_adaptive_cards import validate
from workflow import nudges
from workflow.engine import Engine

JST = ZoneInfo("Asia/Tokyo")

ALICE, MANAGER, BOB, HEAD = PEOPLE[0], PEOPLE[1], PEOPLE[2], PEOPLE[3]
LEGAL = _person("legal", "Daisuke Nakamura", "legal@example.jp")
SEAL_KEEPER = _person("seal", "Sachiko Kobayashi", "seal@example.jp")
# the seal request's people: the requester, its three approvers, and two bystanders (the roster is six exactly)
STAMP_PEOPLE = (ALICE, MANAGER, LEGAL, SEAL_KEEPER, BOB, HEAD)
# every required field of 押印申請 (config/defaults/workflows.yaml); the file field is a URL input on Teams
STAMP = {"document": "業務委託契約書", "counterparty": "株式会社サンプル", "seal": "company", "copies": "2",
         "needed_by": "2026-06-10", "file": "https://files.example.jp/contracts/2026-014.pdf",
         "notes": "原本2部に押印をお願いします"}
SMALL_EXPENSE = {"purpose": "顧客訪問", "items": [{"date": "2026-06-01", "payee": "東京メトロ", "amount": "420",
                                                "tax_rate": "10", "category": "travel"}]}


def jst(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=JST).astimezone(UTC)


def tick(db: Database, policy: Policy, now: datetime) -> dict[str, int]:
    """The tick's nudges only (the 年5日 campaign of the same tick would message these people too)."""
    return tick_all(db, policy, now, work=[("nudges", nudges.fire_due)])


@asynccontextmanager
async def playgrounds(url: str, users: Sequence[PlaygroundUser], *people: PlaygroundUser,
                      installed: Sequence[PlaygroundUser] = ()) -> AsyncIterator[list[AgentsPlayground]]:
    """One Playground per person; those `installed` add the app first (the bot greets them and can reach them
    unprompted from then on)."""
    async with AsyncExitStack() as stack:
        started = [await stack.enter_async_context(AgentsPlayground(url, users=users, current_user=p.id))
                   for p in people]
        ours = [pg for pg in started if pg.me in installed]
        for pg in ours:
            await pg.install()
        for pg in ours:
            await pg.wait_for(bot_card(shows("help")), what=f"{pg.me.name}'s welcome")
        yield started
        await asyncio.gather(*(pg.settle() for pg in started))
        assert [pg.outbound for pg in started] == [[] for _ in started]  # nothing left this machine


def card_for(number: str, verb: str = "approve") -> Callable[[Reply], bool]:
    """A new card of the bot about `number` with a `verb` button."""
    return bot_card(lambda c: number in json.dumps(c) and execute_or_none(c, verb) is not None, update=False)


def updated_without(message: Reply, verb: str = "approve",
                    also: Callable[[dict[str, Any]], bool] = lambda c: True) -> Callable[[Reply], bool]:
    """An update of `message` whose cards have no `verb` button any more (and satisfy `also`)."""
    return lambda r: (r.is_update and r.message_id == message.message_id and bool(r.cards)
                      and not any(execute_or_none(c, verb) for c in r.cards) and all(also(c) for c in r.cards))


def inputs_of(card: dict[str, Any]) -> dict[str, Any]:
    """What each input of a card holds as shown (its prefill): what Teams sends with a submit left untouched."""
    return {name: element["value"] for name, element in inputs(card).items() if "value" in element}


def assignment_rows(db: Database, request_id: int | None = None) -> list[Any]:
    with db.unit_of_work(write=False) as conn:
        query = sa.select(assignments).order_by(assignments.c.id)
        if request_id is not None:
            query = query.where(assignments.c.request_id == request_id)
        return list(conn.execute(query))


def all_valid(cards: list[dict[str, Any]]) -> None:
    verdicts = validate(cards)
    assert [v["events"] for v in verdicts if not v["ok"]] == []


# ------------------------------------------------------------------------------------------------ 押印申請


async def test_a_seal_request_goes_through_manager_legal_and_the_seal_keeper_in_their_own_teams(
        server: str, db: Database, org: Org) -> None:  # noqa: F811
    seen: list[dict[str, Any]] = []
    async with playgrounds(server, STAMP_PEOPLE, ALICE, MANAGER, LEGAL, SEAL_KEEPER,
                           installed=(MANAGER, LEGAL, SEAL_KEEPER)) as (alice, manager, legal, seal):
        await alice.send_text("stamp")
        form = await alice.wait_for(bot_card(lambda c: "counterparty" in json.dumps(c)), what="the seal form")
        await alice.click(form, title=execute(form.cards[0], "submit_request")["title"], inputs=STAMP)
        assert statuses(db) == [("STP-2026-0001", "pending")]
        status = await alice.wait_for(card_for("STP-2026-0001", "withdraw"), what="Alice's status card")
        seen += [*form.cards, *status.cards]
        # each approver gets the card proactively in their own Teams, approves there, and their card closes
        # (each closed card says who decided last: one clock for all three, so the same instant each time)
        said = ("Manager: Approved — Ichiro Suzuki", "Legal review: Approved — Daisuke Nakamura",
                "**Status:** Approved — Sachiko Kobayashi")
        for step, (pg, line) in enumerate(zip((manager, legal, seal), said, strict=True), start=1):
            card = await pg.wait_for(card_for("STP-2026-0001"), what=f"{pg.me.name}'s card", timeout=15)
            assert "https://files.example.jp/contracts/2026-014.pdf" in json.dumps(card.cards)  # the document
            answer = await pg.click(card, title=execute(card.cards[0], "approve")["title"])
            assert "STP-2026-0001" in json.dumps(answer, ensure_ascii=False)
            closed = await pg.wait_for(updated_without(card), what=f"{pg.me.name}'s card updated", timeout=15)
            assert not any(execute_or_none(c, verb) for c in closed.cards for verb in ("reject", "send_back"))
            assert line in json.dumps(closed.cards, ensure_ascii=False)
            done = [a for a in assignment_rows(db) if a.status == "approved"]
            assert len(done) == step
            seen += [*card.cards, *closed.cards]
        assert statuses(db) == [("STP-2026-0001", "approved")]
        # the requester's status card ends approved, with nothing left to press
        final = await alice.wait_for(updated_without(status, "withdraw", shows("STP-2026-0001", "Approved")),
                                     what="Alice's status card approved", timeout=15)
        assert said[-1] in json.dumps(final.cards, ensure_ascii=False)  # the Playground speaks en-US
        seen += final.cards
    approvers = {a.approver_id for a in assignment_rows(db) if a.status == "approved"}
    assert approvers == {org.manager, org.legal, org.seal_keeper}
    all_valid(seen)


# ------------------------------------------------------------------------------------------------ send back


async def test_a_leave_sent_back_is_fixed_and_resubmitted_in_teams_and_approved_in_round_two(
        server: str, db: Database) -> None:  # noqa: F811
    seen: list[dict[str, Any]] = []
    async with playgrounds(server, PEOPLE, ALICE, MANAGER, installed=(MANAGER,)) as (alice, manager):
        await alice.send_text("leave")
        form = await alice.wait_for(bot_card(lambda c: "period.start" in json.dumps(c)), what="the leave form")
        await alice.click(form, title=execute(form.cards[0], "submit_request")["title"], inputs=LEAVE)
        status = await alice.wait_for(card_for("LV-2026-0001", "withdraw"), what="Alice's status card")
        first = await manager.wait_for(card_for("LV-2026-0001"), what="the approver's card")
        # Send back asks for a reason on a new card below; its submit sends the request back
        await manager.click(first, title=execute(first.cards[0], "send_back")["title"])
        reason = await manager.wait_for(bot_card(lambda c: "comment" in json.dumps(c), update=False),
                                        what="the reason form")
        answer = await manager.click(reason, title=execute(reason.cards[0], "decide_with_reason")["title"],
                                     inputs={"comment": "日付を一日ずらしてください"})
        assert "LV-2026-0001" in json.dumps(answer, ensure_ascii=False)
        assert statuses(db) == [("LV-2026-0001", "sent_back")]
        closed = await manager.wait_for(updated_without(first), what="the round-1 card closed", timeout=15)
        # Alice's status card shows the reason and offers to fix and resubmit
        back = await alice.wait_for(
            lambda r: r.is_update and r.message_id == status.message_id
            and any(execute_or_none(c, "resubmit") and "日付を一日ずらしてください" in json.dumps(c, ensure_ascii=False)
                    for c in r.cards), what="Alice's status card with the reason", timeout=15)
        seen += [*form.cards, *status.cards, *first.cards, *reason.cards, *closed.cards, *back.cards]
        await alice.click(back, title=execute(back.cards[0], "resubmit")["title"])
        fix = await alice.wait_for(
            bot_card(lambda c: "period.start" in json.dumps(c) and "2026-06-08" in json.dumps(c), update=False),
            what="the prefilled form")
        typed = inputs_of(fix.cards[0])
        assert typed["period.start"] == "2026-06-08" and typed["unit"] == "full"
        typed |= {"period.start": "2026-06-09", "period.end": "2026-06-09", "reason": "通院のため"}
        answer = await alice.click(fix, title=execute(fix.cards[0], "submit_request")["title"], inputs=typed)
        assert "LV-2026-0001" in json.dumps(answer, ensure_ascii=False)
        assert statuses(db) == [("LV-2026-0001", "pending")]
        # the same number comes back to the manager as a new card, round 2, with the new dates
        second = await manager.wait_for(
            lambda r: card_for("LV-2026-0001")(r) and r.message_id != first.message_id, what="the round-2 card",
            timeout=15)
        text = json.dumps(second.cards, ensure_ascii=False)
        assert "2026-06-09" in text and ("Resubmission #1" in text or "再申請 1 回目" in text)
        await manager.click(second, title=execute(second.cards[0], "approve")["title"])
        assert statuses(db) == [("LV-2026-0001", "approved")]
        final = await alice.wait_for(updated_without(status, "withdraw", shows("LV-2026-0001", "Approved")),
                                     what="Alice's status card approved", timeout=15)
        assert execute_or_none(final.cards[0], "resubmit") is None
        seen += [*fix.cards, *second.cards, *final.cards]
    with db.unit_of_work(write=False) as conn:
        rounds = sorted((int(r.round), str(r.status)) for r in conn.execute(
            sa.select(steps.c.round, assignments.c.status).join(steps, steps.c.id == assignments.c.step_id)))
    assert rounds == [(1, "sent_back"), (2, "approved")]
    all_valid(seen)


# ------------------------------------------------------------------------------------------------ withdraw


async def test_an_expense_withdrawn_from_the_status_card_closes_the_approvers_card(
        server: str, db: Database) -> None:  # noqa: F811
    async with playgrounds(server, PEOPLE, ALICE, MANAGER, installed=(MANAGER,)) as (alice, manager):
        await alice.send_text("expense")
        form = await alice.wait_for(bot_card(lambda c: "items[0].payee" in json.dumps(c)), what="the form")
        await alice.click(form, title=execute(form.cards[0], "submit_request")["title"], inputs=EXPENSE)
        status = await alice.wait_for(card_for("EXP-2026-0001", "withdraw"), what="Alice's status card")
        card = await manager.wait_for(card_for("EXP-2026-0001"), what="the approver's card")
        # Withdraw asks first (a panel with the real button): pressing that withdraws
        withdraw = execute(status.cards[0], "withdraw")
        answer = await alice.click(status, title=withdraw["title"])
        assert "EXP-2026-0001" in json.dumps(answer, ensure_ascii=False)
        assert statuses(db) == [("EXP-2026-0001", "withdrawn")]
        closed = await manager.wait_for(updated_without(card, also=shows("Withdrawn")),
                                        what="the approver's card withdrawn", timeout=15)
        assert not executes(closed.cards[0])
        mine = await alice.wait_for(updated_without(status, "withdraw", shows("Withdrawn")),
                                    what="Alice's status card withdrawn", timeout=15)
        # the manager's old Approve changes nothing and says the request is no longer pending
        again = await manager.click(card, title=execute(card.cards[0], "approve")["title"])
        assert "withdrawn" in json.dumps(again, ensure_ascii=False).lower()
        assert statuses(db) == [("EXP-2026-0001", "withdrawn")]
        assert {a.status for a in assignment_rows(db)} == {"cancelled"}
    all_valid([*form.cards, *status.cards, *card.cards, *closed.cards, *mine.cards])


# ------------------------------------------------------------------------------------------------ nudges


async def test_a_digest_with_working_buttons_snooze_and_the_escalation_arrive_in_teams(
        server: str, db: Database, org: Org, policy: Policy, clock: Clock) -> None:  # noqa: F811
    # Alice filed both elsewhere and is on no chat platform: the news for her goes nowhere, yet every copy of
    # the cards (the manager's cards, the digests) must still change with each decision
    engine = Engine(db, policy, clock=clock)
    async with playgrounds(server, PEOPLE, MANAGER, HEAD, installed=(MANAGER, HEAD)) as (manager, head):
        ids = []
        for _ in range(2):
            out = engine.submit(org.alice, "expense", SMALL_EXPENSE)
            assert out.ok and out.request is not None
            ids.append(out.request.id)
        first, second = ids
        card_1 = await manager.wait_for(card_for("EXP-2026-0001"), what="the approver's first card")
        card_2 = await manager.wait_for(card_for("EXP-2026-0002"), what="the approver's second card")
        before = len(manager.replies())
        # expenses are due in 3 business days (Fri 2026-06-05 10:00): the day before, ONE digest with both
        clock.now = jst(2026, 6, 4, 10, 0)
        assert tick(db, policy, clock.now)["nudges"] == 2
        digest = await manager.wait_for(bot_card(shows("Remind me tomorrow"), update=False), what="the digest",
                                        timeout=15)
        await manager.settle()
        news = [r for r in manager.replies()[before:] if r.cards and not r.is_update]
        assert [r.message_id for r in news] == [digest.message_id]
        text = json.dumps(digest.cards, ensure_ascii=False)
        assert text.index("EXP-2026-0001") < text.index("EXP-2026-0002")
        approves = [a for a in executes(digest.cards[0]) if a["verb"] == "approve"]
        assert len(approves) == 2
        snooze = execute(digest.cards[0], "snooze_nudges")
        # Approve in the digest decides the first (its card's button: the first Approve on the digest)
        answer = await manager.click(digest, title=approves[0]["title"])
        assert "EXP-2026-0001" in json.dumps(answer, ensure_ascii=False)
        assert dict(statuses(db)) == {"EXP-2026-0001": "pending", "EXP-2026-0002": "pending"}
        decided = {a.request_id: a.status for a in assignment_rows(db) if a.approver_id == org.manager}
        assert decided == {first: "approved", second: "pending"}
        # the posted digest is brought up to date: the first as done, the second still with its buttons
        refreshed = await manager.wait_for(
            lambda r: r.is_update and r.message_id == digest.message_id
            and len([a for c in r.cards for a in executes(c) if a["verb"] == "approve"]) == 1,
            what="the digest updated", timeout=15)
        assert "Done" in json.dumps(refreshed.cards).split("EXP-2026-0002")[-1]
        closed_1 = await manager.wait_for(updated_without(card_1), what="the first card closed", timeout=15)
        # snooze answers when it will remind again, and moves the second's reminder to Friday 09:00
        answer = await manager.click(digest, title=snooze["title"])
        said = json.dumps(answer, ensure_ascii=False)
        assert "2026-06-05" in said and "09:00" in said
        with db.unit_of_work(write=False) as conn:
            waiting = [n for n in messaging.nudges_for(conn, second) if n.state == "pending"
                       and n.kind != "escalation"]
        assert min(n.due_at for n in waiting) == jst(2026, 6, 5, 9, 0)
        assert tick(db, policy, jst(2026, 6, 5, 8, 59))["nudges"] == 0
        # three business days past the due time (Wed 2026-06-10 10:00) the manager's manager gets it in HER
        # Teams, with the buttons to decide in his place
        clock.now = jst(2026, 6, 10, 10, 0)
        assert tick(db, policy, clock.now)["nudges"] >= 1
        escalated = await head.wait_for(bot_card(shows("EXP-2026-0002", "Waiting for"), update=False),
                                        what="the escalation in the head's Teams", timeout=15)
        assert "EXP-2026-0001" not in json.dumps(escalated.cards)
        answer = await head.click(escalated, title=execute(escalated.cards[0], "approve")["title"])
        assert "EXP-2026-0002" in json.dumps(answer, ensure_ascii=False)
        done = await head.wait_for(
            lambda r: r.is_update and r.message_id == escalated.message_id
            and not any(execute_or_none(c, "approve") for c in r.cards), what="the escalation digest done",
            timeout=15)
        # his own card of it closes too, saying who decided for him
        closed_2 = await manager.wait_for(updated_without(card_2, also=shows("on behalf of")),
                                          what="the second card decided on his behalf", timeout=15)
        seen = [*card_1.cards, *card_2.cards, *digest.cards, *refreshed.cards, *closed_1.cards, *escalated.cards,
                *done.cards, *closed_2.cards]
    # she acted for him: the assignment stays his, decided by her, and the audit trail says so
    mine = next(a for a in assignment_rows(db, second) if a.approver_id == org.manager)
    assert (mine.status, mine.acted_by_id) == ("approved", org.sales_head)
    with db.unit_of_work(write=False) as conn:
        events = [(e.kind, e.actor_id, json.loads(e.data)) for e in conn.execute(
            sa.select(audit_events).where(audit_events.c.request_id == second).order_by(audit_events.c.seq))]
    assert [kind for kind, _actor, _data in events if kind == "assignment.escalated"] == ["assignment.escalated"]
    approved = [(actor, data) for kind, actor, data in events if kind == "assignment.approved"]
    assert approved == [(org.sales_head, {"step": "manager", "approver": org.manager, "acting_for": org.manager,
                                          "comment": None})]
    all_valid(seen)
