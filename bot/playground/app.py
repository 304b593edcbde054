"""The playground put together and mounted on the bot's aiohttp application: the Slack Web API emulator at
`/api/`, response_url hooks, the page at `/` and its JSON API. The bot's SLACK_API_URL points at `/api/` here,
and the page's clicks reach the bot as signed requests to `/slack/events` on the same server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from bot.playground.interactions import Interactions
from bot.playground.page import Page
from bot.playground.webapi import API_PREFIX, SlackWebApi
from bot.playground.workspace import Workspace


@dataclass
class Playground:
    workspace: Workspace
    api: SlackWebApi
    interactions: Interactions
    page: Page

    @property
    def bot_token(self) -> str:
        return self.api.token or ""

    @property
    def signing_secret(self) -> str:
        return self.interactions.signing_secret


def make_playground(base_url: str, *, command: str = "/madoguchi", workspace: Workspace | None = None) -> Playground:
    """A playground served at `base_url` (e.g. http://127.0.0.1:3000), with a fresh bot token and signing
    secret (the demo's own; nothing real)."""
    ws = workspace or Workspace()
    base = base_url.rstrip("/")
    api = SlackWebApi(ws, token=f"xoxb-playground-{secrets.token_hex(8)}", strict=True)
    interactions = Interactions(api, secrets.token_hex(16), f"{base}/slack/events", base)
    return Playground(ws, api, interactions, Page(interactions, command))


def api_url(base_url: str) -> str:
    """The bot's SLACK_API_URL for a playground at `base_url`."""
    return base_url.rstrip("/") + API_PREFIX


def mount(app: web.Application, playground: Playground) -> None:
    playground.api.add_routes(app)
    playground.page.add_routes(app)

    async def session(_: web.Application) -> AsyncIterator[None]:
        yield
        await playground.interactions.close()

    app.cleanup_ctx.append(session)
