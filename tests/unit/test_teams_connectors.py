"""bot/teams/connectors.py: CloudAdapter's per-activity clients are built once per service URL (and app id),
while every request is still authenticated by botbuilder's own ConfigurationBotFrameworkAuthentication."""

from __future__ import annotations

from typing import Any

import pytest
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity

from bot.teams.connectors import ReusedClients
from bot.teams.edge import _BotConfig


def activity(service_url: str) -> Activity:
    return Activity().deserialize({"type": "message", "id": "1", "channelId": "msteams", "serviceUrl": service_url,
                                   "from": {"id": "29:a"}, "recipient": {"id": "28:bot"},
                                   "conversation": {"id": "a:1"}})


def auth(app_id: str | None = None, password: str | None = None) -> ReusedClients:
    config: Any = _BotConfig(app_id, password, None, "MultiTenant")
    return ReusedClients(ConfigurationBotFrameworkAuthentication(config))


async def test_one_connector_per_service_url_and_one_token_client() -> None:
    clients = auth()
    first = await clients.authenticate_request(activity("http://127.0.0.1:1/"), "")
    again = await clients.authenticate_request(activity("http://127.0.0.1:1/"), "")
    other = await clients.authenticate_request(activity("http://127.0.0.1:2/"), "")
    assert first.connector_factory is not None and again.connector_factory is not None
    assert other.connector_factory is not None
    a = await first.connector_factory.create("http://127.0.0.1:1/", first.audience)
    b = await again.connector_factory.create("http://127.0.0.1:1/", again.audience)
    c = await other.connector_factory.create("http://127.0.0.1:2/", other.audience)
    assert a is b and a is not c
    assert a.config.base_url.startswith("http://127.0.0.1:1")
    # proactive sends (continue_conversation) take the same clients
    proactive = clients.create_connector_factory(first.claims_identity)
    assert await proactive.create("http://127.0.0.1:1/", first.audience) is a
    assert (await clients.create_user_token_client(first.claims_identity)
            is await clients.create_user_token_client(again.claims_identity))


async def test_requests_are_still_authenticated_when_the_bot_has_credentials() -> None:
    clients = auth("00000000-0000-0000-0000-00000000abcd", "secret")
    with pytest.raises(PermissionError):
        await clients.authenticate_request(activity("http://127.0.0.1:1/"), "")
    assert clients.connectors == {}
