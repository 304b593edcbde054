"""Where the app is installed on Slack, for the OAuth (several workspaces) mode: slack_sdk's SQLAlchemy installation
and OAuth state stores on our own database, behind the async interfaces Bolt's OAuth flow and authorize use.

- Every store call is one unit of work on the database's writer (`bot.writer.on_writer`), like the engine's use
  cases: never on the event loop. slack_sdk's stores open their own connections (`engine.begin()`), which on SQLite
  would wait behind the writer's own open transaction (the writer thread holds it while it runs the call: a
  30-second lock wait); so each call runs on a copy of the store whose `engine` hands out the unit of work's
  connection (`_Within`). slack_sdk's queries are used unchanged, and `save` (installation + bot) is one transaction.
- The bot of each workspace (token, bot user) is kept in memory once looked up, so a click costs no lookup; a new
  install replaces it, an uninstall or revoked token (Bolt's `app_uninstalled` / `tokens_revoked` listeners) drops
  it. A workspace without an installation is not remembered: it is looked up again on its next request (it may
  install meanwhile, possibly through another replica). An uninstall or reinstall through another replica is
  noticed here when Slack refuses the remembered token (`invalid_auth`, `token_revoked`) to the delivery loop or
  to a request: the workspace is forgotten and read again (`forget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy.engine import Connection

from bot.writer import on_writer
from models.db import Database
from models.installations import slack_oauth_states

log = logging.getLogger(__name__)

T = TypeVar("T")
Store = TypeVar("Store", SQLAlchemyInstallationStore, SQLAlchemyOAuthStateStore)
Key = tuple[str | None, str | None]  # (enterprise id, team id); team None for an org-wide install


class _Within:
    """What slack_sdk's stores take for an Engine: `begin()` and `connect()` both give the unit of work's connection
    (the unit of work commits or rolls back)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        yield self._conn

    connect = begin


def _within(store: Store, conn: Connection) -> Store:
    bound = copy.copy(store)  # shares the store's tables; only the engine differs
    bound.engine = _Within(conn)  # type: ignore[assignment]
    return bound


def bot_key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> Key:
    """The key slack_sdk finds a bot by: an org-wide install has no team."""
    return enterprise_id, None if is_enterprise_install else team_id


class Installations(AsyncInstallationStore):
    """The installation store of the OAuth mode (see the module's docstring)."""

    def __init__(self, db: Database, client_id: str) -> None:
        self._db = db
        self._store = SQLAlchemyInstallationStore(client_id=client_id, engine=db.engine, logger=log)
        self._bots: dict[Key, Bot] = {}
        self._lookups: dict[Key, asyncio.Future[Bot | None]] = {}

    @property
    def logger(self) -> logging.Logger:
        return log

    async def _run(self, write: bool, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def unit() -> T:
            with self._db.unit_of_work(write=write) as conn:
                return call(_within(self._store, conn), *args, **kwargs)

        return await on_writer(self._db, unit)

    def _forget(self, key: Key) -> None:
        self._bots.pop(key, None)
        self._lookups.pop(key, None)  # a lookup under way must not bring the old bot back

    def forget(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Drop what is remembered of the workspace (its token was refused): the next request reads it afresh."""
        self._forget(bot_key(enterprise_id, team_id))

    async def async_save(self, installation: Installation) -> None:
        await self._run(True, SQLAlchemyInstallationStore.save, installation)
        self._installed(installation.to_bot())

    async def async_save_bot(self, bot: Bot) -> None:
        await self._run(True, SQLAlchemyInstallationStore.save_bot, bot)
        self._installed(bot)

    def _installed(self, bot: Bot) -> None:
        key = bot_key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        self._forget(key)
        if bot.bot_token:
            self._bots[key] = bot
        log.info("Slack workspace %s installed", bot.team_id or bot.enterprise_id)

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        key = bot_key(enterprise_id, team_id, is_enterprise_install)
        known = self._bots.get(key)
        if known is not None:
            return known
        lookup = self._lookups.get(key)
        if lookup is None:  # simultaneous first requests of a workspace share one lookup
            lookup = asyncio.ensure_future(self._run(False, SQLAlchemyInstallationStore.find_bot,
                                                     enterprise_id=enterprise_id, team_id=team_id,
                                                     is_enterprise_install=is_enterprise_install))
            self._lookups[key] = lookup
            lookup.add_done_callback(lambda done: self._looked_up(key, done))
        return await asyncio.shield(lookup)

    def _looked_up(self, key: Key, done: asyncio.Future[Bot | None]) -> None:
        if self._lookups.get(key) is not done:
            return  # forgotten meanwhile (installed again, uninstalled): its answer may be stale
        del self._lookups[key]
        if not done.cancelled() and done.exception() is None and done.result() is not None:
            self._bots[key] = done.result()  # type: ignore[assignment]

    async def async_find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                      user_id: str | None = None,
                                      is_enterprise_install: bool | None = False) -> Installation | None:
        return await self._run(False, SQLAlchemyInstallationStore.find_installation, enterprise_id=enterprise_id,
                               team_id=team_id, user_id=user_id, is_enterprise_install=is_enterprise_install)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self._forget(bot_key(enterprise_id, team_id))
        await self._run(True, SQLAlchemyInstallationStore.delete_bot, enterprise_id=enterprise_id, team_id=team_id)
        self._forget(bot_key(enterprise_id, team_id))
        log.info("Slack workspace %s: the bot token was revoked", team_id or enterprise_id)

    async def async_delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                        user_id: str | None = None) -> None:
        if user_id is None:  # the whole workspace's installation: its bot goes with it
            self._forget(bot_key(enterprise_id, team_id))
        await self._run(True, SQLAlchemyInstallationStore.delete_installation, enterprise_id=enterprise_id,
                        team_id=team_id, user_id=user_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        def both(store: SQLAlchemyInstallationStore) -> None:  # one unit of work, not two
            store.delete_bot(enterprise_id=enterprise_id, team_id=team_id)
            store.delete_installation(enterprise_id=enterprise_id, team_id=team_id)

        self._forget(bot_key(enterprise_id, team_id))
        await self._run(True, both)
        self._forget(bot_key(enterprise_id, team_id))
        log.info("Slack workspace %s uninstalled the app", team_id or enterprise_id)


class OAuthStates(AsyncOAuthStateStore):
    """The one-time `state` of each install under way (slack_sdk's SQLAlchemy state store on our database): issued
    by /slack/install, consumed once by /slack/oauth_redirect, refused after `expiration_seconds`."""

    def __init__(self, db: Database, expiration_seconds: int) -> None:
        self._db = db
        self._store = SQLAlchemyOAuthStateStore(expiration_seconds=expiration_seconds, engine=db.engine, logger=log)

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        def unit() -> str:
            with self._db.unit_of_work() as conn:
                # states nobody came back with would pile up: slack_sdk deletes only the consumed ones
                now = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as slack_sdk stores them
                conn.execute(slack_oauth_states.delete().where(slack_oauth_states.c.expire_at <= now))
                return _within(self._store, conn).issue()

        return await on_writer(self._db, unit)

    async def async_consume(self, state: str) -> bool:
        def unit() -> bool:
            with self._db.unit_of_work() as conn:
                return _within(self._store, conn).consume(state)

        return await on_writer(self._db, unit)
