"""A nudge digest through the real server and the stub Slack: the tick writes one digest per person, delivery DMs
it (validated by slack_sdk's models), its Approve button works as a signed click, and "Remind me tomorrow"
answers ephemerally and moves the reminder to the next working morning. Both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.scheduler import tick as tick_all
from models import messaging
from tests.conftest import Clock
from tests.e2e.test_slack_delivery import World, buttons, checked, world  # noqa: F401,F811  (the fixture)
from workflow import nudges
from workflow.nudges import DIGEST_KIND


def tick(db: Any, policy: Any, now: datetime) -> dict[str, int]:
    """The tick's nudges only (the 年5日 campaign of the same tick would DM these people too)."""
    return tick_all(db, policy, now, work=[("nudges", nudges.fire_due)])

JST = ZoneInfo("Asia/Tokyo")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST).astimezone(UTC)


async def test_a_digest_arrives_with_working_buttons_and_snooze(world: World, clock: Clock) -> None:  # noqa: F811
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    first, second = world.submit(), world.submit()
    await world.deliver()
    before = len(world.api.called("chat.postMessage"))
    # expenses are due in 3 business days (Fri 2026-06-05 10:00): the day before, ONE digest with both
    clock.now = jst(2026, 6, 4, 10, 0)
    assert tick(world.db, world.engine.policy, clock.now)["nudges"] == 2
    await world.deliver()
    posts = world.api.called("chat.postMessage")[before:]
    assert [p["channel"] for p in posts] == ["DU-manager"]
    digest = checked(posts[0])
    shown = buttons(digest)
    approves = [b for b in shown if b["action_id"].startswith("approve")]
    assert len(approves) == 2 and "EXP-2026-0001" in json.dumps(digest, ensure_ascii=False).split("EXP-2026-0002")[0]
    snooze = next(b for b in shown if b["action_id"].startswith("snooze_nudges"))

    assert await world.slack.post(world.slack.click_body("U-manager", approves[0]["action_id"],
                                                         approves[0]["value"])) == (200, "")
    assert "EXP-2026-0001" in await world.slack.last_reply()

    assert await world.slack.post(world.slack.click_body("U-manager", snooze["action_id"], snooze["value"])) \
        == (200, "")
    answer = await world.slack.last_reply()
    assert "06-05" in answer or "6/5" in answer or "2026-06-05" in answer
    # the second request's reminder now waits for Friday 09:00; the next tick sends it then, not before
    with world.db.unit_of_work(write=False) as conn:
        waiting = [n for n in messaging.nudges_for(conn, second) if n.state == "pending"]
    assert min(n.due_at for n in waiting) == jst(2026, 6, 5, 9, 0)
    assert tick(world.db, world.engine.policy, jst(2026, 6, 5, 8, 59))["nudges"] == 0
    assert tick(world.db, world.engine.policy, jst(2026, 6, 5, 9, 0))["nudges"] >= 1
    rows = [r for r in world.rows() if r.kind == DIGEST_KIND]
    assert [r.recipient_id for r in rows] == [world.org.manager, world.org.manager]
    assert [i["request_id"] for i in rows[-1].payload["items"]] == [second]
    assert first != second


async def test_a_decision_updates_the_posted_digest_until_everything_in_it_is_done(world: World,  # noqa: F811
                                                                                  clock: Clock) -> None:
    world.known_on_slack(world.org.alice, "U-alice")
    world.known_on_slack(world.org.manager, "U-manager")
    first, second = world.submit(), world.submit()
    await world.deliver()
    clock.now = jst(2026, 6, 4, 10, 0)
    tick(world.db, world.engine.policy, clock.now)
    await world.deliver()
    digest_row = next(r for r in world.rows() if r.kind == DIGEST_KIND)
    assert digest_row.message_ref is not None
    ts = digest_row.message_ref["ts"]

    def digest_updates() -> list[dict[str, Any]]:
        return [checked(u) for u in world.api.called("chat.update") if u["ts"] == ts]

    approves = [b for b in buttons(checked(world.api.called("chat.postMessage")[-1]))
                if b["action_id"].startswith("approve")]
    # one decided from the digest: the digest keeps the other with its buttons, the first as a done line
    await world.slack.post(world.slack.click_body("U-manager", approves[0]["action_id"], approves[0]["value"]))
    await world.deliver()
    shown = digest_updates()[-1]
    text = json.dumps(shown, ensure_ascii=False)
    left = [b for b in buttons(shown) if b["action_id"].startswith("approve")]
    assert [b["value"] for b in left] == [approves[1]["value"]]
    assert "対応済み" in text and "EXP-2026-0001" in text.split("対応済み")[1]
    assert any(b["action_id"].startswith("snooze_nudges") for b in buttons(shown))
    # the other one decided from its own card (not the digest): the digest says everything is done, no buttons
    outcome = world.engine.decide(int(approves[1]["value"]), world.org.manager, "approve")
    assert outcome.ok
    await world.deliver()
    final = digest_updates()[-1]
    assert not buttons(final)
    assert "すべて対応済み" in json.dumps(final, ensure_ascii=False)
    # a later round with nothing new changes nothing more (the copy already shows this)
    count = len(digest_updates())
    await world.deliver(minutes=1)
    assert len(digest_updates()) == count
    assert first != second
