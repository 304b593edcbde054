"""Teams latency: what one `adaptiveCard/action` invoke costs madoguchi and a bare bot per SDK, in one run.

The same anonymous invoke (Action.Execute, verb "approve", shaped like the one Teams sends: channelId msteams,
from / recipient / conversation ids, a serviceUrl on a loopback stub connector this bench starts) is POSTed to
`/api/messages` of each row's server, at concurrency 1 and 50:

- `botbuilder (stock)`: botbuilder-integration-aiohttp 4.17's CloudAdapter with an anonymous
  ConfigurationBotFrameworkAuthentication; an ActivityHandler whose on_invoke_activity returns
  InvokeResponse(200, AdaptiveCardInvokeResponse) (the shape DESIGN.md prescribes for Action.Execute);
- `botbuilder + msrest fix`: the same bot after `bot.teams.msrest_fix.apply()`;
- `madoguchi (ours)`: the real server (`bot.server.make_app`, anonymous Teams, a fresh SQLite file, WAL,
  synchronous=FULL), with one pending expense request per timed invoke waiting for one manager: each invoke is
  the manager's Approve (our card's Action.Execute data, from the manager's Teams identity), committed before
  the answer, and the answer is checked to say it approved. No delivery loop runs (the outbox rows wait).
  Printed after the table: `p50 ratio` (ours / stock at concurrency 1; target <= 3) and ours p99 at 50
  (target <= 150 ms);
- `agents-sdk`: the same bare bot on the Microsoft 365 Agents SDK (microsoft-agents-hosting-aiohttp 1.9:
  ActivityHandler + CloudAdapter, no jwt_authorization_middleware, so anonymous).

Each row is served by aiohttp on 127.0.0.1 in a process of its own (so the stock row never sees the patch; each
child says what its msrest `safe_codes` is), started and stopped by this script. Per row and concurrency it
prints p50 / p99 latency seen by the client, requests/s, and CPU ms per request of the server process (its
getrusage, read through `GET /_bench/cpu` before and after the timed requests). Every answer is checked (HTTP
200 and the card's statusCode 200), so no row can do less than the others unnoticed.

Adding a row (e.g. "ours", the real madoguchi Teams edge): write `def serve_x() -> web.Application` returning an
application that serves `POST /api/messages`, and append `Row("ours", "label", "serve_x")` to `ROWS` (with a
`requires` function naming what is missing, if anything can be). The driver, the stub connector and the
table need no change.

Usage, from the repository root::

    python bench/teams_latency.py [--n 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``import bench.*`` / ``bot.*`` work
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web

DEFAULT_N = 200
QUICK_N = 20
CONCURRENCIES = (1, 50)
WARMUP = 20  # requests before the first timed phase of a row: imports, first-use caches
REQUEST_TIMEOUT = 60.0  # seconds
START_TIMEOUT = 60.0  # seconds for a row's server to listen
CPU_PATH = "/_bench/cpu"
# the invoke's answer: the card that replaces the clicked one (what a real approval answers with)
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VALUE = {"type": "AdaptiveCard", "version": "1.4",
              "body": [{"type": "TextBlock", "text": "承認しました / Approved", "wrap": True}]}


# ------------------------------------------------------------------------------------------ the activity


def invoke_activity(seq: int, service_url: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """An Action.Execute invoke as Teams sends it when a person clicks Approve on a card in a 1:1 chat."""
    return {
        "name": "adaptiveCard/action", "type": "invoke", "id": f"f:bench-{seq}", "channelId": "msteams",
        "timestamp": "2026-06-01T01:00:00.000Z", "localTimestamp": "2026-06-01T10:00:00.000+09:00",
        "serviceUrl": service_url, "locale": "ja-JP", "localTimezone": "Asia/Tokyo",
        "from": {"id": "29:1-bench-person", "name": "山田 花子", "aadObjectId": "00000000-0000-4000-8000-000000000001"},
        "recipient": {"id": "28:00000000-0000-4000-8000-0000000000b0", "name": "madoguchi"},
        "conversation": {"conversationType": "personal", "tenantId": "00000000-0000-4000-8000-0000000000e0",
                         "id": "a:1-bench-conversation"},
        "replyToId": "1780000000000",
        "entities": [{"type": "clientInfo", "locale": "ja-JP", "country": "JP", "platform": "Web",
                      "timezone": "Asia/Tokyo"}],
        "channelData": {"tenant": {"id": "00000000-0000-4000-8000-0000000000e0"}, "source": {"name": "message"},
                        "legacy": {"replyToId": "1780000000000"}},
        "value": {"action": {"type": "Action.Execute", "title": "承認", "verb": "approve",
                             "data": data if data is not None else {"assignment": f"a-{seq}"}},
                  "trigger": "manual"},
    }


# ------------------------------------------------------------------------------------------ the rows' bots


def _cpu_route(app: web.Application) -> None:
    async def cpu(_: web.Request) -> web.Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return web.json_response({"cpu": usage.ru_utime + usage.ru_stime})

    async def safe_codes(_: web.Request) -> web.Response:
        # asked after the warm-up: madoguchi loads botbuilder (and patches msrest) at its first Teams request
        msrest = sys.modules.get("msrest.universal_http.requests")
        return web.json_response({"safe_codes": type(msrest.ClientRetryPolicy.safe_codes).__name__
                                  if msrest else "-"})

    app.router.add_get(CPU_PATH, cpu)
    app.router.add_get(CPU_PATH + "/safe_codes", safe_codes)


def _botbuilder_app() -> web.Application:
    from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
    from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
    from botbuilder.schema import AdaptiveCardInvokeResponse

    class Anonymous:  # no app id, no password: botbuilder skips authentication
        APP_ID = ""
        APP_PASSWORD = ""

    class ApproveBot(ActivityHandler):
        async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
            return InvokeResponse(status=200, body=AdaptiveCardInvokeResponse(
                status_code=200, type=CARD_TYPE, value=CARD_VALUE))

    adapter, bot = CloudAdapter(ConfigurationBotFrameworkAuthentication(Anonymous())), ApproveBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        response = await adapter.process(request, bot)
        return response if response is not None else web.Response(status=201)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    return app


def serve_botbuilder_stock() -> web.Application:
    return _botbuilder_app()


def serve_botbuilder_fixed() -> web.Application:
    from bot.teams import msrest_fix

    if not msrest_fix.apply():
        raise RuntimeError("bot.teams.msrest_fix.apply() refused: see its warning")
    return _botbuilder_app()


def serve_agents() -> web.Application:
    from microsoft_agents.activity import AdaptiveCardInvokeResponse, InvokeResponse
    from microsoft_agents.hosting.aiohttp import CloudAdapter
    from microsoft_agents.hosting.core import ActivityHandler, TurnContext
    from microsoft_agents.hosting.core.authorization import (
        AgentAuthConfiguration,
        AnonymousTokenProvider,
        ConnectionManager,
    )

    class ApproveBot(ActivityHandler):
        async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:  # type: ignore[override]
            return InvokeResponse(status=200, body=AdaptiveCardInvokeResponse(
                status_code=200, type=CARD_TYPE, value=CARD_VALUE))

    # anonymous: no jwt_authorization_middleware (the SDK's only authentication), and a connection that never
    # asks Entra for a token
    connections = ConnectionManager(provider_factory=lambda _: AnonymousTokenProvider(),
                                    connections_configurations={
                                        "SERVICE_CONNECTION": AgentAuthConfiguration(anonymous_allowed=True)})
    adapter, bot = CloudAdapter(connection_manager=connections), ApproveBot()
    # with no app id the SDK logs a warning per request (stderr, in the timed part); a configured bot never does
    logging.getLogger("microsoft_agents.hosting.core.connector.client.user_token_client").setLevel(logging.ERROR)

    async def messages(request: web.Request) -> web.StreamResponse:
        response = await adapter.process(request, bot)
        return response if response is not None else web.Response(status=201)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    return app


# ours: the real madoguchi server (bot.server.make_app, anonymous Teams) on a fresh SQLite file, with enough
# pending expense requests waiting for one manager that every timed invoke approves a request of its own
OURS_PENDING = "/_bench/pending"
APPROVER_AAD = "00000000-0000-4000-8000-000000000001"  # the activity's from.aadObjectId: the approver
TENANT = "00000000-0000-4000-8000-0000000000e0"
OURS_REQUESTS = int(os.environ.get("MADOGUCHI_BENCH_TEAMS_REQUESTS", "0") or 0)  # set by the driver


def serve_ours() -> web.Application:
    """madoguchi's own server as `madoguchi serve` builds it (no delivery loop: the outbox rows the approvals write
    wait; the invoke's answer is what is timed), its database seeded with OURS_REQUESTS pending approvals."""
    import tempfile

    from bot.server import make_app, settle_heap_at_start
    from config.policy import load_policy
    from config.settings import DEFAULT_WORKFLOWS, Settings
    from models import people
    from models.db import Database
    from models.schema import upgrade
    from tests.conftest import make_org
    from workflow.engine import Engine

    logging.getLogger("bot.teams.edge").setLevel(logging.ERROR)  # the anonymous-mode warning, once per start
    workdir = tempfile.mkdtemp(prefix="madoguchi-bench-teams-")
    db = Database(f"sqlite:///{workdir}/bench.db")
    upgrade(db.engine)
    org = make_org(db)
    policy = load_policy(DEFAULT_WORKFLOWS)
    engine = Engine(db, policy)
    pending: list[int] = []
    for _ in range(OURS_REQUESTS):
        outcome = engine.submit(org.alice, "expense", {"purpose": "出張", "items": [
            {"date": "2026-06-01", "payee": "JR東海", "amount": "14170", "tax_rate": "10", "category": "travel"}]})
        assert outcome.ok, outcome.message("en")
        pending.append(outcome.open_assignments[0])
    from datetime import UTC, datetime

    with db.unit_of_work() as conn:
        people.remember_identity(conn, org.manager, "teams", TENANT, APPROVER_AAD, datetime.now(UTC))
    app = make_app(Settings.model_validate({}), database=db, policy=policy, deliver=False, tick=False)
    settle_heap_at_start(app)  # as `madoguchi serve` does

    async def assignments(_: web.Request) -> web.Response:
        return web.json_response(pending)

    app.router.add_get(OURS_PENDING, assignments)
    return app


def ours_data(assignment_id: int) -> dict[str, Any]:
    """What our approver card's Approve button carries (bot/teams/adaptive.py)."""
    return {"madoguchi": {"kind": "click", "action": "approve", "value": str(assignment_id)}}


def _agents_missing() -> str | None:
    if importlib.util.find_spec("microsoft_agents.hosting.aiohttp") is None:
        return "microsoft-agents-hosting-aiohttp not installed (pip install -e '.[bench]')"
    return None


@dataclass(frozen=True)
class Row:
    """One server to measure: `serve` names a function of this module returning its aiohttp application."""

    key: str
    label: str
    serve: str
    requires: Callable[[], str | None] = lambda: None  # why the row cannot run here, or None
    ours: bool = False  # the real server: each invoke approves a pending request of its own


ROWS = (
    Row("ours", "madoguchi (ours)", "serve_ours", ours=True),
    Row("stock", "botbuilder 4.17 (stock)", "serve_botbuilder_stock"),
    Row("fixed", "botbuilder 4.17 + msrest fix", "serve_botbuilder_fixed"),
    Row("agents", "agents-sdk 1.9", "serve_agents", _agents_missing),
)


# ------------------------------------------------------------------------------------------ a row's process


def child_main(key: str) -> None:
    """`--serve KEY`: build the row's application, listen on a free loopback port, say which, serve forever."""
    row = next(r for r in ROWS if r.key == key)
    factory: Callable[[], web.Application] = globals()[row.serve]

    async def serve() -> None:
        app = factory()
        _cpu_route(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        msrest = sys.modules.get("msrest.universal_http.requests")  # what the row's own imports loaded
        codes = type(msrest.ClientRetryPolicy.safe_codes).__name__ if msrest else "-"
        print(f"listening {port} safe_codes={codes}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


@dataclass
class Server:
    """A row's server process, started by this script (and stopped by it, by its own pid only)."""

    process: subprocess.Popen[str]
    url: str
    safe_codes: str

    @classmethod
    def start(cls, key: str, env: dict[str, str] | None = None) -> Server:
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", key],
                                   stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
                                   env={**os.environ, **(env or {})})
        assert process.stdout is not None
        line = _read_line(process, START_TIMEOUT)
        if not line.startswith("listening "):
            process.kill()
            raise RuntimeError(f"row {key}: its server did not start (said {line!r})")
        _, port, codes = line.split()
        return cls(process, f"http://127.0.0.1:{port}", codes.removeprefix("safe_codes="))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return f"(nothing within {timeout:.0f} s)"
    return process.stdout.readline().strip() or f"(exited with {process.wait()})"


# ------------------------------------------------------------------------------------------ the stub connector


class StubConnector:
    """The Bot Framework connector on loopback: answers any POST / PUT under /v3/conversations and counts them.
    A bare bot answering an invoke should never call it (the invoke response rides on the HTTP answer)."""

    def __init__(self) -> None:
        self.calls = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def activity(request: web.Request) -> web.Response:
            self.calls += 1
            await request.read()
            return web.json_response({"id": f"stub-{self.calls}"})

        app = web.Application()
        app.router.add_route("POST", "/v3/conversations/{tail:.*}", activity)
        app.router.add_route("PUT", "/v3/conversations/{tail:.*}", activity)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


# ------------------------------------------------------------------------------------------ the driver


@dataclass
class Phase:
    """One row at one concurrency: the latencies seen by the client, the wall time and the server's CPU."""

    latencies: list[float]
    wall: float
    cpu: float

    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] * 1000

    def per_second(self) -> float:
        return len(self.latencies) / self.wall

    def cpu_ms(self) -> float:
        return self.cpu / len(self.latencies) * 1000


async def _server_cpu(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(url + CPU_PATH) as response:
        return float((await response.json())["cpu"])


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, ours: bool = False) -> float:
    started = time.perf_counter()
    async with session.post(url + "/api/messages", data=body,
                            headers={"Content-Type": "application/json"}) as response:
        answer = await response.read()
    took = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"{url}: HTTP {response.status}: {answer[:300]!r}")
    card = json.loads(answer)
    if ours:  # the approval really happened: our answer says so (a refused or stale click says otherwise)
        if card.get("statusCode") != 200 or "を承認しました" not in str(card.get("value")):
            raise RuntimeError(f"{url}: not an approval: {answer[:300]!r}")
    elif card.get("statusCode") != 200 or card.get("value") != CARD_VALUE:
        raise RuntimeError(f"{url}: not the card's answer: {answer[:300]!r}")
    return took


async def run_phase(url: str, stub_url: str, n: int, concurrency: int, first: int,
                    data: list[dict[str, Any]] | None = None) -> Phase:
    """n invokes, `concurrency` at a time, each its own activity (ids from `first`); `data`: each invoke's
    Action.Execute data (n + 1 of them: the first opens the session's connections, untimed)."""
    bodies = [json.dumps(invoke_activity(first + i, stub_url, data[i] if data else None)).encode()
              for i in range(n + 1)]
    ours = data is not None
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:
        await _post(session, url, bodies[0], ours)  # the connections of this session are open before timing
        pending = iter(bodies[1:])

        async def worker() -> None:
            for body in pending:  # one shared iterator: each body is posted once
                latencies.append(await _post(session, url, body, ours))

        cpu_before = await _server_cpu(session, url)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        cpu_after = await _server_cpu(session, url)
    return Phase(latencies, wall, cpu_after - cpu_before)


async def _pending(url: str) -> list[int]:
    async with aiohttp.ClientSession() as session, session.get(url + OURS_PENDING) as response:
        return [int(a) for a in await response.json()]


async def measure_row(row: Row, stub: StubConnector, n: int) -> tuple[str, dict[int, Phase]]:
    sizes = [WARMUP, *([n] * len(CONCURRENCIES))]
    needed = sum(size + 1 for size in sizes)
    server = Server.start(row.key, {"MADOGUCHI_BENCH_TEAMS_REQUESTS": str(needed)} if row.ours else None)
    try:
        slices: list[list[dict[str, Any]] | None] = [None] * len(sizes)
        if row.ours:  # each invoke approves a request of its own, as a manager clicking down a list would
            pending, at = [ours_data(a) for a in await _pending(server.url)], 0
            for i, size in enumerate(sizes):
                slices[i], at = pending[at:at + size + 1], at + size + 1
        await run_phase(server.url, stub.url, WARMUP, 1, first=0, data=slices[0])
        async with aiohttp.ClientSession() as session, session.get(server.url + CPU_PATH + "/safe_codes") as got:
            server.safe_codes = str((await got.json())["safe_codes"])
        phases = {c: await run_phase(server.url, stub.url, n, c, first=(i + 1) * 100_000, data=slices[i + 1])
                  for i, c in enumerate(CONCURRENCIES)}
    finally:
        server.stop()
    return server.safe_codes, phases


# ------------------------------------------------------------------------------------------ output


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def print_header(n: int) -> None:
    names = ("botbuilder-core", "botbuilder-integration-aiohttp", "msrest", "microsoft-agents-hosting-aiohttp",
             "aiohttp")
    print(f"python {platform.python_version()} ({platform.python_implementation()}), {os.cpu_count()} CPUs, "
          f"{platform.platform()}")
    print(", ".join(f"{name} {_version(name)}" for name in names))
    print(f"settings: n={n} invokes per row and concurrency, {WARMUP} untimed first; concurrency "
          f"{', '.join(map(str, CONCURRENCIES))}; every answer checked (HTTP 200, card statusCode 200)")
    print("each row: its own server process (aiohttp, 127.0.0.1); the client and the stub connector in this one; "
          "CPU = the server process's getrusage (user + system) over the timed invokes")
    print()


async def run(n: int) -> int:
    print_header(n)
    stub = StubConnector()
    await stub.start()
    print(f"{'row':<30} {'conc':>4} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>8} {'CPU ms/req':>11}  safe_codes")
    measured: dict[str, dict[int, Phase]] = {}
    try:
        for row in ROWS:
            missing = row.requires()
            if missing:
                print(f"{row.label:<30} skipped: {missing}")
                continue
            safe_codes, phases = await measure_row(row, stub, n)
            measured[row.key] = phases
            for concurrency, phase in phases.items():
                print(f"{row.label:<30} {concurrency:>4} {phase.p50():>9.2f} {phase.p99():>9.2f} "
                      f"{phase.per_second():>8.0f} {phase.cpu_ms():>11.2f}  {safe_codes}", flush=True)
    finally:
        await stub.stop()
    print()
    print(f"stub connector calls: {stub.calls} (an invoke is answered on the HTTP response, so 0)")
    if "ours" in measured and "stock" in measured:
        ours, stock = measured["ours"], measured["stock"]
        print(f"p50 ratio: {ours[1].p50() / stock[1].p50():.2f}  (ours / stock bare botbuilder at concurrency 1; "
              f"target <= 3)")
        print(f"ours p99 at concurrency 50: {ours[50].p99():.1f} ms  (target <= 150)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=DEFAULT_N, help=f"invokes per row and concurrency ({DEFAULT_N})")
    parser.add_argument("--quick", action="store_true", help=f"n={QUICK_N}: a smoke run")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: run one row's server (a child process)
    args = parser.parse_args(argv)
    if args.serve:
        child_main(args.serve)
        return 0
    n = QUICK_N if args.quick else args.n
    if n < 1:
        parser.error("--n must be at least 1")
    return asyncio.run(run(n))


if __name__ == "__main__":
    sys.exit(main())
