"""The playground in a real browser: headless Chromium (Debian's), driven by Playwright (npm playwright-core, no
browser download), against the real server with the demo company. An employee files a leave request from the
message box, the manager approves it from the card in their DM, and the employee's card shows the outcome.
The screenshots it takes are the README's (`MADOGUCHI_SCREENSHOTS=docs` writes them there).

Skipped with the reason shown when node, playwright-core (`npm ci`) or Chromium is missing, except under
`MADOGUCHI_REQUIRE_BROWSER=1` (CI), where a missing piece is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer, unused_port

from bot.playground import demo
from bot.playground.app import Playground, api_url, make_playground, mount
from bot.server import DELIVERY, make_app
from config.policy import Policy
from config.settings import Settings
from models.db import Database
from models.people import employees
from models.requests import requests
from tests.conftest import Clock

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "browser" / "playground_flow.mjs"
CHROMIUM = os.environ.get("MADOGUCHI_CHROMIUM", "/usr/bin/chromium")
LEAVE_DAY = "2026-06-10"  # a Wednesday after the test clock's Tuesday 2026-06-02


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (run `npm ci`)"
    if not Path(CHROMIUM).exists():
        return f"Chromium is not at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture
def browser_ready() -> None:
    missing = _missing()
    if missing is None:
        return
    if os.environ.get("MADOGUCHI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MADOGUCHI_REQUIRE_BROWSER=1 but {missing}")
    pytest.skip(f"browser test: {missing}")


@pytest.fixture
async def demo_server(sqlite_db: Database, policy: Policy, clock: Clock) -> AsyncIterator[tuple[str, Playground]]:
    """The demo as `madoguchi demo` runs it (delivery loop and all), on a free port, at the test clock's time."""
    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    playground = make_playground(base)
    demo.seed(sqlite_db, policy, playground.workspace, now=clock())
    settings = Settings.model_validate({"SLACK_BOT_TOKEN": playground.bot_token,
                                        "SLACK_SIGNING_SECRET": playground.signing_secret,
                                        "SLACK_API_URL": api_url(base)})
    app = make_app(settings, database=sqlite_db, policy=policy, clock=clock, deliver=True, warm=False)
    mount(app, playground)
    app[DELIVERY].pace = 0  # Slack's one-a-second per channel only slows the test down
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    yield base, playground
    await server.close()


async def test_file_approve_and_see_the_card_updated_in_chromium(browser_ready: None,
                                                                 demo_server: tuple[str, Playground],
                                                                 sqlite_db: Database, tmp_path: Path) -> None:
    base, playground = demo_server
    shots = Path(os.environ.get("MADOGUCHI_SCREENSHOTS") or tmp_path)
    process = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), base, str(shots), LEAVE_DAY,
        cwd=ROOT, env={**os.environ, "CHROMIUM": CHROMIUM},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 150)
    except TimeoutError:
        process.kill()
        raise
    log = output.decode(errors="replace")
    assert process.returncode == 0, log
    assert "approved and the requester's card updated" in log, log

    with sqlite_db.unit_of_work(write=False) as conn:
        filed = conn.execute(sa.select(requests.c.status)
                             .join(employees, employees.c.id == requests.c.requester_id)
                             .where(employees.c.email == "suzuki.misaki@example.jp")).scalars().all()
    assert filed == ["approved"]
    for name in ("playground-approver.png", "playground-requester.png"):
        assert (shots / name).stat().st_size > 10_000
    # what the browser showed is what the emulator holds: the requester's card was edited in place
    dm = playground.workspace.dm("UE0003")
    assert any(m.edited and "承認済み" in m.text for m in dm.messages)
