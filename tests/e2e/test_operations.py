"""The operator's side of the real server (make_app on loopback, really signed Slack requests in, the stub Slack Web
API out), on SQLite and PostgreSQL: `/metrics` after a flow (parsed by prometheus-client's own parser), `/readyz`
failing with its reason and recovering (schema behind head; PostgreSQL unreachable through a proxy that is cut),
the request id that follows a request from the HTTP edge through the outbox to delivery's log line, and a JSON
log at DEBUG that holds none of the secrets or message texts the flow used."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.signature import SignatureVerifier
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.delivery import SlackDelivery
from bot.logging_setup import QUIET, REDACTED, configure
from bot.readiness import Readiness
from bot.scheduler import Ticker
from bot.server import DELIVERY, make_app
from config.policy import Policy
from config.settings import Settings, get_settings
from models import messaging
from models.db import Database
from models.messaging import TRACE_KEY, OutboxMessage, outbox
from models.schema import downgrade, head_revision, upgrade
from tests.conftest import PG_URL, Clock, Org
from tests.e2e.test_slack_edge import EXPENSE, LEAVE, SECRET, USERS, Slack, approve_button, file
from tests.stubs.slack_api import SlackApiStub
from tests.stubs.tcp_proxy import TcpProxy
from workflow import broadcasts as bc
from workflow.audiences import Audience

TOKEN = "xoxb-ops-5e3c7d9a1b"
SIGNING = SECRET  # the signing secret the Slack helper signs with
APP_PASSWORD = "teams-app-password-9d1e"
BROADCAST_JA = "防災訓練は金曜の十五時からです。"
BROADCAST_EN = "The fire drill starts Friday at three."


class Ops:
    def __init__(self, slack: Slack, app_url: str, delivery: SlackDelivery, db: Database, org: Org,
                 clock: Clock, log: io.StringIO) -> None:
        self.slack, self.url, self.delivery, self.db, self.org, self.clock = slack, app_url, delivery, db, org, clock
        self.log = log

    async def get(self, path: str) -> tuple[int, str]:
        async with self.slack.session.get(f"{self.url}{path}") as response:
            return response.status, await response.text()

    async def signed(self, body: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """A signed POST to /slack/events; returns the status and the X-Request-Id the server answered with."""
        timestamp = str(int(time.time()))
        signature = SignatureVerifier(SIGNING).generate_signature(timestamp=timestamp, body=body) or ""
        sent = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": timestamp,
                "X-Slack-Signature": signature, **(headers or {})}
        async with self.slack.session.post(self.slack.url, data=body.encode(), headers=sent) as response:
            await response.read()
            return response.status, response.headers["X-Request-Id"]

    async def deliver_all(self) -> None:
        while await self.delivery.run_once(self.clock.now):
            pass

    def rows(self) -> list[OutboxMessage]:
        with self.db.unit_of_work(write=False) as conn:
            return [OutboxMessage(**r._mapping) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id))]

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]


def settings_for(api_url: str, **extra: Any) -> Settings:
    return Settings.model_validate({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING,
                                    "SLACK_API_URL": api_url, "MICROSOFT_APP_PASSWORD": APP_PASSWORD,
                                    "MADOGUCHI_LOG_FORMAT": "json", "MADOGUCHI_LOG_LEVEL": "DEBUG", **extra})


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    """The process's logging as `madoguchi serve` sets it up (JSON, DEBUG), into a buffer; undone afterwards."""
    levels = {name: logging.getLogger(name).level for name in QUIET}
    root_level = logging.getLogger().level
    stream = io.StringIO()
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "madoguchi", False)]:
        root.removeHandler(handler)
    root.setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
async def ops(db: Database, org: Org, policy: Policy, clock: Clock, captured_log: io.StringIO) -> AsyncIterator[Ops]:
    api = SlackApiStub(users=dict(USERS))
    await api.start()
    url = PG_URL if db.dialect == "postgresql" else "sqlite:///ops.db"
    settings = settings_for(api.api_url, DATABASE_URL=url)
    configure(settings, stream=captured_log)
    app = make_app(settings, database=db, policy=policy, clock=clock)  # the test runs delivery's rounds
    app[DELIVERY].pace = 0  # no per-channel pace: the test's rows go out at once
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        yield Ops(Slack(base, api, session), base, app[DELIVERY], db, org, clock, captured_log)
    await server.close()
    await api.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# ------------------------------------------------------------------------------------------------ /metrics


async def test_metrics_after_a_flow_count_what_happened(ops: Ops, db: Database, org: Org, policy: Policy,
                                                        clock: Clock) -> None:
    slack = ops.slack
    assert await file(slack, "U-alice", "休暇", LEAVE) == (200, "")
    button = await approve_button(slack, "U-manager")
    assert (await ops.signed(slack.click_body("U-manager", button["action_id"], button["value"])))[0] == 200
    assert await file(slack, "U-alice", "経費", EXPENSE) == (200, "")  # left waiting: its reminders fall due
    # a broadcast to everyone: those never seen on Slack get nothing (dead rows), the others a DM
    assert bc.create(db, policy, bc.Draft(org.hr, Audience("everyone"), BROADCAST_JA, BROADCAST_EN, True),
                     clock.now).ok
    # Slack refuses the first post once (429): retried after Retry-After, and counted
    slack.api.fail_next("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "1"})
    await ops.deliver_all()
    clock.advance(seconds=2)
    await ops.deliver_all()
    clock.advance(days=10)  # the leave's reminders are past due (nobody ticks here); the broadcast is no longer recent

    status, text = await ops.get("/metrics")
    assert status == 200
    got = samples(text)
    rows = ops.rows()
    states = {s: sum(1 for r in rows if r.state == s) for s in ("sent", "dead", "pending", "sending")}
    assert states["pending"] == states["sending"] == 0 and states["sent"] >= 3 and states["dead"] >= 1
    assert got[("madoguchi_deliveries_total", (("result", "sent"),))] == states["sent"]
    assert got[("madoguchi_deliveries_total", (("result", "dead"),))] == states["dead"]
    assert got[("madoguchi_deliveries_total", (("result", "retry"),))] == 1
    assert got[("madoguchi_rate_limited_total", (("platform", "slack"),))] == 1
    assert got[("madoguchi_decisions_total", (("outcome", "approved"),))] == 1
    assert got[("madoguchi_decision_seconds_count", ())] == 1
    assert got[("madoguchi_requests", (("status", "approved"), ("type", "leave")))] == 1
    assert got[("madoguchi_requests", (("status", "pending"), ("type", "expense")))] == 1
    assert got[("madoguchi_outbox_messages", (("state", "dead"),))] == states["dead"]
    assert got[("madoguchi_outbox_messages", (("state", "pending"),))] == 0
    assert got[("madoguchi_outbox_oldest_age_seconds", ())] == 0
    assert got[("madoguchi_database_up", ())] == 1
    # the leave command, its submission, the approver's inbox command, the click, the expense command and submission
    assert got[("madoguchi_http_requests_total", (("route", "/slack/events"), ("status", "200")))] == 6
    with db.unit_of_work(write=False) as conn:
        oldest_due = conn.execute(sa.select(sa.func.min(messaging.nudges.c.due_at))
                                  .where(messaging.nudges.c.state == "pending")).scalar_one()
    assert oldest_due is not None and oldest_due < clock.now
    assert got[("madoguchi_nudge_lag_seconds", ())] == pytest.approx((clock.now - oldest_due).total_seconds())
    assert not [labels for name, labels in got if name == "madoguchi_broadcast_progress_ratio"]


async def test_broadcast_progress_is_the_share_of_its_messages_done(ops: Ops, db: Database, org: Org,
                                                                    policy: Policy, clock: Clock) -> None:
    created = bc.create(db, policy, bc.Draft(org.hr, Audience("everyone"), BROADCAST_JA, BROADCAST_EN, True),
                        clock.now)
    assert created.ok
    before = samples((await ops.get("/metrics"))[1])
    progress = [(labels, v) for (name, labels), v in before.items() if name == "madoguchi_broadcast_progress_ratio"]
    assert [v for _, v in progress] == [0.0]
    await ops.deliver_all()
    after = samples((await ops.get("/metrics"))[1])
    labels = progress[0][0]
    assert after[("madoguchi_broadcast_progress_ratio", labels)] == 1.0
    total = sum(v for (name, _), v in after.items() if name == "madoguchi_broadcast_messages")
    assert total == created.count


# ------------------------------------------------------------------------------------------------ request id


async def test_the_request_id_follows_a_request_into_the_outbox_and_delivery(ops: Ops, db: Database) -> None:
    slack = ops.slack
    view = await slack.open_form("U-alice", "休暇")
    status, rid = await ops.signed(slack.submission_body("U-alice", view, LEAVE),
                                   headers={"X-Request-Id": "req-submit-0001"})
    assert (status, rid) == (200, "req-submit-0001")
    rows = ops.rows()
    assert rows and {r.payload[TRACE_KEY] for r in rows} == {"req-submit-0001"}
    await ops.deliver_all()
    lines = ops.lines()
    edge = [line for line in lines if line["logger"] == "madoguchi.http" and line["request_id"] == rid]
    assert edge and "POST /slack/events 200" in edge[0]["message"]
    delivered = [line for line in lines if line["logger"] == "bot.delivery" and line["request_id"] == rid]
    # the requester's DM went out; the approver's card is dead (the manager never used Slack yet): both said so
    # under the request id of the submission
    done = {r.id: r.state for r in ops.rows()}
    assert sorted(done.values()) == ["dead", "sent"]
    assert {f"outbox row {i}: {state}" for i, state in done.items()} == \
        {line["message"].split(" (")[0] for line in delivered}
    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)


@pytest.mark.parametrize("given", ["", "short", "has spaces in it", "x" * 101, "evil\u3000id-0001", "a/b/c/d/e/f"])
async def test_an_unusable_request_id_is_replaced_by_a_fresh_one(ops: Ops, given: str) -> None:
    async with ops.slack.session.get(f"{ops.url}/healthz", headers={"X-Request-Id": given}) as response:
        assert response.status == 200
        answered = response.headers["X-Request-Id"]
    assert answered != given and len(answered) == 32 and int(answered, 16) >= 0


async def test_an_unknown_path_is_answered_with_a_request_id_and_counted_as_unmatched(ops: Ops) -> None:
    async with ops.slack.session.get(f"{ops.url}/wp-admin/setup.php?x=1",
                                     headers={"X-Request-Id": "probe-0000-1111"}) as response:
        assert response.status == 404 and response.headers["X-Request-Id"] == "probe-0000-1111"
    got = samples((await ops.get("/metrics"))[1])
    assert got[("madoguchi_http_requests_total", (("route", "unmatched"), ("status", "404")))] == 1
    assert not [labels for name, labels in got if "wp-admin" in str(labels)]  # no label per path tried


# ------------------------------------------------------------------------------------------------ secret-free


async def test_a_debug_json_log_of_a_flow_holds_no_secret_and_no_message_text(ops: Ops, db: Database, org: Org,
                                                                               policy: Policy, clock: Clock) -> None:
    slack = ops.slack
    assert await file(slack, "U-alice", "休暇", {**LEAVE, "reason": "通院のため"}) == (200, "")
    button = await approve_button(slack, "U-manager")
    assert (await ops.signed(slack.click_body("U-manager", button["action_id"], button["value"])))[0] == 200
    assert bc.create(db, policy, bc.Draft(org.hr, Audience("everyone"), BROADCAST_JA, BROADCAST_EN, True),
                     clock.now).ok
    await ops.deliver_all()
    await ops.get("/metrics")
    # a forged request: Bolt logs a refused request's body at INFO (held back: slack_bolt is kept at WARNING)
    assert (await slack.post(slack.command_body("U-alice", "秘密の相談"), secret="forged-secret"))[0] == 401
    log = ops.log.getvalue()
    assert len(log.splitlines()) > 20  # DEBUG and INFO lines of the whole flow were captured
    assert json.loads(log.splitlines()[-1])["logger"] == "madoguchi.http"
    secrets = [TOKEN, SIGNING, APP_PASSWORD]
    if db.dialect == "postgresql":
        password = sa.make_url(PG_URL or "").password
        if password:
            secrets.append(password)
    texts = [BROADCAST_JA, BROADCAST_EN, "通院のため", "防災訓練", "秘密の相談", "%E7%A7%98%E5%AF%86"]
    assert [s for s in secrets + texts if s in log] == []
    assert REDACTED not in log  # nothing even tried to log a secret (the redactor is only the last guard)


# ------------------------------------------------------------------------------------------------ /readyz


async def test_readyz_with_the_schema_behind_head_says_so_until_upgraded(ops: Ops, db: Database) -> None:
    status, body = await ops.get("/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready"})
    head = head_revision()
    assert head is not None
    downgrade(db.engine, "-1")
    try:
        status, body = await ops.get("/readyz")
        answer = json.loads(body)
        assert status == 503 and answer["status"] == "not ready"
        behind = f"{int(head) - 1:04d}"  # revisions are numbered 0001, 0002, ...
        assert len(answer["reasons"]) == 1 and answer["reasons"][0].startswith(f"schema at {behind}, expected {head}")
        assert "madoguchi db upgrade" in answer["reasons"][0]
    finally:
        upgrade(db.engine)
    status, body = await ops.get("/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready"})


async def test_readyz_with_postgresql_unreachable_says_so_until_it_is_back(db: Database, policy: Policy,
                                                                           tmp_path: Any) -> None:
    if db.dialect != "postgresql":
        pytest.skip("a server to cut off is PostgreSQL's (SQLite is a file)")
    url = db.engine.url
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    via_proxy = Database(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    server = TestServer(make_app(Settings(), database=via_proxy, policy=policy, tick=False), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async def ready() -> tuple[int, Any]:
                async with session.get(server.make_url("/readyz")) as response:
                    return response.status, await response.json()

            assert await ready() == (200, {"status": "ready"})
            await proxy.cut()
            status, answer = await ready()
            assert status == 503 and answer["status"] == "not ready"
            assert [r.split(":")[0] for r in answer["reasons"]] == ["database unreachable"]
            assert str(proxy.port) in answer["reasons"][0]  # the driver's message names where it failed
            await proxy.restore()
            deadline = time.monotonic() + 10
            while (got := await ready())[0] != 200:  # the pool notices the broken connections, then reconnects
                assert time.monotonic() < deadline, got
                await asyncio.sleep(0.05)
            assert got == (200, {"status": "ready"})
    finally:
        await server.close()
        via_proxy.dispose()
        await proxy.close()


async def test_readiness_requires_a_ticking_scheduler_only_when_the_tick_is_on(db: Database, policy: Policy) -> None:
    ticker = Ticker(db, policy, interval=1.0)  # never started: it stalls after 3 intervals
    readiness = Readiness(db, ticker)
    deadline = time.monotonic() + 10
    while not (reasons := await readiness.reasons()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert len(reasons) == 1 and reasons[0].startswith("scheduler: no tick finished for")
    await ticker.run_once()
    assert await readiness.reasons() == []
    assert await Readiness(db, None).reasons() == []  # the tick is off for this process: not required


# ------------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(("name", "value"), [("MADOGUCHI_LOG_FORMAT", "xml"), ("MADOGUCHI_LOG_LEVEL", "LOUD"),
                                             ("MADOGUCHI_SLACK_RATE", "-3")])
def test_serve_refuses_a_bad_operations_setting_naming_it(name: str, value: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve", "--port", "0"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert name in result.output and repr(value) in result.output
    assert "Traceback" not in result.output
