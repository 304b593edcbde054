"""Slack click latency: signed Approve clicks through the real server vs a bare Bolt app that only acks.

Ours is ``bot.server.make_app`` (a fresh SQLite file migrated by Alembic, the shipped policy, a small company
whose people all have Slack identities, the delivery loop running) on 127.0.0.1, with ``SLACK_API_URL`` on the
stub Web API of the tests (``tests.stubs.slack_api``), extended here to note when each card's ``chat.update``
arrives. For each run, N fresh pending requests wait for one manager, and their cards are delivered (untimed);
then one signed ``block_actions`` click per request, shaped like Slack's, hits ``POST /slack/events``.

The baseline is a bare ``AsyncApp(process_before_response=True)`` with the same signing secret, mounted with
the same aiohttp converters on its own application and port, whose only listener acks. It gets the same clicks
at the same concurrency in the same run. Everything (clients, servers, stub) shares one event loop.

Usage, from the repository root::

    python bench/slack_latency.py [--n 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

if __package__ in (None, ""):  # run as a script: make ``import bench.*`` / ``tests.*`` work
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import slack_bolt
import sqlalchemy as sa
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bench.engine import postgres_url
from bench.ours import _own_postgres_database
from bot.server import DELIVERY, make_app
from config.policy import load_policy, with_timezone
from config.settings import Settings
from models import people
from models.db import Database
from models.messaging import outbox
from models.schema import upgrade
from tests.conftest import Org, make_org
from tests.stubs.slack_api import TEAM, SlackApiStub
from workflow.engine import Engine

DEFAULT_N = 200
QUICK_N = 20
CONCURRENCIES = (1, 50)
WARMUP = 5
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
MANAGER = "U-manager"
ACK_TIMEOUT = 30.0  # seconds per click
DRAIN_TIMEOUT = 120.0  # seconds to deliver a prepared set
CARD_TIMEOUT = 60.0  # seconds for the cards' chat.update after the last click
TARGET_RATIO, TARGET_ACK_P99_MS, TARGET_CARD_P99_MS = 3.0, 100.0, 1000.0
EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 1_000,
                                            "tax_rate": "10", "category": "travel"}]}


# ------------------------------------------------------------------------------------------ the stub


@dataclass
class TimedSlackApi(SlackApiStub):
    """The tests' stub Web API, plus when the first chat.update of each message (channel, ts) arrived."""

    updated: dict[tuple[str, str], float] = field(default_factory=dict)
    posted: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # chat.postMessage body, ts answered

    async def _api(self, request: web.Request) -> web.Response:
        response = await super()._api(request)
        call = self.calls[-1]  # appended by super() with no await since: this request's call
        if call.method == "chat.update":
            self.updated.setdefault((str(call.body.get("channel")), str(call.body.get("ts"))), time.perf_counter())
        elif call.method == "chat.postMessage" and isinstance(response.body, bytes):
            self.posted.append((call.body, str(json.loads(response.body).get("ts"))))
        return response


# ------------------------------------------------------------------------------------------ clicks


@dataclass(frozen=True)
class Card:
    """An approver card as posted to Slack: where it is and its Approve button."""

    assignment_id: str
    action_id: str
    block_id: str
    channel: str
    ts: str


def click_body(card: Card, seq: int, response_url: str) -> str:
    """A block_actions payload as Slack sends it for a click on the card's Approve button (form-encoded)."""
    payload = {
        "type": "block_actions",
        "user": {"id": MANAGER, "username": "manager", "name": "manager", "team_id": TEAM},
        "api_app_id": "A1", "token": "legacy", "trigger_id": f"{seq}.1780000000.trigger",
        "container": {"type": "message", "message_ts": card.ts, "channel_id": card.channel, "is_ephemeral": False},
        "team": {"id": TEAM, "domain": "acme"}, "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": card.channel, "name": "directmessage"},
        "message": {"type": "message", "ts": card.ts, "bot_id": "B1", "user": "UBOT", "text": "card"},
        "state": {"values": {}}, "response_url": response_url,
        "actions": [{"action_id": card.action_id, "block_id": card.block_id, "value": card.assignment_id,
                     "type": "button", "text": {"type": "plain_text", "text": "承認"},
                     "action_ts": f"{time.time():.6f}"}],
    }
    return urlencode({"payload": json.dumps(payload, ensure_ascii=False)})


def signed_headers(body: str) -> dict[str, str]:
    """Slack's signature headers for this body, now."""
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature or ""}


async def click(session: aiohttp.ClientSession, url: str, body: str, gate: asyncio.Semaphore) -> tuple[float, float]:
    """POST one signed click; (sent, answered) perf_counter times. Anything but 200 fails the bench."""
    async with gate:
        headers = signed_headers(body)
        sent = time.perf_counter()
        async with session.post(url, data=body.encode(), headers=headers) as response:
            await response.read()
            answered = time.perf_counter()
        if response.status != 200:
            raise RuntimeError(f"click answered {response.status}")
        return sent, answered


async def click_all(url: str, bodies: Sequence[str], concurrency: int) -> list[tuple[float, float]]:
    """Every click, at most `concurrency` in flight; (sent, answered) per click, in order."""
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=ACK_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        return await asyncio.gather(*(click(session, url, b, gate) for b in bodies))


# ------------------------------------------------------------------------------------------ servers


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Run `app` on 127.0.0.1 (AppRunner + TCPSite); yields its /slack/events URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        await runner.cleanup()


def bare_bolt_app(api_url: str) -> web.Application:
    """The baseline: a Bolt app whose only listener acks a block action, mounted on its own aiohttp app."""
    # a static bot token (on the client): Bolt calls auth.test on the stub once, during the warm-up
    bolt = AsyncApp(signing_secret=SECRET, process_before_response=True,
                    client=AsyncWebClient(token=TOKEN, base_url=api_url))

    @bolt.block_action(re.compile(".*"))
    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    return app


# ------------------------------------------------------------------------------------------ ours


@dataclass
class Ours:
    """The real server's world: its database, an engine on it, the company and the stub it talks to."""

    url: str
    api: TimedSlackApi
    db: Database
    engine: Engine
    org: Org


def with_identities(db: Database) -> tuple[Org, dict[str, str]]:
    """The company, every employee known on Slack as U-<field of Org>; and Slack id -> email for users.info."""
    org = make_org(db)
    now = datetime.now(UTC)
    users: dict[str, str] = {}
    with db.unit_of_work() as conn:
        emails = dict(conn.execute(sa.select(people.employees.c.id, people.employees.c.email)).all())
        for f in fields(org):
            if f.name in ("sales", "backoffice"):
                continue
            user = "U-manager" if f.name == "manager" else f"U-{f.name}"
            people.remember_identity(conn, getattr(org, f.name), "slack", TEAM, user, now)
            users[user] = str(emails[getattr(org, f.name)])
    return org, users


@asynccontextmanager
async def our_server(database_url: str) -> AsyncIterator[Ours]:
    """make_app on a freshly migrated database, delivering in the background, on 127.0.0.1."""
    db = Database(database_url, pool_size=60)
    upgrade(db.engine)
    org, users = with_identities(db)
    api = TimedSlackApi(users=users)
    await api.start()
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
                                        "SLACK_API_URL": api.api_url})
    app = make_app(settings, database=db, deliver=True)
    app[DELIVERY].pace = 0.0  # make_app has no pace option; one manager's 200 cards share one DM channel
    policy = with_timezone(load_policy(settings.workflows), settings.timezone)
    try:
        async with serving(app) as url:
            yield Ours(url, api, db, Engine(db, policy), org)
    finally:
        await api.close()
        db.dispose()


def submit(ours: Ours, n: int) -> list[str]:
    """N pending expense requests by alice and bob, each waiting for the manager; their assignment ids."""
    ids: list[str] = []
    for i in range(n):
        out = ours.engine.submit(ours.org.alice if i % 2 == 0 else ours.org.bob, "expense", EXPENSE)
        if not out.ok or len(out.open_assignments) != 1:
            raise RuntimeError(f"submit failed: {out.code}")
        ids.append(str(out.open_assignments[0]))
    return ids


async def drained(db: Database) -> None:
    """Wait (bounded) until the delivery loop has nothing left to send."""
    query = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.state.in_(("pending", "sending")))
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        with db.unit_of_work(write=False) as conn:
            if conn.execute(query).scalar_one() == 0:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the outbox was not drained within {DRAIN_TIMEOUT:g} s")


def posted_cards(api: TimedSlackApi, assignment_ids: Sequence[str]) -> list[Card]:
    """The manager's cards for these assignments, as the stub received them (with the ts it gave back)."""
    wanted = set(assignment_ids)
    found: dict[str, Card] = {}
    for body, ts in api.posted:
        if body.get("channel") != f"D{MANAGER}":
            continue
        for block in body.get("blocks", []):
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id", "").startswith("approve") and element.get("value") in wanted:
                    found[element["value"]] = Card(element["value"], element["action_id"], block.get("block_id", "Ab1C"),
                                                   f"D{MANAGER}", ts)
    missing = wanted - found.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} cards were not posted")
    return [found[a] for a in assignment_ids]


async def prepared(ours: Ours, n: int) -> list[Card]:
    """N fresh pending requests whose cards are on Slack (untimed)."""
    ids = await asyncio.to_thread(submit, ours, n)
    await drained(ours.db)
    return posted_cards(ours.api, ids)


# ------------------------------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class Figures:
    """One row: milliseconds per click (ack, or click to card updated) and how many never got there."""

    ms: list[float]
    missing: int = 0

    def p50(self) -> float:
        return statistics.median(self.ms) if self.ms else math.nan

    def p99(self) -> float:
        """Nearest-rank 99th percentile."""
        if not self.ms:
            return math.nan
        ranked = sorted(self.ms)
        return ranked[max(0, math.ceil(0.99 * len(ranked)) - 1)]


def acks(times: Sequence[tuple[float, float]]) -> Figures:
    """Ack milliseconds from (sent, answered) pairs."""
    return Figures([(answered - sent) * 1000.0 for sent, answered in times])


async def card_updates(api: TimedSlackApi, cards: Sequence[Card], times: Sequence[tuple[float, float]]) -> Figures:
    """Click to the arrival of the card's chat.update, waiting (bounded) for the last ones."""
    keys = [(card.channel, card.ts) for card in cards]
    deadline = time.monotonic() + CARD_TIMEOUT
    while time.monotonic() < deadline and not all(k in api.updated for k in keys):
        await asyncio.sleep(0.02)
    ms = [(api.updated[k] - sent) * 1000.0 for k, (sent, _) in zip(keys, times, strict=True) if k in api.updated]
    return Figures(ms, missing=len(keys) - len(ms))


Results = dict[tuple[str, int], Figures]


async def one_concurrency(ours: Ours, base_url: str, n: int, concurrency: int, results: Results) -> None:
    """A fresh set of N delivered cards; the clicks on ours, then the same clicks on the bare app."""
    cards = await prepared(ours, n)
    bodies = [click_body(c, i, ours.api.response_url(f"c{concurrency}-{i}")) for i, c in enumerate(cards)]
    times = await click_all(ours.url, bodies, concurrency)
    results[("ack ours", concurrency)] = acks(times)
    results[("card ours", concurrency)] = await card_updates(ours.api, cards, times)
    results[("ack bare", concurrency)] = acks(await click_all(base_url, bodies, concurrency))
    await drained(ours.db)  # the next approvers' cards leave before the next set, untimed


async def run_backend(database_url: str, n: int) -> Results:
    """Ours on this database and the bare Bolt app, side by side: warm-up, then each concurrency."""
    results: Results = {}
    async with our_server(database_url) as ours, serving(bare_bolt_app(ours.api.api_url)) as base_url:
        warm = await prepared(ours, WARMUP)  # users.info, auth.test, connections, first queries: untimed
        bodies = [click_body(c, i, ours.api.response_url(f"warm-{i}")) for i, c in enumerate(warm)]
        await click_all(ours.url, bodies, 1)
        await click_all(base_url, bodies, 1)
        await drained(ours.db)
        for concurrency in CONCURRENCIES:
            await one_concurrency(ours, base_url, n, concurrency, results)
    return results


# ------------------------------------------------------------------------------------------ printing


def print_header(n: int) -> None:
    """Machine facts and settings."""
    print(f"python {platform.python_version()} ({platform.python_implementation()}), sqlite {sqlite3.sqlite_version}, "
          f"cpus {os.cpu_count()}, slack-bolt {slack_bolt.version.__version__}, aiohttp {aiohttp.__version__}, "
          f"SQLAlchemy {sa.__version__}, {platform.platform()}")
    print(f"settings: n={n} clicks per run (each on its own pending request, cards delivered first), "
          f"concurrency {' and '.join(map(str, CONCURRENCIES))}, warm-up {WARMUP} clicks (untimed), "
          f"SQLite WAL synchronous=FULL")
    print("delivery: make_app's loop, pace set to 0 on its SlackDelivery (make_app has no option for it); "
          "the loop rests 0.5 s when idle (run_forever's default, not configurable from make_app)")
    print("everything on 127.0.0.1 in one process and one event loop: clients, ours, the bare Bolt app, "
          "the stub Web API")
    print()


def verdict(value: float, limit: float) -> str:
    return "met" if value <= limit else "MISSED"


def print_rows(results: Results, label: str) -> None:
    """Ack and click-to-card rows per concurrency, with the issue's targets beside them."""
    print(f"{'row':<42} {'conc':>4} {'p50 ms':>9} {'p99 ms':>9}  target")
    names = {"ack ours": f"ack, ours ({label})", "ack bare": "ack, bare Bolt (process_before_response)",
             "card ours": f"click-to-card-updated, ours ({label})"}
    for concurrency in CONCURRENCIES:
        for key, name in names.items():
            row = results[(key, concurrency)]
            target = ""
            if key == "ack ours" and concurrency == max(CONCURRENCIES):
                target = f"p99 <= {TARGET_ACK_P99_MS:g} ms: {verdict(row.p99(), TARGET_ACK_P99_MS)}"
            elif key == "card ours" and concurrency == max(CONCURRENCIES):
                target = f"p99 <= {TARGET_CARD_P99_MS:g} ms: {verdict(row.p99(), TARGET_CARD_P99_MS)}"
            if row.missing:
                target += f" ({row.missing} cards never updated within {CARD_TIMEOUT:g} s)"
            print(f"{name:<42} {concurrency:>4} {row.p50():>9.2f} {row.p99():>9.2f}  {target}")
    ratio = results[("ack ours", 1)].p50() / results[("ack bare", 1)].p50()
    print(f"p50 ratio: {ratio:.2f}  (ours ack p50 / bare Bolt ack p50 at concurrency 1; "
          f"target <= {TARGET_RATIO:g}: {verdict(ratio, TARGET_RATIO)})")


@contextmanager
def sqlite_file() -> Any:
    """A fresh SQLite file URL in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-slack-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'ours.db'}"


def run_postgres(n: int) -> None:
    """Ours on a database of its own on the configured PostgreSQL server, if any."""
    found = postgres_url()
    if found is None:
        print("PostgreSQL: skipped (neither MADOGUCHI_BENCH_POSTGRES_URL nor MADOGUCHI_TEST_POSTGRES_URL is set)")
        return
    var, url = found
    print(f"PostgreSQL: a database of its own on the server from ${var} (created, then dropped)")
    with _own_postgres_database(url) as own:
        print_rows(asyncio.run(run_backend(own, n)), "PostgreSQL")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help=f"clicks per run (default {DEFAULT_N})")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: n={QUICK_N} unless --n is given")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = QUICK_N if args.quick else DEFAULT_N
    if args.n < 1:
        parser.error("--n must be at least 1")
    return args


def main(argv: Sequence[str] | None = None, *, postgres: bool = True) -> int:
    """Measure ours on SQLite (and PostgreSQL when configured) against the bare Bolt app; print the rows."""
    args = parse_args(argv)
    print_header(args.n)
    with sqlite_file() as url:
        print_rows(asyncio.run(run_backend(url, args.n)), "SQLite")
    print()
    if postgres:
        run_postgres(args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
