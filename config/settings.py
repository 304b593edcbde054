"""Process settings from environment variables (the interface operators depend on; see README)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_WORKFLOWS = Path(__file__).parent / "defaults" / "workflows.yaml"


class Settings(BaseSettings):
    """Everything the process reads from its environment. Unknown variables are ignored."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field("sqlite:///./madoguchi.db", validation_alias="DATABASE_URL")
    workflows: Path = Field(DEFAULT_WORKFLOWS, validation_alias="MADOGUCHI_WORKFLOWS")
    timezone: str | None = Field(None, validation_alias="MADOGUCHI_TIMEZONE")
    # synchronous=FULL by default: a decision a person was told about must survive a power cut.
    sqlite_synchronous: str = Field("FULL", validation_alias="MADOGUCHI_SQLITE_SYNCHRONOUS")
    # How long a claimed outbox row stays with the process that claimed it; a process that dies mid-send leaves its
    # rows to be sent again by another (or by itself after a restart) once this has passed.
    outbox_lease_seconds: float = Field(120.0, gt=0, validation_alias="MADOGUCHI_OUTBOX_LEASE_SECONDS")
    # Messages a second to the whole Slack workspace (posts and updates together); unset: the delivery loop's
    # default (bot/delivery.py DEFAULT_RATE). An operator who knows the workspace's limit sets it.
    slack_rate: float | None = Field(None, gt=0, validation_alias="MADOGUCHI_SLACK_RATE")
    # Logs: `text` (one readable line each) or `json` (one JSON object a line, for a log collector).
    log_format: Literal["text", "json"] = Field("text", validation_alias="MADOGUCHI_LOG_FORMAT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias="MADOGUCHI_LOG_LEVEL")

    slack_bot_token: str | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    slack_client_secret: str | None = Field(None, validation_alias="SLACK_CLIENT_SECRET")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="SLACK_API_URL")
    # OAuth installs (several workspaces; with SLACK_CLIENT_ID + SLACK_CLIENT_SECRET and no SLACK_BOT_TOKEN): the
    # bot scopes asked for, comma-separated (None: the manifest's), the redirect URL registered with the app
    # (None: the one registered there, when it is the only one), and how long an install link stays valid.
    slack_scopes: str | None = Field(None, validation_alias="SLACK_SCOPES")
    slack_redirect_uri: str | None = Field(None, validation_alias="SLACK_REDIRECT_URI")
    slack_oauth_state_seconds: int = Field(600, gt=0, validation_alias="SLACK_OAUTH_STATE_SECONDS")

    microsoft_app_id: str | None = Field(None, validation_alias="MICROSOFT_APP_ID")
    microsoft_app_password: str | None = Field(None, validation_alias="MICROSOFT_APP_PASSWORD")
    microsoft_app_tenant_id: str | None = Field(None, validation_alias="MICROSOFT_APP_TENANT_ID")
    microsoft_app_type: str | None = Field(None, validation_alias="MICROSOFT_APP_TYPE")

    # Backup, restore and `check --connect` (docs/deploy.md)
    # where pg_dump and pg_restore are; default: Debian's /usr/lib/postgresql/N/bin, PATH, `pg_config --bindir`
    pg_bindir: Path | None = Field(None, validation_alias="MADOGUCHI_PG_BINDIR")
    # Microsoft's login endpoint, where `check --connect` asks for the Teams bot's token (staging, tests)
    microsoft_login_url: str = Field("https://login.microsoftonline.com/",
                                     validation_alias="MADOGUCHI_MICROSOFT_LOGIN_URL")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
