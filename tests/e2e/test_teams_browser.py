"""Teams in a real browser: Microsoft's Agents Playground web page (the Teams-like chat a person uses, rendering
Adaptive Cards with Microsoft's renderer) in headless Chromium (Debian's), driven by Playwright (npm
playwright-core, no browser download), against the real server (anonymous Teams, its own delivery loop). Each
person has a Playground of their own: Alice types `leave`, fills the card and submits it; the approver card
arrives unprompted in her manager's page, he presses Approve and the card becomes the outcome, as does her
status card. The screenshots are docs/teams.md's (`MADOGUCHI_SCREENSHOTS=docs` writes them there).

Nothing leaves this machine: the Playgrounds run under the harness's loopback guard, and the browser refuses
every request for a host other than loopback. What the Playground's page itself asks for off the machine (read
from a run, and the only thing the flow tolerates): Segoe UI fonts and Fluent's "flair" animation worklet from
res-1.cdn.office.net; the page renders with fallback fonts without them.

Skipped with the reason shown when node, playwright-core (`npm ci`), the Playground (`npm ci`) or Chromium is
missing, except under `MADOGUCHI_REQUIRE_BROWSER=1` (CI), where a missing piece is a failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from bot.server import make_app
from config.policy import Policy
from config.settings import Settings
from models.db import Database
from models.leave import leave_taken
from models.requests import assignments, requests
from tests.conftest import Clock, Org, make_org
from tests.e2e.test_playground_browser import CHROMIUM
from tests.e2e.test_playground_browser import _missing as browser_missing
from tests.e2e.test_teams_playground import PEOPLE
from tests.stubs.agents_playground import AgentsPlayground, PlaygroundUser
from tests.stubs.agents_playground import missing as playground_missing

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "browser" / "teams_flow.mjs"
LEAVE_DAY = "2026-06-08"  # a Monday after the test clock's Tuesday 2026-06-02
# what the Playground's page loads from Microsoft's CDN on its own (see the module docstring); refused
PLAYGROUND_CDN = re.compile(r"^https://res-1\.cdn\.office\.net/files/fabric-cdn-prod_\d+\.\d+/assets/")

# The names the test company (tests.conftest.make_org) gives these people, so that the page's header (the
# Playground's user) and the cards (madoguchi's employee) name the same person in the screenshots.
NAMES = {"alice@example.jp": "Ai Takahashi", "mgr@example.jp": "Ichiro Suzuki", "bob@example.jp": "Ken Tanaka",
         "head@example.jp": "Hanako Sato", "fin1@example.jp": "Makoto Ito", "it1@example.jp": "Sho Kato"}


def _named(person: PlaygroundUser) -> PlaygroundUser:
    given, surname = NAMES[person.email].split(" ")
    return dataclasses.replace(person, name=NAMES[person.email], given_name=given, surname=surname)


ROSTER = tuple(_named(p) for p in PEOPLE)


def _missing() -> str | None:
    return browser_missing() or playground_missing()


@pytest.fixture
def browser_ready() -> None:
    missing = _missing()
    if missing is None:
        return
    if os.environ.get("MADOGUCHI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MADOGUCHI_REQUIRE_BROWSER=1 but {missing}")
    pytest.skip(f"Teams browser test: {missing}")


@pytest.fixture
def org(sqlite_db: Database) -> Org:
    # one backend is enough here: both are covered by test_teams_playground.py, and a browser run is slow
    return make_org(sqlite_db)


@pytest.fixture
async def server(sqlite_db: Database, org: Org, policy: Policy, clock: Clock) -> AsyncIterator[str]:
    """The real server as tests/e2e/test_teams_playground.py starts it (anonymous Teams, its delivery loop);
    its /api/messages URL."""
    app = make_app(Settings.model_validate({}), database=sqlite_db, policy=policy, clock=clock, deliver=True,
                   tick=False)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield str(test_server.make_url("/api/messages"))
    await test_server.close()


async def _run_flow(alice: AgentsPlayground, manager: AgentsPlayground, shots: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), alice.url, manager.url, str(shots), LEAVE_DAY,
        cwd=ROOT, env={**os.environ, "CHROMIUM": CHROMIUM},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 180)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    log = output.decode(errors="replace")
    assert process.returncode == 0, log
    return log


async def test_leave_filed_and_approved_in_the_agents_playgrounds_web_page(
        browser_ready: None, server: str, sqlite_db: Database, org: Org, tmp_path: Path) -> None:
    shots = Path(os.environ.get("MADOGUCHI_SCREENSHOTS") or tmp_path)
    async with (AgentsPlayground(server, users=ROSTER, current_user="29:alice") as alice,
                AgentsPlayground(server, users=ROSTER, current_user="29:manager") as manager):
        log = await _run_flow(alice, manager, shots)
        await asyncio.gather(alice.settle(), manager.settle())
        assert alice.outbound == [] and manager.outbound == []  # the Playgrounds reached nothing off loopback
    assert "done: LV-2026-0001 filed in the requester's Teams, approved in the manager's" in log, log
    blocked = [line.removeprefix("blocked: ") for line in log.splitlines() if line.startswith("blocked: ")]
    assert [url for url in blocked if not PLAYGROUND_CDN.match(url)] == [], log

    # what the pages showed is what the database holds: her request, as typed into the card, approved by him
    with sqlite_db.unit_of_work(write=False) as conn:
        filed = conn.execute(sa.select(requests.c.id, requests.c.number, requests.c.status, requests.c.payload,
                                       requests.c.requester_id)).all()
        assert [(r.number, r.status, r.requester_id) for r in filed] == [("LV-2026-0001", "approved", org.alice)]
        assert filed[0].payload == {"unit": "full", "period": {"start": LEAVE_DAY, "end": LEAVE_DAY},
                                    "reason": "Doctor's appointment"}
        decided = conn.execute(sa.select(assignments.c.approver_id, assignments.c.status, assignments.c.acted_by_id)
                               .where(assignments.c.request_id == filed[0].id)).all()
        assert [tuple(d) for d in decided] == [(org.manager, "approved", org.manager)]
        taken = conn.execute(sa.select(leave_taken.c.employee_id, leave_taken.c.taken_on, leave_taken.c.unit)).all()
        assert [tuple(t) for t in taken] == [(org.alice, date(2026, 6, 8), "full")]
    for name in ("teams-requester.png", "teams-approver.png"):
        assert (shots / name).stat().st_size > 10_000
