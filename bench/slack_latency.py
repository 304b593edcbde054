"""Slack click latency: signed Approve clicks through the real server vs a bare Bolt app that only acks.

Ours is ``bot.server.make_app`` (a fresh SQLite file migrated by Alembic, the shipped policy, a small company
whose people all have Slack identities, the delivery loop running) on 127.0.0.1, with ``SLACK_API_URL`` on the
stub Web API of the tests (``tests.stubs.slack_api``), extended here to note when each card's ``chat.update``
arrives. For each run, N fresh pending requests wait for one manager, and their cards are delivered (untimed);
then one signed ``block_actions`` click per request, shaped like Slack's, hits ``POST /slack/events``.

The baseline is a bare ``AsyncApp(process_before_response=True)`` with the same signing secret, mounted with
the same aiohttp converters on its own application, whose only listener acks. It gets the same clicks at the
same concurrency in the same run. So does a third app, the floor of committing before the ack: the bare app whose
listener first commits one row to an SQLite file (WAL, synchronous=FULL) on a thread of its own (`floor ratio`).

As in a deployment, each side runs in a process of its own (spawned): the stub Slack, ours, the bare Bolt apps;
the clients that send the clicks run in the bench's own process, which also prepares the requests (untimed).
In one process the clients and the stub would share the server's event loop and GIL, and the figures would
measure them too. Times are taken with ``time.monotonic`` (CLOCK_MONOTONIC on Linux: one clock for every process
of the machine), so a click sent by the clients and its card's chat.update seen by the stub share a time line.

Usage, from the repository root::

    python bench/slack_latency.py [--n 200] [--quick] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import math
import multiprocessing
import multiprocessing.process
import os
import platform
import queue
import re
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
from bot.server import DELIVERY, SLACK_EVENTS, make_app, settle_heap_at_start
from config.policy import load_policy, with_timezone
from config.settings import Settings
from models import people
from models.db import Database, normalize_url
from models.messaging import outbox
from models.schema import upgrade
from tests.conftest import Org, make_org, scratch_database
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
START_TIMEOUT = 120.0  # seconds for a spawned server to listen (imports included)
STOP_TIMEOUT = 30.0  # seconds for a spawned server to clean up before it is killed
CLOCK = time.monotonic  # CLOCK_MONOTONIC on Linux: the same clock in every process of the machine
TARGET_RATIO, TARGET_ACK_P99_MS, TARGET_CARD_P99_MS = 3.0, 100.0, 1000.0
EXPENSE = {"purpose": "大阪出張", "items": [{"date": "2026-06-01", "payee": "JR東日本", "amount": 1_000,
                                            "tax_rate": "10", "category": "travel"}]}


# ------------------------------------------------------------------------------------------ the stub


@dataclass
class TimedSlackApi(SlackApiStub):
    """The tests' stub Web API, plus when the first chat.update of each message (channel, ts) arrived."""

    updated: dict[tuple[str, str], float] = field(default_factory=dict)
    posted: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # chat.postMessage body, ts answered

    async def timed_api(self, request: web.Request) -> web.Response:
        response = await self.emulator.handle_api(request)
        call = self.calls[-1]  # appended by handle_api with no await since: this request's call
        if call.method == "chat.update":
            self.updated.setdefault((str(call.body.get("channel")), str(call.body.get("ts"))), CLOCK())
        elif call.method == "chat.postMessage" and isinstance(response.body, bytes):
            self.posted.append((call.body, str(json.loads(response.body).get("ts"))))
        return response


async def stub_slack(users: dict[str, str]) -> web.Application:
    """The stub Web API and response_url hooks, and what the bench reads back (untimed): the messages posted
    to a channel (`/_bench/posted?channel=`), and when each message's first chat.update came
    (`/_bench/updated`: [channel, ts, CLOCK time])."""
    api = TimedSlackApi(users=users)

    async def posted(request: web.Request) -> web.Response:
        channel = request.query["channel"]
        return web.json_response([[body, ts] for body, ts in api.posted if body.get("channel") == channel])

    async def updated(_: web.Request) -> web.Response:
        return web.json_response([[channel, ts, at] for (channel, ts), at in api.updated.items()])

    app = web.Application()
    app.router.add_route("*", "/api/{method}", api.timed_api)
    app.router.add_post("/hooks/{name}", api.emulator.handle_hook)
    app.router.add_get("/_bench/posted", posted)
    app.router.add_get("/_bench/updated", updated)
    serve_cpu(app)
    return app


def own_cpu() -> float:
    """Seconds of CPU this process has used so far (every thread: an event loop, a writer)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve_cpu(app: web.Application) -> None:
    """`GET /_bench/cpu`: the serving process's `own_cpu()`."""

    async def cpu(_: web.Request) -> web.Response:
        return web.json_response(own_cpu())

    app.router.add_get("/_bench/cpu", cpu)


def postgres_cpu() -> float | None:
    """Seconds of CPU used so far by every PostgreSQL process on this machine (the postmaster and its backends,
    from /proc), or None where that cannot be read. The bench's server is the one on loopback; others are idle."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                line = stat.read()
        except OSError:
            continue  # ended meanwhile
        name, _, rest = line.partition(") ")
        if name.endswith("(postgres"):
            fields_ = rest.split()
            total += int(fields_[11]) + int(fields_[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / ticks


# ------------------------------------------------------------------------------------------ the servers


async def our_server(database_url: str, api_url: str, profile: bool) -> web.Application:
    """make_app on the bench's database, delivering in the background. `profile`: cProfile the event loop's
    thread between `POST /_bench/profile/start` and `POST /_bench/profile/stop?path=` (written there)."""
    db = Database(database_url)  # as `madoguchi serve` makes it (PostgreSQL: its default pool and writer of 5)
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
                                        "SLACK_API_URL": api_url})
    app = make_app(settings, database=db, deliver=True)
    settle_heap_at_start(app)  # as `madoguchi serve` does
    app[DELIVERY].pace = 0.0  # make_app has no pace option; one manager's 200 cards share one DM channel

    async def dispose(_: web.Application) -> None:
        db.dispose()

    app.on_cleanup.append(dispose)
    serve_cpu(app)
    if profile:
        _profiling(app)
    return app


def _profiling(app: web.Application) -> None:
    profiler = cProfile.Profile()

    async def start(_: web.Request) -> web.Response:
        profiler.enable()
        return web.Response(text="ok")

    async def stop(request: web.Request) -> web.Response:
        profiler.disable()
        profiler.dump_stats(request.query["path"])
        profiler.clear()
        return web.Response(text="ok")

    app.router.add_post("/_bench/profile/start", start)
    app.router.add_post("/_bench/profile/stop", stop)


def bare_bolt(api_url: str) -> AsyncApp:
    """A Bolt app with no listener yet, as the baselines use it."""
    # a static bot token (on the client): Bolt calls auth.test on the stub once, during the warm-up
    return AsyncApp(signing_secret=SECRET, process_before_response=True,
                    client=AsyncWebClient(token=TOKEN, base_url=api_url))


def mounted(bolt: AsyncApp) -> web.Application:
    """`bolt` at /slack/events of an aiohttp application of its own (Bolt's aiohttp converters, as ours)."""

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post(SLACK_EVENTS, events)
    return app


async def bare_bolt_app(api_url: str) -> web.Application:
    """The baseline: a Bolt app whose only listener acks a block action, mounted on its own aiohttp app."""
    bolt = bare_bolt(api_url)

    @bolt.block_action(re.compile(".*"))
    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    return mounted(bolt)


async def bolt_commit_app(api_url: str, path: str) -> web.Application:
    """The floor of a design that makes a click durable before it acks: the bare Bolt app whose listener first
    commits one row to an SQLite file (WAL, synchronous=FULL: one fsync) on a thread of its own, then acks. Ours
    commits the decision itself before the ack, and makes it durable before anyone is told (models/db.py)."""
    bolt = bare_bolt(api_url)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS clicks (id INTEGER PRIMARY KEY, action_ts TEXT NOT NULL)")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-writer")  # one connection, one writer

    def record(action_ts: str) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO clicks (action_ts) VALUES (?)", (action_ts,))
        db.execute("COMMIT")

    @bolt.block_action(re.compile(".*"))
    async def commit_then_ack(ack: AsyncAck, body: dict[str, Any]) -> None:
        await asyncio.get_running_loop().run_in_executor(writer, record, body["actions"][0]["action_ts"])
        await ack()

    async def close(_: web.Application) -> None:
        writer.shutdown(wait=True)
        db.close()

    app = mounted(bolt)
    app.on_cleanup.append(close)
    return app


Build = Callable[..., Awaitable[web.Application]]


def serve_until_stopped(build: Build, args: tuple[Any, ...], ports: Any, stop: Any) -> None:
    """A spawned process's whole life: serve the application `build(*args)` on 127.0.0.1 (AppRunner +
    TCPSite, port chosen by the system and sent back through `ports`, a Queue) until `stop` (an Event) is set,
    then clean up as `madoguchi serve` does on shutdown (the delivery loop stops, the database is closed)."""

    async def serve() -> None:
        runner = web.AppRunner(await build(*args), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.put(runner.addresses[0][1])
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()

    asyncio.run(serve())


@contextmanager
def spawned(build: Build, *args: Any) -> Iterator[str]:
    """`build(*args)` served in a process of its own (spawned: a clean interpreter); yields its base URL."""
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    process = context.Process(target=serve_until_stopped, args=(build, args, ports, stop),
                              name=f"bench-{build.__name__}", daemon=True)
    process.start()
    try:
        yield f"http://127.0.0.1:{_port(process, ports)}"
    finally:
        stop.set()
        process.join(STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join()


def _port(process: multiprocessing.process.BaseProcess, ports: Any) -> int:
    deadline = CLOCK() + START_TIMEOUT
    while CLOCK() < deadline:
        try:
            return int(ports.get(timeout=0.5))
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError(f"{process.name} exited ({process.exitcode}) before serving") from None
    raise RuntimeError(f"{process.name} did not serve within {START_TIMEOUT:g} s")


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
    payload: dict[str, Any] = {
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
    """POST one signed click; (sent, answered) CLOCK times. Anything but 200 fails the bench."""
    async with gate:
        headers = signed_headers(body)
        sent = CLOCK()
        async with session.post(url, data=body.encode(), headers=headers) as response:
            await response.read()
            answered = CLOCK()
        if response.status != 200:
            raise RuntimeError(f"click answered {response.status}")
        return sent, answered


async def click_all(url: str, bodies: Sequence[str], concurrency: int) -> list[tuple[float, float]]:
    """Every click, at most `concurrency` in flight; (sent, answered) per click, in order."""
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=ACK_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=concurrency)
    # The clients' own garbage collection is not part of any server's time: this process holds a large heap (the
    # database, the engine, the requests it prepared), and a full collection in the middle of a burst stalled
    # every client at once (seen with gc.callbacks: 53 ms, in ours' first 50 clicks, between their connections
    # and their requests). Both sides' clicks run with the collector paused; it runs after them.
    gc.collect()
    gc.disable()
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            return await asyncio.gather(*(click(session, url, b, gate) for b in bodies))
    finally:
        gc.enable()


# ------------------------------------------------------------------------------------------ the bench's side


@dataclass
class World:
    """What the bench's own process holds: the servers' URLs, the database (to prepare requests, untimed), an
    engine on it, the company, and a session to read the stub's records."""

    ours: str  # ours' base URL
    bare: str  # the bare Bolt app's base URL
    floor: str  # the bare Bolt app that commits one row before it acks
    stub: str  # the stub Slack's base URL
    db: Database
    engine: Engine
    org: Org
    session: aiohttp.ClientSession
    profile: Path | None = None  # a directory: cProfile ours' event loop during each concurrency's clicks

    def response_url(self, name: str) -> str:
        return f"{self.stub}/hooks/{name}"


def with_identities(db: Database) -> tuple[Org, dict[str, str]]:
    """The company, every employee known on Slack as U-<field of Org>; and Slack id -> email for users.info."""
    org = make_org(db)
    now = datetime.now(UTC)
    users: dict[str, str] = {}
    with db.unit_of_work() as conn:
        emails = {int(i): str(e) for i, e in conn.execute(sa.select(people.employees.c.id, people.employees.c.email))}
        for f in fields(org):
            if f.name in ("sales", "backoffice"):
                continue
            user = "U-manager" if f.name == "manager" else f"U-{f.name}"
            people.remember_identity(conn, getattr(org, f.name), "slack", TEAM, user, now)
            users[user] = str(emails[getattr(org, f.name)])
    return org, users


def submit(world: World, n: int) -> list[str]:
    """N pending expense requests by alice and bob, each waiting for the manager; their assignment ids."""
    ids: list[str] = []
    for i in range(n):
        out = world.engine.submit(world.org.alice if i % 2 == 0 else world.org.bob, "expense", EXPENSE)
        if not out.ok or len(out.open_assignments) != 1:
            raise RuntimeError(f"submit failed: {out.code}")
        ids.append(str(out.open_assignments[0]))
    return ids


async def drained(db: Database) -> None:
    """Wait (bounded) until the delivery loop has nothing left to send."""
    query = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.state.in_(("pending", "sending")))
    deadline = CLOCK() + DRAIN_TIMEOUT
    while CLOCK() < deadline:
        with db.unit_of_work(write=False) as conn:
            if conn.execute(query).scalar_one() == 0:
                return
        await asyncio.sleep(0.05)
    # what is left, to tell a slow delivery from a stopped one (rows claimed and none sent: see bot/delivery.py)
    left = (sa.select(outbox.c.state, outbox.c.kind, sa.func.count())
            .where(outbox.c.state.in_(("pending", "sending"))).group_by(outbox.c.state, outbox.c.kind)
            .order_by(outbox.c.state, outbox.c.kind))
    with db.unit_of_work(write=False) as conn:
        rows = ", ".join(f"{n} {kind} {state}" for state, kind, n in conn.execute(left))
    raise RuntimeError(f"the outbox was not drained within {DRAIN_TIMEOUT:g} s (left: {rows})")


async def posted_cards(world: World, assignment_ids: Sequence[str]) -> list[Card]:
    """The manager's cards for these assignments, as the stub received them (with the ts it gave back)."""
    channel = f"D{MANAGER}"
    async with world.session.get(f"{world.stub}/_bench/posted", params={"channel": channel}) as answer:
        posted = await answer.json()
    wanted = set(assignment_ids)
    found: dict[str, Card] = {}
    for body, ts in posted:
        for block in body.get("blocks", []):
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id", "").startswith("approve") and element.get("value") in wanted:
                    found[element["value"]] = Card(element["value"], element["action_id"],
                                                   block.get("block_id", "Ab1C"), channel, ts)
    missing = wanted - found.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} cards were not posted")
    return [found[a] for a in assignment_ids]


async def prepared(world: World, n: int) -> list[Card]:
    """N fresh pending requests whose cards are on Slack (untimed). Submitted from the bench's process: the
    server's delivery loop finds the rows within its rest."""
    ids = await asyncio.to_thread(submit, world, n)
    await drained(world.db)
    return await posted_cards(world, ids)


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


async def card_updates(world: World, cards: Sequence[Card], times: Sequence[tuple[float, float]]) -> Figures:
    """Click to the arrival of the card's chat.update at the stub, waiting (bounded) for the last ones."""
    keys = [(card.channel, card.ts) for card in cards]
    deadline = CLOCK() + CARD_TIMEOUT
    while True:
        async with world.session.get(f"{world.stub}/_bench/updated") as answer:
            updated = {(channel, ts): at for channel, ts, at in await answer.json()}
        if all(k in updated for k in keys) or CLOCK() >= deadline:
            break
        await asyncio.sleep(0.05)
    ms = [(updated[k] - sent) * 1000.0 for k, (sent, _) in zip(keys, times, strict=True) if k in updated]
    return Figures(ms, missing=len(keys) - len(ms))


Results = dict[tuple[str, int], Figures]


async def clicks_on_ours(world: World, bodies: Sequence[str], concurrency: int, label: str) -> list[tuple[float, float]]:
    """The clicks on ours; with `world.profile`, ours' event loop is profiled during them."""
    if world.profile is None:
        return await click_all(f"{world.ours}{SLACK_EVENTS}", bodies, concurrency)
    path = world.profile / f"ours-{label}-c{concurrency}.prof"
    async with world.session.post(f"{world.ours}/_bench/profile/start"):
        pass
    try:
        return await click_all(f"{world.ours}{SLACK_EVENTS}", bodies, concurrency)
    finally:
        async with world.session.post(f"{world.ours}/_bench/profile/stop", params={"path": str(path)}):
            pass


async def one_concurrency(world: World, n: int, concurrency: int, label: str, results: Results) -> None:
    """A fresh set of N delivered cards; the clicks on ours, then the same clicks on the bare app."""
    cards = await prepared(world, n)
    bodies = [click_body(c, i, world.response_url(f"c{concurrency}-{i}")) for i, c in enumerate(cards)]
    before = await _cpu(world)
    during = await _cpu_split(world, label)
    times = await clicks_on_ours(world, bodies, concurrency, label)
    results[("cpu split", concurrency)] = Figures([(after - first) * 1000.0 / len(bodies) for first, after in
                                                   zip(during, await _cpu_split(world, label), strict=True)])
    results[("ack ours", concurrency)] = acks(times)
    results[("card ours", concurrency)] = await card_updates(world, cards, times)
    await drained(world.db)  # the next approvers' cards leave before the next set (and the bare app's clicks)
    results[("cpu ours", concurrency)] = Figures([(await _cpu(world) - before) * 1000.0 / len(bodies)])
    results[("ack bare", concurrency)] = acks(await click_all(f"{world.bare}{SLACK_EVENTS}", bodies, concurrency))
    results[("ack floor", concurrency)] = acks(await click_all(f"{world.floor}{SLACK_EVENTS}", bodies, concurrency))


async def _cpu(world: World, base: str | None = None) -> float:
    """Seconds of CPU ours' process (or the server at `base`) has used so far (all its threads)."""
    async with world.session.get(f"{base or world.ours}/_bench/cpu") as answer:
        return float(await answer.json())


SPLIT = ("ours", "PostgreSQL", "the clients", "the stub Slack")


async def _cpu_split(world: World, label: str) -> list[float]:
    """Seconds of CPU used so far by each of SPLIT (PostgreSQL: nan on SQLite, or where /proc cannot be read)."""
    server = postgres_cpu() if label == "postgresql" else None
    return [await _cpu(world), math.nan if server is None else server, own_cpu(), await _cpu(world, world.stub)]


async def measure(world: World, n: int, label: str) -> Results:
    """Warm-up, then each concurrency, on servers already running."""
    results: Results = {}
    warm = await prepared(world, WARMUP)  # users.info, auth.test, connections, first queries: untimed
    bodies = [click_body(c, i, world.response_url(f"warm-{i}")) for i, c in enumerate(warm)]
    await click_all(f"{world.ours}{SLACK_EVENTS}", bodies, 1)
    await click_all(f"{world.bare}{SLACK_EVENTS}", bodies, 1)
    await click_all(f"{world.floor}{SLACK_EVENTS}", bodies, 1)
    await drained(world.db)
    for concurrency in CONCURRENCIES:
        await one_concurrency(world, n, concurrency, label, results)
    return results


def run_backend(database_url: str, n: int, label: str, profile: Path | None = None) -> Results:
    """Ours on this database and the bare Bolt app, each in a process of its own, with the stub Slack in a
    third; the bench's process prepares the requests and sends the clicks."""
    db = Database(database_url)
    upgrade(db.engine)
    org, users = with_identities(db)
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET})
    engine = Engine(db, with_timezone(load_policy(settings.workflows), settings.timezone))
    try:
        with tempfile.TemporaryDirectory(prefix="madoguchi-bench-floor-") as tmp, \
                spawned(stub_slack, users) as stub, \
                spawned(our_server, database_url, f"{stub}/api/", profile is not None) as ours, \
                spawned(bare_bolt_app, f"{stub}/api/") as bare, \
                spawned(bolt_commit_app, f"{stub}/api/", str(Path(tmp) / "floor.db")) as floor:

            async def run() -> Results:
                async with aiohttp.ClientSession() as session:
                    world = World(ours, bare, floor, stub, db, engine, org, session, profile)
                    return await measure(world, n, label)

            return asyncio.run(run())
    finally:
        db.dispose()


# ------------------------------------------------------------------------------------------ printing


def print_header(n: int) -> None:
    """Machine facts and settings."""
    print(f"python {platform.python_version()} ({platform.python_implementation()}), sqlite {sqlite3.sqlite_version}, "
          f"cpus {os.cpu_count()}, slack-bolt {slack_bolt.version.__version__}, aiohttp {aiohttp.__version__}, "
          f"SQLAlchemy {sa.__version__}, {platform.platform()}")
    print(f"settings: n={n} clicks per run (each on its own pending request, cards delivered first), "
          f"concurrency {' and '.join(map(str, CONCURRENCIES))}, warm-up {WARMUP} clicks (untimed), "
          f"SQLite WAL synchronous=FULL (ours' writer commits a click at NORMAL and fdatasyncs the WAL before its "
          f"reply and card updates are sent: models/db.py)")
    print("delivery: make_app's loop, pace set to 0 on its SlackDelivery (make_app has no option for it); "
          "the loop rests 0.5 s when idle (run_forever's default, not configurable from make_app)")
    print("on 127.0.0.1, each in a process of its own: the stub Web API, ours, the bare Bolt app, the bare Bolt app "
          "that commits one row (SQLite) before it acks; the clients (one aiohttp session per run) in the bench's "
          "process")
    print()


def verdict(value: float, limit: float) -> str:
    return "met" if value <= limit else "MISSED"


def print_rows(results: Results, label: str) -> None:
    """Ack and click-to-card rows per concurrency, with the issue's targets beside them."""
    print(f"{'row':<42} {'conc':>4} {'p50 ms':>9} {'p99 ms':>9}  target")
    names = {"ack ours": f"ack, ours ({label})", "ack bare": "ack, bare Bolt (process_before_response)",
             "ack floor": "ack, bare Bolt + one durable commit", "card ours": f"click-to-card-updated, ours ({label})"}
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
    spent = ", ".join(f"{results[('cpu ours', c)].ms[0]:.2f} ms at concurrency {c}" for c in CONCURRENCIES)
    print(f"ours' CPU per click, its decision and its delivery (the server process, all threads): {spent}")
    cpus = os.cpu_count() or 1
    for concurrency in CONCURRENCIES:
        split = dict(zip(SPLIT, results[("cpu split", concurrency)].ms, strict=True))
        known = {who: ms for who, ms in split.items() if not math.isnan(ms)}
        total = sum(known.values())
        bound = ""
        if total > 0:
            rate = cpus * 1000.0 / total
            bound = f"; {cpus} CPUs pass at most {rate:.0f} clicks a second"
            if concurrency > 1:  # Little's law: with this many in flight, each waits at least this long on average
                bound += f", so {concurrency} in flight wait at least {concurrency * 1000.0 / rate:.0f} ms each on average"
        print(f"CPU during the clicks at concurrency {concurrency}, a click: "
              + ", ".join(f"{who} {ms:.2f}" for who, ms in known.items()) + f" ms: {total:.2f} in all{bound}")
    ratio = results[("ack ours", 1)].p50() / results[("ack bare", 1)].p50()
    print(f"p50 ratio: {ratio:.2f}  (ours ack p50 / bare Bolt ack p50 at concurrency 1; "
          f"target <= {TARGET_RATIO:g}: {verdict(ratio, TARGET_RATIO)})")
    floor = results[("ack floor", 1)].p50() / results[("ack bare", 1)].p50()
    print(f"floor ratio: {floor:.2f}  (bare Bolt + one durable SQLite commit before the ack / bare Bolt, p50 at "
          "concurrency 1: what committing before the ack costs before any decision is taken)")


@contextmanager
def sqlite_file() -> Any:
    """A fresh SQLite file URL in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-slack-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'ours.db'}"


def run_postgres(n: int, profile: Path | None = None) -> None:
    """Ours on a database of its own on the configured PostgreSQL server, if any."""
    found = postgres_url()
    if found is None:
        print("PostgreSQL: skipped (neither MADOGUCHI_BENCH_POSTGRES_URL nor MADOGUCHI_TEST_POSTGRES_URL is set)")
        return
    var, url = found
    print(f"PostgreSQL: a database of its own on the server from ${var} (created, then dropped)")
    with scratch_database(normalize_url(url), "madoguchi_bench_") as own:
        print_rows(run_backend(own, n, "postgresql", profile), "PostgreSQL")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help=f"clicks per run (default {DEFAULT_N})")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: n={QUICK_N} unless --n is given")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="cProfile ours' event loop during each concurrency's clicks; "
                             "DIR/ours-<backend>-c<concurrency>.prof")
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
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()  # the server writes there from its own process
    with sqlite_file() as url:
        print_rows(run_backend(url, args.n, "sqlite", args.profile), "SQLite")
    print()
    if postgres:
        run_postgres(args.n, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
