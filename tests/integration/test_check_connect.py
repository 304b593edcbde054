"""`madoguchi check --connect` against real parts: the database (SQLite and PostgreSQL), Slack's Web API and
Microsoft's login endpoint as stubs on loopback. Each check says ok, failed (exit 1, with why) or skipped (not
configured); no secret is ever printed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import Result

from config.settings import get_settings
from models.db import Database
from models.schema import head_revision
from tests.integration.test_export import Invoke, cli, flat  # noqa: F401  (fixture)
from tests.stubs.microsoft_login import MicrosoftLoginStub
from tests.stubs.slack_api import SlackApiStub

GOOD_TOKEN = "xoxb-good-token-0001"
APP_ID = "00000000-0000-0000-0000-0000000000aa"
SECRET = "app~password~1234"


@pytest.fixture
async def slack() -> AsyncIterator[SlackApiStub]:
    stub = SlackApiStub()
    stub.emulator.token = GOOD_TOKEN
    await stub.start()
    yield stub
    await stub.close()


@pytest.fixture
async def login() -> AsyncIterator[MicrosoftLoginStub]:
    stub = MicrosoftLoginStub(apps={APP_ID: SECRET})
    await stub.start()
    yield stub
    await stub.close()


async def check(cli: Invoke, code: int = 0) -> Result:  # noqa: F811
    """The CLI in a thread, so the stubs on this event loop can answer it."""
    get_settings.cache_clear()
    return await asyncio.to_thread(cli, "check", "--connect", code=code)


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_API_URL", "MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD",
                 "MICROSOFT_APP_TENANT_ID", "MICROSOFT_APP_TYPE", "MADOGUCHI_MICROSOFT_LOGIN_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


async def test_nothing_configured_is_skipped_not_failed(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    configure(monkeypatch)

    result = await check(cli)

    text = flat(result.stdout)
    assert f"✓ database: reachable, schema at {head_revision()}" in text
    assert "– Slack: skipped (not configured: SLACK_BOT_TOKEN)" in text
    assert "– Teams: skipped (not configured: MICROSOFT_APP_ID)" in text
    assert "✓ configuration is valid" in text


async def test_slack_and_teams_with_good_credentials(cli: Invoke, slack: SlackApiStub,  # noqa: F811
                                                     login: MicrosoftLoginStub,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, SLACK_BOT_TOKEN=GOOD_TOKEN, SLACK_API_URL=slack.api_url, MICROSOFT_APP_ID=APP_ID,
              MICROSOFT_APP_PASSWORD=SECRET, MADOGUCHI_MICROSOFT_LOGIN_URL=login.url)

    result = await check(cli)

    text = flat(result.stdout)
    assert "✓ Slack: auth.test ok: workspace Acme (T1), bot madoguchi (UBOT)" in text
    assert f"✓ Teams: token for app {APP_ID} from {login.url}botframework.com/oauth2/v2.0/token" in text
    assert len(slack.called("auth.test")) == 1
    tenant, form = login.requests[0]
    assert tenant == "botframework.com"  # a multi-tenant bot's tokens come from the Bot Framework's tenant
    assert form["scope"] == "https://api.botframework.com/.default" and form["client_secret"] == SECRET
    assert SECRET not in result.stdout + result.stderr and GOOD_TOKEN not in result.stdout + result.stderr


async def test_a_single_tenant_bot_asks_its_own_tenant(cli: Invoke, login: MicrosoftLoginStub,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, MICROSOFT_APP_ID=APP_ID, MICROSOFT_APP_PASSWORD=SECRET, MICROSOFT_APP_TYPE="SingleTenant",
              MICROSOFT_APP_TENANT_ID="contoso.onmicrosoft.com", MADOGUCHI_MICROSOFT_LOGIN_URL=login.url)
    await check(cli)
    assert login.requests[0][0] == "contoso.onmicrosoft.com"

    configure(monkeypatch, MICROSOFT_APP_ID=APP_ID, MICROSOFT_APP_PASSWORD=SECRET, MICROSOFT_APP_TYPE="SingleTenant",
              MADOGUCHI_MICROSOFT_LOGIN_URL=login.url)
    result = await check(cli, code=1)
    assert "✗ Teams: MICROSOFT_APP_TYPE is SingleTenant but MICROSOFT_APP_TENANT_ID is not set" in flat(result.stderr)
    assert len(login.requests) == 1


async def test_a_bad_slack_token_fails_with_why(cli: Invoke, slack: SlackApiStub,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, SLACK_BOT_TOKEN="xoxb-revoked-9999", SLACK_API_URL=slack.api_url)

    result = await check(cli, code=1)

    text = flat(result.stderr)
    assert f"✗ Slack: auth.test at {slack.api_url} failed: invalid_auth (SLACK_BOT_TOKEN is wrong or revoked)" in text
    assert "✗ cannot connect to: Slack" in text
    assert "xoxb-revoked-9999" not in result.stdout + result.stderr
    assert "configuration is valid" not in result.stdout


async def test_a_wrong_teams_secret_or_app_fails_with_microsofts_reason(
        cli: Invoke, login: MicrosoftLoginStub, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    configure(monkeypatch, MICROSOFT_APP_ID=APP_ID, MICROSOFT_APP_PASSWORD="wrong-secret-5678",
              MADOGUCHI_MICROSOFT_LOGIN_URL=login.url)
    result = await check(cli, code=1)
    text = flat(result.stderr)
    assert "✗ Teams: no token for app" in text and "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret" in text
    assert "Trace ID" not in text  # the first line of Microsoft's description only
    assert "wrong-secret-5678" not in result.stdout + result.stderr

    configure(monkeypatch, MICROSOFT_APP_ID="not-registered", MICROSOFT_APP_PASSWORD=SECRET,
              MADOGUCHI_MICROSOFT_LOGIN_URL=login.url)
    text = flat((await check(cli, code=1)).stderr)
    assert "HTTP 400 unauthorized_client: AADSTS700016: Application with identifier 'not-registered'" in text

    configure(monkeypatch, MICROSOFT_APP_ID=APP_ID)
    text = flat((await check(cli, code=1)).stderr)
    assert "✗ Teams: MICROSOFT_APP_ID is set but MICROSOFT_APP_PASSWORD is not" in text


async def test_unreachable_services_fail(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    closed = "http://127.0.0.1:9/"  # the discard port: nothing listens there
    configure(monkeypatch, SLACK_BOT_TOKEN=GOOD_TOKEN, SLACK_API_URL=closed + "api/", MICROSOFT_APP_ID=APP_ID,
              MICROSOFT_APP_PASSWORD=SECRET, MADOGUCHI_MICROSOFT_LOGIN_URL=closed)

    text = flat((await check(cli, code=1)).stderr)

    assert f"✗ Slack: cannot reach {closed}api/" in text
    assert f"✗ Teams: cannot reach {closed}botframework.com/oauth2/v2.0/token" in text
    assert "✗ cannot connect to: Slack, Teams" in text


async def test_a_database_without_the_schema_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.test_export import cli_on

    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    run = cli_on(empty, tmp_path, monkeypatch)
    invoke = next(run)
    configure(monkeypatch)
    try:
        text = flat((await check(invoke, code=1)).stderr)
    finally:
        empty.dispose()
        run.close()
    assert (f"✗ database: reachable, but the schema is at nothing, expected {head_revision()}: run `madoguchi db "
            "upgrade`") in text
