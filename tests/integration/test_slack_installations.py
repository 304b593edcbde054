"""The Slack installation tables are slack_sdk's: our copies (models/installations.py, migration 0006) match what
slack_sdk's SQLAlchemy stores build, and slack_sdk's stores work on our migrated database, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from models import installations
from models.db import Database


def _shape(table: sa.Table) -> tuple[list[tuple[Any, ...]], set[tuple[str, tuple[str, ...]]]]:
    columns = [(c.name, type(c.type).__name__, getattr(c.type, "length", None), c.nullable, c.primary_key)
               for c in table.columns]
    indexes = {(str(i.name), tuple(c.name for c in i.columns)) for i in table.indexes}
    return columns, indexes


@pytest.mark.parametrize(("ours", "build"), [
    (installations.slack_installations, SQLAlchemyInstallationStore.build_installations_table),
    (installations.slack_bots, SQLAlchemyInstallationStore.build_bots_table),
    (installations.slack_oauth_states, SQLAlchemyOAuthStateStore.build_oauth_states_table),
], ids=["installations", "bots", "oauth_states"])
def test_our_tables_are_slack_sdks(ours: sa.Table, build: Any) -> None:
    theirs = build(sa.MetaData(), ours.name)
    assert _shape(ours) == _shape(theirs)


def test_slack_sdks_stores_run_on_the_migrated_schema(db: Database) -> None:
    store = SQLAlchemyInstallationStore(client_id="111.222", engine=db.engine)
    store.save(Installation(app_id="A1", team_id="T2", team_name="Beta", bot_token="xoxb-t2", bot_id="B2",
                            bot_user_id="UBOT2", bot_scopes=["commands", "chat:write"], user_id="U9"))
    bot = store.find_bot(enterprise_id=None, team_id="T2")
    assert bot is not None and bot.bot_token == "xoxb-t2" and bot.bot_user_id == "UBOT2"
    assert store.find_bot(enterprise_id=None, team_id="T3") is None
    states = SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=db.engine)
    state = states.issue()
    assert states.consume(state) is True
    assert states.consume(state) is False  # once only
