"""The IT queue in a Teams channel, through Microsoft's Agents Playground: someone of IT types `channel it` in a
team channel (the Playground's "Announcements"), which makes it the queue's channel; a request filed in Teams then
arrives there as ONE shared card (no personal copies for the IT people the channel reaches), an IT member claims
it and resolves it from that card, the card follows, and the requester's status card shows the outcome. Someone
outside IT cannot register a channel; typed in a personal chat the command explains. Both backends."""

from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa

from models.channels import queue_channels
from models.db import Database
from tests.e2e.test_teams_playground import (  # noqa: F401  (playground_available, server: fixtures)
    _person,
    bot_card,
    execute,
    execute_or_none,
    playground_available,
    server,
    shows,
    statuses,
)
from tests.stubs.agents_playground import AgentsPlayground, Reply
from tests.unit.test_adaptive_cards import validate

PEOPLE = (
    _person("alice", "Alice Ito", "alice@example.jp"),
    _person("it1", "Sho Kato", "it1@example.jp"),
    _person("it2", "Yu Yoshida", "it2@example.jp"),
    _person("manager", "Kenji Sato", "mgr@example.jp"),
    _person("bob", "Bob Kato", "bob@example.jp"),
    _person("hr", "Misaki Yamamoto", "hr@example.jp"),
)
IT = {"category": "device", "subject": "ノートPCが起動しない", "details": "電源ランプが点きません",
      "urgency": "high"}


def in_channel(reply: Reply, channel: str) -> bool:
    """In the channel itself or in one of its threads (`<channel>;messageid=<thread>`: a reply to a post)."""
    return reply.conversation_id.split(";messageid=")[0] == channel


def registered(db: Database) -> list[tuple[str, str, str]]:
    with db.unit_of_work(write=False) as conn:
        return [(r.platform, r.channel, r.address["conversation"]["id"])
                for r in conn.execute(sa.select(queue_channels))]


async def test_an_it_request_is_claimed_and_resolved_in_the_queues_teams_channel(server: str,  # noqa: F811
                                                                                db: Database) -> None:
    async with (AgentsPlayground(server, users=PEOPLE, current_user="29:alice") as alice,
                AgentsPlayground(server, users=PEOPLE, current_user="29:it1") as it1):
        channel = it1.channel_ids[1]
        # the app added to the team: its welcome in the channel says how to make it the queue's channel
        await it1.install(channel)
        welcome = await it1.wait_for(lambda r: in_channel(r, channel) and bool(r.cards), what="the welcome")
        assert "channel it" in json.dumps(welcome.cards, ensure_ascii=False)
        # outside IT: refused, nothing stored; in a personal chat: how to do it
        await alice.send_text("channel it", conversation_id=alice.channel_ids[1])
        await alice.wait_for(bot_card(shows("Only the people who handle")), what="the refusal")
        await it1.send_text("channel it")
        await it1.wait_for(bot_card(shows("mention madoguchi in that team channel")), what="how to register")
        assert registered(db) == []
        await it1.send_text("channel it", conversation_id=channel)
        await it1.wait_for(lambda r: in_channel(r, channel) and any(
            "now where" in json.dumps(c) for c in r.cards), what="the channel registered")
        assert registered(db) == [("teams", "#it-help", channel)]

        await alice.send_text("it")
        form = await alice.wait_for(bot_card(lambda c: "subject" in json.dumps(c)), what="the IT form")
        await alice.click(form, title=execute(form.cards[0], "submit_request")["title"], inputs=IT)
        assert statuses(db) == [("IT-2026-0001", "pending")]
        # ONE card, in the channel, with Claim; not a personal copy for it1 (the channel reaches him)
        shared = await it1.wait_for(lambda r: in_channel(r, channel) and any(
            "IT-2026-0001" in json.dumps(c, ensure_ascii=False) for c in r.cards), what="the queue's card")
        await asyncio.sleep(0.5)
        assert [r for r in it1.replies(it1.conversation_id) if "IT-2026-0001" in json.dumps(r.cards)] == []
        # a post in a channel is the root of its thread: Teams sends its card's actions from that thread
        thread = f"{channel};messageid={shared.message_id}"
        answer = await it1.click(shared, title=execute(shared.cards[0], "claim")["title"], conversation_id=thread)
        assert "IT-2026-0001" in json.dumps(answer, ensure_ascii=False)
        claimed = await it1.wait_for(
            lambda r: r.is_update and r.message_id == shared.message_id
            and any(execute_or_none(c, "resolve") for c in r.cards), what="the card claimed, with Resolved")
        assert "Sho Kato" in json.dumps(claimed.cards, ensure_ascii=False) or \
            "加藤" in json.dumps(claimed.cards, ensure_ascii=False)
        await it1.click(claimed, title=execute(claimed.cards[0], "resolve")["title"], conversation_id=thread)
        resolved = await it1.wait_for(
            lambda r: r.is_update and r.message_id == shared.message_id
            and not any(execute_or_none(c, "resolve") or execute_or_none(c, "claim") for c in r.cards),
            what="the card resolved, without buttons")
        assert statuses(db) == [("IT-2026-0001", "resolved")]
        status = await alice.wait_for(bot_card(shows("IT-2026-0001"), update=True), what="Alice's status card")
        await asyncio.gather(alice.settle(), it1.settle())
        assert alice.outbound == [] and it1.outbound == []
    verdicts = validate([*welcome.cards, *shared.cards, *claimed.cards, *resolved.cards, *status.cards])
    assert [v["events"] for v in verdicts if not v["ok"]] == []
