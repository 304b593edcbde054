"""A broadcast to N recipients through the real delivery loop (bot/delivery.py SlackDelivery) against the stub
Slack Web API (the playground's emulator) enforcing 1 message/s per channel and a workspace-wide cap, with 429
and Retry-After beyond them. Prints the achieved rate over the cap (target >= 0.9), messages lost (0) and
duplicated (0). The delivery loop's workspace pace (`rate`) is set to the stub's cap, as an operator sets it to
the workspace's limit (`--rate 0`: no workspace pace, only the per-channel one and Retry-After, as before).

The stub runs in a process of its own (`--stub process`, the default), as Slack runs on other machines: in the
bench's own process its HTTP server and emulator would take half the CPU of the one event loop the delivery loop
runs on, and the figure would measure the stub. `--stub inprocess` keeps the old arrangement for comparison.

    python bench/broadcast.py [--recipients 10000] [--cap 200] [--rate CAP] [--database sqlite|postgresql-url]
                              [--stub process|inprocess]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.delivery import SlackDelivery  # noqa: E402
from bot.playground.webapi import RateLimits, SlackWebApi  # noqa: E402
from bot.playground.workspace import Workspace  # noqa: E402
from config.policy import load_policy  # noqa: E402
from config.settings import DEFAULT_WORKFLOWS  # noqa: E402
from models import people  # noqa: E402
from models.db import Database  # noqa: E402
from models.messaging import outbox  # noqa: E402
from models.schema import upgrade  # noqa: E402
from workflow import broadcasts as bc  # noqa: E402
from workflow.audiences import Audience  # noqa: E402


@dataclass
class Figures:
    recipients: int
    seconds: float
    cap: float
    lost: int
    duplicated: int
    limited: int

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds if self.seconds else 0.0


def seed(db: Database, n: int) -> int:
    """N employees and one HR author, each with a Slack identity; returns the author's id."""
    now = datetime.now(UTC)
    with db.unit_of_work() as conn:
        hr = people.insert_employee(conn, roles={"hr"}, email="hr@example.jp", name_ja="人事", name_en="HR",
                                    locale="ja", timezone="Asia/Tokyo", active=True, hire_date=date(2020, 4, 1))
        conn.execute(people.employees.insert(), [
            {"email": f"p{i}@example.jp", "name_ja": f"社員{i}", "name_en": f"Person {i}", "locale": "ja",
             "timezone": "Asia/Tokyo", "active": True, "work_days_per_week": 5, "created_at": now,
             "updated_at": now} for i in range(n)])
        ids = list(conn.execute(sa.select(people.employees.c.id)).scalars())
        conn.execute(people.chat_identities.insert(), [
            {"employee_id": e, "platform": "slack", "workspace": "T1", "user_id": f"U{e}"} for e in ids])
    return hr


async def deliver(db: Database, api_url: str, batch: int, rate: float) -> float:
    policy = load_policy(DEFAULT_WORKFLOWS)
    # one session (one connection pool) for the client, as `madoguchi serve` shares one (bot/server.py); without
    # it slack_sdk opens and closes a TCP connection per call, and the bench measures that
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token="xoxb-bench", base_url=api_url, session=session)
        loop = SlackDelivery(db, policy, client, pace=1.0, rate=rate, batch=batch)
        started = time.perf_counter()
        while _left(db):
            if not await loop.run_once():
                await asyncio.sleep(0.05)  # rows waiting for their Retry-After
        return time.perf_counter() - started


def _stub_app(api: SlackWebApi) -> web.Application:
    """The emulator's Web API, and what it saw (for the figures): messages per DM channel, 429s answered."""
    async def stats(_: web.Request) -> web.Response:
        per_channel = {cid: len(conv.messages) for cid, conv in api.workspace.conversations.items()}
        return web.json_response({"per_channel": per_channel, "limited": api.limits.limited if api.limits else 0})

    app = web.Application()
    app.router.add_route("*", "/api/{method}", api.handle_api)
    app.router.add_get("/_bench/stats", stats)
    return app


def _serve_stub(cap: float, port: Any) -> None:
    """The stub Slack in a process of its own, until killed; its port goes back through `port` (a Queue)."""
    async def serve() -> None:
        api = SlackWebApi(Workspace(team_id="T1"), limits=RateLimits(per_channel=1.0, workspace=cap))
        runner = web.AppRunner(_stub_app(api), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(serve())


async def _stats(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/_bench/stats") as answer:
        return dict(await answer.json())


async def _in_process(db: Database, cap: float, batch: int, rate: float) -> tuple[float, dict[str, Any]]:
    api = SlackWebApi(Workspace(team_id="T1"), limits=RateLimits(per_channel=1.0, workspace=cap))
    server = TestServer(_stub_app(api), host="127.0.0.1")
    await server.start_server()
    try:
        seconds = await deliver(db, str(server.make_url("/api/")), batch, rate)
        return seconds, await _stats(str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


async def _other_process(db: Database, cap: float, batch: int, rate: float) -> tuple[float, dict[str, Any]]:
    context = multiprocessing.get_context("spawn")  # a clean interpreter: nothing of this process's loop or db
    port = context.Queue()
    stub = context.Process(target=_serve_stub, args=(cap, port), daemon=True)
    stub.start()
    try:
        base = f"http://127.0.0.1:{port.get(timeout=60)}"
        seconds = await deliver(db, f"{base}/api/", batch, rate)
        return seconds, await _stats(base)
    finally:
        stub.kill()
        stub.join(10)


def _left(db: Database) -> int:
    with db.unit_of_work(write=False) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                .where(outbox.c.state.in_(("pending", "sending")))).scalar_one())


def run(recipients: int, cap: float, url: str | None = None, batch: int = 200, rate: float = 0.0,
        stub: str = "process") -> Figures:
    """`rate`: the delivery loop's workspace pace in messages a second (0: none). `stub`: where the stub Slack
    runs, "process" (its own) or "inprocess" (the delivery loop's event loop)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(db.engine)
        author = seed(db, recipients)
        policy = load_policy(DEFAULT_WORKFLOWS)
        result = bc.create(db, policy, bc.Draft(author, Audience("everyone"), "お知らせ", "Notice", True),
                           datetime.now(UTC))
        assert result.ok, result.message
        where = _other_process if stub == "process" else _in_process
        seconds, seen = asyncio.run(where(db, cap, batch, rate))
        with db.unit_of_work(write=False) as conn:
            sent = int(conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                    .where(outbox.c.state == "sent")).scalar_one())
        db.dispose()
    # the workspace holds what was really posted (a 429 posts nothing); each DM channel must hold exactly one
    per_channel = Counter({cid: int(n) for cid, n in seen["per_channel"].items()})
    duplicated = sum(n - 1 for n in per_channel.values() if n > 1)
    lost = max(result.count - sent, result.count - sum(1 for n in per_channel.values() if n))
    return Figures(result.count, seconds, cap, lost, duplicated, int(seen["limited"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--cap", type=float, default=200.0, help="workspace-wide messages per second")
    parser.add_argument("--batch", type=int, default=200, help="rows the delivery loop claims per round")
    parser.add_argument("--rate", type=float, default=None,
                        help="the delivery loop's workspace pace, messages per second (default: the cap; 0: none)")
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--stub", choices=("process", "inprocess"), default="process",
                        help="where the stub Slack runs: its own process (default) or the delivery loop's")
    args = parser.parse_args()
    rate = args.cap if args.rate is None else args.rate
    f = run(args.recipients, args.cap, args.database, args.batch, rate, args.stub)
    print(f"workspace pace: {f'{rate:g} msg/s' if rate > 0 else 'off'}; stub Slack: "
          f"{'its own process' if args.stub == 'process' else 'in the delivery loop'}")
    print(f"recipients: {f.recipients}, seconds: {f.seconds:.1f}, 429 answers: {f.limited}")
    print(f"achieved rate: {f.rate:.1f} msg/s, cap: {f.cap:g} msg/s, rate / cap: {f.rate / f.cap:.2f} (target >= 0.9)")
    print(f"lost: {f.lost}, duplicated: {f.duplicated}")


if __name__ == "__main__":
    main()
