"""bot/teams/msrest_fix.py: the patched retry policy decides exactly as stock msrest does, and an msrest or
botbuilder upgrade that makes the patch wrong or unnecessary fails here with what to re-check."""

from __future__ import annotations

import inspect
import json
import logging
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, AdaptiveCardInvokeResponse
from msrest.universal_http.requests import ClientRetryPolicy

from bot.teams import msrest_fix

ROOT = Path(__file__).resolve().parents[2]
RECHECK = ("re-check bot/teams/msrest_fix.py: profile a bare CloudAdapter request (its docstring says how), "
           "read msrest's ClientRetryPolicy.__init__, then update the patch, this test's range, or drop both")

# One process per variant, so "stock" has never seen the patch. It prints every fact a retry policy decides by.
FACTS = r"""
import json, sys
from msrest.universal_http.requests import ClientRetryPolicy, RequestHTTPSenderConfiguration
if sys.argv[1] == "patched":
    from bot.teams import msrest_fix
    assert msrest_fix.apply()
config = RequestHTTPSenderConfiguration()
retry = config.retry_policy()
methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
print(json.dumps({
    "safe_codes_type": type(ClientRetryPolicy.safe_codes).__name__,
    "status_forcelist": retry.status_forcelist,
    "settings": [retry.total, retry.connect, retry.read, retry.backoff_factor, retry.BACKOFF_MAX,
                 retry.method_whitelist, config.retry_policy.retries, config.retry_policy.max_backoff],
    "decisions": {m: [[code, retry.is_retry(m, code), retry.is_retry(m, code, True)] for code in range(0, 1000)]
                  for m in methods},
}))
"""


def facts(variant: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", FACTS, variant], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_patched_retry_policy_decides_exactly_as_stock() -> None:
    stock, patched = facts("stock"), facts("patched")
    assert (stock["safe_codes_type"], patched["safe_codes_type"]) == ("list", "frozenset")
    assert patched["status_forcelist"] == stock["status_forcelist"]  # same codes, same order
    assert patched["settings"] == stock["settings"]
    assert patched["decisions"] == stock["decisions"]
    # the comparison is not vacuous: stock retries 408, 500, 502 and 998, never 404, 501 or 999 (range(999) stops short)
    get = {code: retried for code, retried, _ in stock["decisions"]["GET"]}
    assert [get[c] for c in (408, 500, 502, 998)] == [True] * 4
    assert [get[c] for c in (200, 404, 501, 505, 999)] == [False] * 5


def test_apply_is_idempotent_and_leaves_the_same_codes() -> None:
    assert msrest_fix.apply()
    first = ClientRetryPolicy.safe_codes
    assert msrest_fix.apply() and msrest_fix.is_applied()
    assert ClientRetryPolicy.safe_codes is first  # a second apply changes nothing
    assert isinstance(first, frozenset)
    assert first == frozenset([i for i in range(500) if i != 408] + [501, 505])


def test_apply_leaves_an_unexpected_attribute_alone(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(ClientRetryPolicy, "safe_codes", ("not", "ints"))
    with caplog.at_level(logging.WARNING, logger=msrest_fix.__name__):
        assert not msrest_fix.apply()
    assert ClientRetryPolicy.safe_codes == ("not", "ints")
    assert "not applied" in caplog.text


# --- the upgrade guard: each of these fails when msrest or botbuilder changes what the patch relies on ---

def test_installed_versions_are_the_ones_the_patch_was_made_for() -> None:
    installed = {name: version(name) for name in ("msrest", "botbuilder-core", "botframework-connector")}
    assert installed["msrest"] == "0.7.1", f"msrest {installed['msrest']} installed (patch made for 0.7.1): {RECHECK}"
    for name in ("botbuilder-core", "botframework-connector"):
        assert installed[name].startswith("4.17."), f"{name} {installed[name]} (patch made for 4.17): {RECHECK}"


def test_retry_policy_still_searches_safe_codes_for_each_of_999_codes() -> None:
    source = " ".join(inspect.getsource(ClientRetryPolicy.__init__).split())
    assert "[i for i in range(999) if i not in self.safe_codes]" in source, \
        f"ClientRetryPolicy.__init__ no longer builds retry codes by searching safe_codes: {RECHECK}"


def test_nothing_else_reads_safe_codes() -> None:
    # the frozenset is only safe while the one reader is that `in`: a reader that indexes or appends would break
    import botbuilder.core
    import botframework.connector
    import msrest

    readers: list[str] = []
    folders = (Path(msrest.__path__[0]), Path(botframework.connector.__path__[0]).parent,  # all of botframework
               Path(botbuilder.core.__path__[0]).parent)  # and all of botbuilder (core, schema, integration...)
    for folder in folders:
        for path in folder.rglob("*.py"):
            text = path.read_text(encoding="utf-8", errors="replace")
            uses = len(re.findall(r"\bsafe_codes\b", text))
            if uses:
                readers.append(f"{path.name}:{uses}")
    assert readers == ["requests.py:2"], f"safe_codes is used in {readers}: {RECHECK}"


class _ApproveBot(ActivityHandler):
    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        return InvokeResponse(status=200, body=AdaptiveCardInvokeResponse(
            status_code=200, type="application/vnd.microsoft.activity.message", value="approved"))


class _AnonymousConfig:
    APP_ID = ""
    APP_PASSWORD = ""


INVOKE = {"type": "invoke", "name": "adaptiveCard/action", "channelId": "msteams", "id": "f:1",
          "serviceUrl": "http://127.0.0.1:9/", "from": {"id": "29:person"}, "recipient": {"id": "28:bot"},
          "conversation": {"id": "a:conversation"},
          "value": {"action": {"type": "Action.Execute", "verb": "approve", "data": {"request": 1}},
                    "trigger": "manual"}}


async def test_a_request_builds_the_retry_policy_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost is per request because CloudAdapter builds two msrest clients per activity; if botbuilder
    stops doing that (clients cached), the patch is no longer worth carrying."""
    built: list[ClientRetryPolicy] = []
    stock_init = ClientRetryPolicy.__init__

    def counting_init(self: ClientRetryPolicy) -> None:  # msrest's own __init__, counted
        built.append(self)
        stock_init(self)

    msrest_fix.apply()
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(_AnonymousConfig()))
    bot = _ApproveBot()
    await adapter.process_activity("", Activity().deserialize(INVOKE), bot.on_turn)  # warm: first-use work
    monkeypatch.setattr(ClientRetryPolicy, "__init__", counting_init)
    responses = [await adapter.process_activity("", Activity().deserialize(INVOKE), bot.on_turn)
                 for _ in range(3)]
    assert [r.status for r in responses] == [200] * 3
    assert responses[0].body.value == "approved"
    assert len(built) == 2 * 3, f"{len(built) / 3} retry policies per request, expected 2: {RECHECK}"
    # each of them was built from the frozenset: 999 hash lookups, not 999 list searches
    assert all(isinstance(policy.safe_codes, frozenset) for policy in built)
    assert all(len(policy.policy.status_forcelist) == 999 - 501 for policy in built)
