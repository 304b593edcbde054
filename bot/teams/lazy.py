"""The Teams edge of the server, built when Teams is first used: a company on Slack alone never loads botbuilder
(about 30 MB of memory and most of a second of start, measured by bench/footprint.py).

With bot credentials (MICROSOFT_APP_ID) Teams is in use, so it is built at start (`warm`); without them the bot
is anonymous, for trying it locally, and botbuilder is loaded by the first `POST /api/messages` (or the first
card delivery to a Teams person, who can only be known after writing to the bot). Everything else of the
process sees only `bot/teams/refs.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from bot.teams.refs import JSON, anonymous
from config.settings import Settings
from handlers.conversation import Conversation

if TYPE_CHECKING:
    from botbuilder.integration.aiohttp import CloudAdapter

    from bot.teams.edge import TeamsBot
    from bot.teams.proactive import TeamsSender

log = logging.getLogger(__name__)


class LazyTeams:
    """`POST /api/messages` and the delivery loop's Teams sender, over one CloudAdapter made on first use."""

    def __init__(self, conversation: Conversation, settings: Settings,
                 changed: Callable[[], None] = lambda: None) -> None:
        self.conversation, self.settings, self.changed = conversation, settings, changed
        self.loopback_only = anonymous(settings)
        self._edge: tuple[CloudAdapter, TeamsBot, TeamsSender] | None = None

    def built(self) -> tuple[CloudAdapter, TeamsBot, TeamsSender]:
        if self._edge is None:
            from bot.teams.edge import TeamsBot, make_adapter
            from bot.teams.proactive import TeamsSender

            adapter = make_adapter(self.settings)
            self._edge = (adapter, TeamsBot(self.conversation, self.changed),
                          TeamsSender(adapter, self.settings.microsoft_app_id))
        return self._edge

    def warm(self) -> None:
        """Build it now when the bot has credentials (Teams is in use); anonymous, on first use."""
        if self.loopback_only:
            log.info("Teams: anonymous (no MICROSOFT_APP_ID): /api/messages loads the Teams SDK at its first "
                     "request, and serves loopback clients only")
        else:
            self.built()

    async def handle(self, request: web.Request) -> web.Response:
        from bot.teams.edge import messages

        adapter, bot, _ = self.built()
        return await messages(request, adapter, bot, self.loopback_only)

    async def post(self, address: JSON, card: JSON) -> JSON:
        return await self.built()[2].post(address, card)

    async def update(self, ref: JSON, card: JSON) -> None:
        await self.built()[2].update(ref, card)
