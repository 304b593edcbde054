"""Connector and user-token clients reused across activities, instead of built anew for every one.

botbuilder 4.17's CloudAdapter builds, for EVERY incoming activity, a ConnectorClient (its msrest configuration,
pipeline, serializer maps and a new aiohttp session, never closed) and a UserTokenClient (the same again, for OAuth
sign-in prompts this bot never uses), and every proactive send (`continue_conversation`) does the first again.
Measured with yappi on the Approve invoke: about a quarter of the edge's CPU. The older BotFrameworkAdapter kept a
connector client per service URL; this does the same for CloudAdapter, by wrapping the BotFrameworkAuthentication
it is given:

- `authenticate_request` and `create_connector_factory` hand out factories that keep one ConnectorClient per
  (app id, service URL, audience): the same credentials object (which caches its token) and one session, so the
  connector's TCP connections are kept alive between sends;
- `create_user_token_client` keeps one per app id.

Authentication itself is untouched: every request is still authenticated by the wrapped object. A client is only
reused for the same app id, so nothing of one bot's credentials is used for another's.
"""

from __future__ import annotations

from typing import Any

from botbuilder.schema import Activity
from botframework.connector import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)


class _ReusedConnectors(ConnectorFactory):
    """A connector factory that builds each (service URL, audience)'s client once, in `clients`."""

    def __init__(self, factory: ConnectorFactory, app_id: str | None,
                 clients: dict[tuple[str | None, str, str | None], ConnectorClient]) -> None:
        self.factory, self.app_id, self.clients = factory, app_id, clients

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        key = (self.app_id, service_url, audience)
        client = self.clients.get(key)
        if client is None:
            client = self.clients[key] = await self.factory.create(service_url, audience)
        return client


def _app_id(claims_identity: ClaimsIdentity | None) -> str | None:
    """The bot's app id as botbuilder's own factory takes it from the claims (the audience of a channel's token,
    the appid claim of the emulator's; None when anonymous): the credentials a client is built with."""
    if claims_identity is None:
        return None
    found = (claims_identity.get_claim_value(AuthenticationConstants.AUDIENCE_CLAIM)
             or claims_identity.get_claim_value(AuthenticationConstants.APP_ID_CLAIM))
    return str(found) if found else None


class ReusedClients(BotFrameworkAuthentication):
    """`inner` (e.g. ConfigurationBotFrameworkAuthentication) with its clients kept and reused."""

    def __init__(self, inner: BotFrameworkAuthentication) -> None:
        self.inner = inner
        self.connectors: dict[tuple[str | None, str, str | None], ConnectorClient] = {}
        self.token_clients: dict[str | None, UserTokenClient] = {}

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        result = await self.inner.authenticate_request(activity, auth_header)
        if result.connector_factory is not None:
            result.connector_factory = _ReusedConnectors(result.connector_factory,
                                                         _app_id(result.claims_identity), self.connectors)
        return result

    async def authenticate_streaming_request(self, auth_header: str,
                                             channel_id_header: str) -> AuthenticateRequestResult:
        return await self.inner.authenticate_streaming_request(auth_header, channel_id_header)

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return _ReusedConnectors(self.inner.create_connector_factory(claims_identity), _app_id(claims_identity),
                                 self.connectors)

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        key = _app_id(claims_identity)
        client = self.token_clients.get(key)
        if client is None:
            client = self.token_clients[key] = await self.inner.create_user_token_client(claims_identity)
        return client

    def create_bot_framework_client(self) -> Any:
        return self.inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return self.inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self.inner.authenticate_channel_request(auth_header)
