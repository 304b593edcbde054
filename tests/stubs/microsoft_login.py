"""Microsoft's login endpoint (Entra ID) for the tests, on 127.0.0.1: the OAuth 2.0 client-credentials token
endpoint `POST /{tenant}/oauth2/v2.0/token` as the Bot Framework uses it, with Entra's error answers (an
unknown app, a wrong secret). MADOGUCHI_MICROSOFT_LOGIN_URL points here. Every request is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class MicrosoftLoginStub:
    """`apps`: app id -> its client secret."""

    apps: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (tenant, form)
    _server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.make_url("/"))

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append((request.match_info["tenant"], form))
        if form.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
        app_id = form.get("client_id", "")
        if app_id not in self.apps:
            return _error(400, "unauthorized_client", f"AADSTS700016: Application with identifier '{app_id}' was "
                                                      "not found in the directory.\r\nTrace ID: 0000")
        if form.get("client_secret") != self.apps[app_id]:
            return _error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret "
                                                 "being sent in the request is the client secret value.\r\nTrace ID: 1")
        return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                  "access_token": "eyJ0eXAiOiJKV1Qi.stub.token"})


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description, "error_codes": [0]}, status=status)
