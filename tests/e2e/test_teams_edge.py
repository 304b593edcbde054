"""The Teams edge end to end on loopback: Bot Framework activities POSTed to the real aiohttp server (make_app,
botbuilder's CloudAdapter, anonymous as for local use), the connector replaced by a stub HTTP server that the
activities' serviceUrl points at, on SQLite and PostgreSQL. The cards the bot sends are checked by Microsoft's
adaptivecards library."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from bot.delivery import SlackDelivery
from bot.server import make_app
from bot.teams.edge import make_adapter
from bot.teams.proactive import TeamsSender
from config.policy import Policy
from config.settings import Settings
from models import people
from models.db import Database
from models.messaging import outbox
from models.requests import requests
from tests.conftest import Clock, Org
from tests.stubs.teams_connector import TeamsConnectorStub
from tests.unit.test_adaptive_cards import validate

TENANT = "tenant-1"
MEMBERS = {
    "29:alice": {"id": "29:alice", "name": "Alice", "email": "alice@example.jp",
                 "userPrincipalName": "alice@example.jp", "aadObjectId": "aad-alice"},
    "29:manager": {"id": "29:manager", "name": "Manager", "email": "mgr@example.jp",
                   "userPrincipalName": "mgr@example.jp", "aadObjectId": "aad-manager"},
    "29:it1": {"id": "29:it1", "name": "IT One", "email": "it1@example.jp", "userPrincipalName": "it1@example.jp",
               "aadObjectId": "aad-it1"},
    "29:stranger": {"id": "29:stranger", "name": "Stranger", "email": "stranger@example.jp",
                    "userPrincipalName": "stranger@example.jp", "aadObjectId": "aad-stranger"},
}
JSON = dict[str, Any]


@dataclass
class Teams:
    """What Teams does to the bot (activities POSTed to /api/messages) and what it saw (`connector`)."""

    url: str
    connector: TeamsConnectorStub
    session: aiohttp.ClientSession
    seq: int = 0

    def activity(self, user: str, kind: str, **fields: Any) -> JSON:
        self.seq += 1
        member = MEMBERS[user]
        return {"type": kind, "id": f"in-{self.seq}", "timestamp": "2026-06-02T01:00:00Z", "channelId": "msteams",
                "serviceUrl": self.connector.url, "locale": "ja-JP",
                "from": {"id": user, "name": member["name"], "aadObjectId": member["aadObjectId"]},
                "conversation": {"id": f"a:{user}", "conversationType": "personal", "tenantId": TENANT},
                "recipient": {"id": "28:madoguchi", "name": "madoguchi"},
                "channelData": {"tenant": {"id": TENANT}}, **fields}

    async def post(self, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        async with self.session.post(self.url, data=data, headers=sent) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text) if text else None
            except ValueError:
                return response.status, text

    async def say(self, user: str, text: str) -> int:
        status, _ = await self.post(self.activity(user, "message", text=text))
        return status

    async def execute(self, user: str, data: JSON, verb: str = "x", reply_to: str = "bot-1") -> tuple[int, Any]:
        value = {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"}
        return await self.post(self.activity(user, "invoke", name="adaptiveCard/action", value=value,
                                             replyToId=reply_to))


@pytest.fixture
async def teams(db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[Teams]:
    connector = TeamsConnectorStub(members=dict(MEMBERS))
    await connector.start()
    server = TestServer(make_app(Settings.model_validate({}), database=db, policy=policy, clock=clock),
                        host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Teams(str(server.make_url("/api/messages")), connector, session)
    await server.close()
    await connector.close()


def nodes(card: Any) -> list[JSON]:
    """Every object in a card, depth first (elements, actions, ShowCards' cards...)."""
    if isinstance(card, dict):
        return [card, *(n for value in card.values() for n in nodes(value))]
    if isinstance(card, list):
        return [n for value in card for n in nodes(value)]
    return []


def inputs(card: JSON) -> dict[str, JSON]:
    return {n["id"]: n for n in nodes(card) if str(n.get("type", "")).startswith("Input.") and "id" in n}


def executes(card: JSON) -> list[JSON]:
    """Every Action.Execute of a card (in ShowCards too)."""
    return [n for n in nodes(card) if n.get("type") == "Action.Execute"]


def submit_data(card: JSON, values: JSON) -> JSON:
    """What Teams sends for the form's submit: the submit action's data with the inputs beside it."""
    submit = next(a for a in card["actions"] if a.get("type") == "Action.Execute")
    return {**submit["data"], **values}


def text_of(card: JSON) -> str:
    return json.dumps(card, ensure_ascii=False)


def request_rows(db: Database) -> list[Any]:
    with db.unit_of_work(write=False) as conn:
        return list(conn.execute(sa.select(requests.c.number, requests.c.status).order_by(requests.c.id)))


LEAVE = {"unit": "full", "period.start": "2026-06-08", "period.end": "2026-06-08"}


async def test_typed_words_open_the_form_and_a_filled_form_files_the_request(teams: Teams, db: Database) -> None:
    assert await teams.say("29:alice", "休暇") in (200, 201)
    form = teams.connector.cards("reply")[-1]
    assert {"unit", "period.start", "period.end"} <= set(inputs(form))
    # left empty: the same form comes back in place with the errors under its inputs; nothing stored
    status, errors = await teams.execute("29:alice", submit_data(form, {}))
    assert status == 200 and errors["statusCode"] == 200 and errors["type"] == "application/vnd.microsoft.card.adaptive"
    assert "attention" in text_of(errors["value"]) and request_rows(db) == []
    # filled in: the form is replaced by the outcome
    status, answer = await teams.execute("29:alice", submit_data(form, LEAVE))
    assert status == 200 and answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert "LV-2026-0001" in text_of(answer["value"])
    assert [tuple(r) for r in request_rows(db)] == [("LV-2026-0001", "pending")]
    verdicts = validate([*teams.connector.cards(), errors["value"], answer["value"]])
    assert [v["events"] for v in verdicts if not v["ok"]] == []


async def test_the_manager_approves_from_a_card_and_a_second_click_changes_nothing(teams: Teams, db: Database,
                                                                                  org: Org) -> None:
    await teams.say("29:alice", "休暇")
    await teams.execute("29:alice", submit_data(teams.connector.cards("reply")[-1], LEAVE))
    await teams.say("29:manager", "承認")  # the inbox: the approval card with its buttons
    inbox = teams.connector.cards("reply")[-1]
    approve = next(a for a in executes(inbox) if a["verb"] == "approve")
    status, answer = await teams.execute("29:manager", approve["data"], approve["verb"])
    assert status == 200 and answer["type"] == "application/vnd.microsoft.activity.message"
    assert "LV-2026-0001" in answer["value"]
    assert [tuple(r) for r in request_rows(db)] == [("LV-2026-0001", "approved")]
    _, again = await teams.execute("29:manager", approve["data"], approve["verb"])
    assert "承認済み" in again["value"] or "already" in again["value"].lower()
    assert [tuple(r) for r in request_rows(db)] == [("LV-2026-0001", "approved")]
    # the requester cannot approve their own request with the same data
    _, own = await teams.execute("29:alice", approve["data"], approve["verb"])
    assert own["type"] == "application/vnd.microsoft.activity.message"


async def test_reject_opens_the_reason_form_below_and_its_submit_rejects(teams: Teams, db: Database) -> None:
    await teams.say("29:alice", "休暇")
    await teams.execute("29:alice", submit_data(teams.connector.cards("reply")[-1], LEAVE))
    await teams.say("29:manager", "inbox")
    reject = next(a for a in executes(teams.connector.cards("reply")[-1]) if a["verb"] == "reject")
    before = len(teams.connector.sent)
    _, answer = await teams.execute("29:manager", reject["data"], reject["verb"])
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    reason = teams.connector.cards()[-1]
    assert len(teams.connector.sent) == before + 1 and "comment" in inputs(reason)
    _, empty = await teams.execute("29:manager", submit_data(reason, {}))  # a reason is required
    assert "attention" in text_of(empty["value"]) and [r.status for r in request_rows(db)] == ["pending"]
    _, done = await teams.execute("29:manager", submit_data(reason, {"comment": "繁忙期のため"}))
    assert "LV-2026-0001" in text_of(done["value"])
    assert [r.status for r in request_rows(db)] == ["rejected"]


async def test_someone_hr_has_not_registered_is_told_so_and_nothing_is_stored(teams: Teams, db: Database) -> None:
    assert await teams.say("29:stranger", "休暇") in (200, 201)
    reply = text_of(teams.connector.cards("reply")[-1])
    assert "登録" in reply
    with db.unit_of_work(write=False) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(people.chat_identities)).scalar_one() == 0
    assert request_rows(db) == []


async def test_the_conversation_reference_is_stored_for_proactive_messages(teams: Teams, db: Database,
                                                                           org: Org) -> None:
    update = teams.activity("29:alice", "installationUpdate", action="add")
    status, _ = await teams.post(update)
    assert status in (200, 201)
    assert "ヘルプ" in text_of(teams.connector.cards()[-1]) or "help" in text_of(teams.connector.cards()[-1])
    with db.unit_of_work(write=False) as conn:
        row = conn.execute(sa.select(people.chat_identities.c.employee_id, people.chat_identities.c.user_id,
                                     people.chat_identities.c.address)).one()
    assert row.employee_id == org.alice and row.user_id == "aad-alice"
    assert row.address["conversation"]["id"] == "a:29:alice"
    assert row.address["serviceUrl"] == teams.connector.url


@pytest.mark.parametrize(("raw", "headers", "status"), [
    (b"{not json", {}, 400),
    (b"[1, 2]", {}, 400),
    (b'{"type": "message"}', {}, 400),
    (b'{"type": "message", "text": "x"}', {"Content-Type": "text/plain"}, 415),
])
async def test_malformed_activities_get_a_4xx_and_change_nothing(teams: Teams, db: Database, raw: bytes,
                                                                 headers: dict[str, str], status: int) -> None:
    got, body = await teams.post(None, headers=headers, raw=raw)
    assert got == status and "error" in body
    assert teams.connector.sent == [] and request_rows(db) == []


async def test_unknown_invokes_and_foreign_card_data_are_refused_clearly(teams: Teams, db: Database) -> None:
    status, body = await teams.post(teams.activity("29:alice", "invoke", name="composeExtension/query", value={}))
    assert status == 400 and "adaptiveCard/action" in body["error"]
    status, body = await teams.execute("29:alice", {"someone": "else"}, verb="")
    assert status == 200 and body["statusCode"] == 400 and body["type"] == "application/vnd.microsoft.error"
    status, body = await teams.execute("29:alice", {"madoguchi": {"kind": "submit", "callback": "submit_request",
                                                                  "state": "garbage"}, "nope": "1"})
    assert status == 200 and body["statusCode"] == 200  # a clear card: the form is no longer valid
    assert request_rows(db) == []


async def test_with_credentials_an_unauthenticated_request_gets_401(db: Database, org: Org, policy: Policy,
                                                                    clock: Clock) -> None:
    connector = TeamsConnectorStub(members=dict(MEMBERS))
    await connector.start()
    settings = Settings.model_validate({"MICROSOFT_APP_ID": "00000000-0000-0000-0000-000000000001",
                                        "MICROSOFT_APP_PASSWORD": "secret", "MICROSOFT_APP_TENANT_ID": TENANT,
                                        "MICROSOFT_APP_TYPE": "SingleTenant"})
    server = TestServer(make_app(settings, database=db, policy=policy, clock=clock), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            teams = Teams(str(server.make_url("/api/messages")), connector, session)
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                status, _ = await teams.post(teams.activity("29:alice", "message", text="休暇"), headers=headers)
                assert status == 401
    finally:
        await server.close()
        await connector.close()
    assert connector.sent == [] and request_rows(db) == []


# ------------------------------------------------------------------------------------------------ proactive


def delivery_for(db: Database, policy: Policy, clock: Clock, slack_client: Any = None) -> SlackDelivery:
    """The delivery loop as `madoguchi serve` builds it, driven by the test: Teams through a real CloudAdapter."""
    adapter = make_adapter(Settings.model_validate({}))
    return SlackDelivery(db, policy, slack_client, pace=0, clock=clock, teams=TeamsSender(adapter, None))


async def test_a_teams_approver_gets_the_card_proactively_and_every_copy_is_updated(
        teams: Teams, db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    await teams.say("29:manager", "help")  # the manager has the app: their conversation reference is stored
    await teams.say("29:alice", "休暇")
    await teams.execute("29:alice", submit_data(teams.connector.cards("reply")[-1], LEAVE))
    delivery = delivery_for(db, policy, clock)
    assert await delivery.run_once() >= 2
    sent = {s.conversation: s for s in teams.connector.sent if s.kind == "send"}
    card, status = sent["a:29:manager"], sent["a:29:alice"]  # the approver's card, the requester's status
    approve = next(a for a in executes(card.activity["attachments"][0]["content"]) if a["verb"] == "approve")
    _, answer = await teams.execute("29:manager", approve["data"], approve["verb"], reply_to=card.activity_id)
    assert "LV-2026-0001" in answer["value"]
    await delivery.run_once()
    updates = {s.activity_id: s.activity for s in teams.connector.sent if s.kind == "update"}
    assert card.activity_id in updates and status.activity_id in updates
    assert not [a for a in executes(updates[card.activity_id]["attachments"][0]["content"])
                if a["verb"] == "approve"]  # the approver's copy shows the outcome, without buttons
    with db.unit_of_work(write=False) as conn:
        rows = conn.execute(sa.select(outbox.c.kind, outbox.c.state, outbox.c.platform)).all()
    assert {(r.state, r.platform) for r in rows} == {("sent", "teams")}
    verdicts = validate([s.activity["attachments"][0]["content"] for s in teams.connector.sent
                         if s.activity.get("attachments")])
    assert [v["events"] for v in verdicts if not v["ok"]] == []


async def test_a_teams_person_without_the_app_is_listed_as_not_reachable(
        teams: Teams, db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    await teams.say("29:alice", "休暇")
    await teams.execute("29:alice", submit_data(teams.connector.cards("reply")[-1], LEAVE))
    with db.unit_of_work() as conn:  # the manager was seen only in a team channel: no personal chat reference
        people.remember_identity(conn, org.manager, "teams", TENANT, "aad-manager", clock.now)
    await delivery_for(db, policy, clock).run_once()
    with db.unit_of_work(write=False) as conn:
        rows = conn.execute(sa.select(outbox.c.recipient_id, outbox.c.state, outbox.c.last_error)).all()
    assert {(r.state, r.last_error) for r in rows if r.recipient_id == org.manager} == \
        {("dead", "not reachable on Teams (app not installed)")}
    assert {r.state for r in rows if r.recipient_id == org.alice} == {"sent"}


async def test_a_connector_that_refuses_for_good_makes_the_row_dead_and_a_5xx_is_retried(
        teams: Teams, db: Database, policy: Policy, clock: Clock, org: Org) -> None:
    await teams.say("29:manager", "help")
    await teams.say("29:alice", "休暇")
    await teams.execute("29:alice", submit_data(teams.connector.cards("reply")[-1], LEAVE))
    teams.connector.fail_next(status=503, times=1)
    delivery = delivery_for(db, policy, clock)
    await delivery.run_once()
    with db.unit_of_work(write=False) as conn:
        states = sorted(r.state for r in conn.execute(sa.select(outbox.c.state)))
    assert states == ["pending", "sent"]  # one passing failure waits for its retry; nothing lost
    teams.connector.fail_next(status=403, times=5)
    await delivery.run_once(clock.now + timedelta(minutes=10))
    with db.unit_of_work(write=False) as conn:
        rows = conn.execute(sa.select(outbox.c.state, outbox.c.last_error)).all()
    assert sorted(r.state for r in rows) == ["dead", "sent"]
    assert any((r.last_error or "").startswith("Teams: ") for r in rows if r.state == "dead")


async def test_a_card_refreshes_itself_to_the_current_state(teams: Teams, db: Database, policy: Policy,
                                                            clock: Clock) -> None:
    """Universal Actions: the approver card carries `refresh`; Teams sends it when the card is shown, and a copy
    that missed an update comes back as the request stands now."""
    await teams.say("29:manager", "help")
    await teams.say("29:alice", "休暇")
    await teams.execute("29:alice", submit_data(teams.connector.cards("reply")[-1], LEAVE))
    await delivery_for(db, policy, clock).run_once()
    card = next(s for s in teams.connector.sent if s.kind == "send" and s.conversation == "a:29:manager")
    content = card.activity["attachments"][0]["content"]
    refresh = content["refresh"]["action"]
    assert refresh["type"] == "Action.Execute"
    _, now = await teams.execute("29:manager", refresh["data"], refresh["verb"], reply_to=card.activity_id)
    assert now["type"] == "application/vnd.microsoft.card.adaptive"
    assert [a["verb"] for a in executes(now["value"]) if a["verb"] == "approve"] == ["approve"]
    approve = next(a for a in executes(content) if a["verb"] == "approve")
    await teams.execute("29:manager", approve["data"], approve["verb"], reply_to=card.activity_id)
    _, after = await teams.execute("29:manager", refresh["data"], refresh["verb"], reply_to=card.activity_id)
    assert after["type"] == "application/vnd.microsoft.card.adaptive"
    assert not [a for a in executes(after["value"]) if a["verb"] == "approve"]  # decided: no buttons left
    assert "LV-2026-0001" in text_of(after["value"])
    assert [v["events"] for v in validate([content, now["value"], after["value"]]) if not v["ok"]] == []


IT_HELP = {"category": "device", "subject": "PCが起動しない", "details": "電源ランプが点きません", "urgency": "high"}


async def test_the_it_queue_reaches_it_people_on_teams_who_claim_and_resolve(
        teams: Teams, db: Database, policy: Policy, clock: Clock) -> None:
    """The shipped IT queue posts to a Slack channel (#it-help); with no Slack, or for IT people on Teams, each gets
    the queue's card in their own chat, claims it there and resolves it."""
    await teams.say("29:it1", "help")
    await teams.say("29:alice", "it")
    await teams.execute("29:alice", submit_data(teams.connector.cards("reply")[-1], IT_HELP))
    assert [tuple(r) for r in request_rows(db)] == [("IT-2026-0001", "pending")]
    await delivery_for(db, policy, clock).run_once()
    card = next(s for s in teams.connector.sent if s.kind == "send" and s.conversation == "a:29:it1")
    content = card.activity["attachments"][0]["content"]
    claim = next(a for a in executes(content) if a["verb"] == "claim")
    _, answer = await teams.execute("29:it1", claim["data"], claim["verb"], reply_to=card.activity_id)
    assert "IT-2026-0001" in answer["value"]
    await delivery_for(db, policy, clock).run_once()
    claimed = [s.activity for s in teams.connector.sent if s.kind == "update" and s.activity_id == card.activity_id]
    resolve = next(a for a in executes(claimed[-1]["attachments"][0]["content"]) if a["verb"] == "resolve")
    _, done = await teams.execute("29:it1", resolve["data"], resolve["verb"], reply_to=card.activity_id)
    assert "IT-2026-0001" in done["value"]
    assert [tuple(r) for r in request_rows(db)] == [("IT-2026-0001", "resolved")]
    with db.unit_of_work(write=False) as conn:  # the channel's card was not sent anywhere (no Slack here)
        rows = conn.execute(sa.select(outbox.c.payload, outbox.c.state, outbox.c.message_ref)
                            .where(outbox.c.kind == "queue_posted")).all()
    shared = [r for r in rows if r.payload.get("channel")]
    assert [(r.state, r.message_ref) for r in shared] == [("sent", None)]


async def test_help_on_teams_names_the_words_to_type_and_an_install_greets_once(teams: Teams, db: Database,
                                                                                org: Org) -> None:
    # Teams sends both for one install: the welcome (the help) must arrive once
    install = teams.activity("29:alice", "installationUpdate", action="add")
    added = teams.activity("29:alice", "conversationUpdate",
                           membersAdded=[{"id": "28:madoguchi", "name": "madoguchi"}])
    for activity in (install, added):
        status, _ = await teams.post(activity)
        assert status in (200, 201)
    greetings = teams.connector.cards()
    assert len(greetings) == 1
    shown = text_of(greetings[0])
    assert "/madoguchi" not in shown and "休暇" in shown and "状況" in shown  # typed as they are, no slash command
    with db.unit_of_work(write=False) as conn:  # the install alone stored how to reach her
        assert conn.execute(sa.select(people.chat_identities.c.address)).scalar_one() is not None
