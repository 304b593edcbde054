"""The OAuth (several workspaces) mode of the Slack edge: `/slack/install` and `/slack/oauth_redirect` through
Bolt's `AsyncOAuthFlow`, each request authorized with the bot token of its own workspace, and a Web API client per
workspace for the delivery loop.

- The flow is Bolt's: /slack/install issues a one-time state (stored, `OAuthStates`) and sets it as a cookie, and
  shows the "Add to Slack" link; /slack/oauth_redirect checks the state against the cookie (same browser) and the
  store (issued by us, not expired, used once), calls `oauth.v2.access` (on `SLACK_API_URL`) and stores the
  installation (`Installations`). A forged, expired or reused state, or no cookie: a 4xx page, nothing stored.
- `InstalledBot` is Bolt's `authorize`: the workspace's bot from the installation store's memory (no lookup, no
  auth.test: the installation already says who the bot is). Bolt's own installation-store authorize would call
  auth.test on every request. A workspace that never installed gets Bolt's ephemeral answer, in ja and en.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.oauth.redirect_uri_page_renderer import RedirectUriPageRenderer
from slack_sdk.web.async_client import AsyncWebClient

from config.i18n import LocalText

if TYPE_CHECKING:  # only in OAuth mode: slack_sdk's SQLAlchemy stores are loaded when used
    from bot.slack.installations import Installations, OAuthStates


log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
NOT_INSTALLED = LocalText.of(
    ja=":warning: madoguchi はこのワークスペースにインストールされていません。管理者にインストールを依頼してください。",
    en=":warning: madoguchi is not installed in this workspace. Ask your Slack admin to install it.")
INSTALL = LocalText.of(ja="madoguchi を Slack ワークスペースに追加します", en="Add madoguchi to your Slack workspace")
ADD_TO_SLACK = LocalText.of(ja="Slack に追加", en="Add to Slack")
INSTALLED = LocalText.of(ja="madoguchi をインストールしました", en="madoguchi is installed")
OPEN_SLACK = LocalText.of(ja="Slack を開く", en="Open Slack")
FAILED = LocalText.of(ja="インストールできませんでした", en="The installation did not complete")
TRY_AGAIN = LocalText.of(ja="もう一度インストールしてください", en="Please install again")
# what each of Bolt's failure reasons means to the person in the browser
REASONS = {
    "invalid_browser": LocalText.of(ja="インストールを始めたブラウザーで続けてください（Cookie がありません）。",
                                    en="Continue in the browser you started the install in (no state cookie)."),
    "invalid_state": LocalText.of(ja="このリンクは無効か期限切れです。",
                                  en="This link is not valid or has expired."),
    "access_denied": LocalText.of(ja="インストールが取り消されました。", en="The installation was cancelled."),
}
# Slack's answers to a bot token that no longer works (the app was removed, or installed again with a new token)
TOKEN_GONE = frozenset({"invalid_auth", "not_authed", "token_revoked", "account_inactive"})
UNKNOWN_REASON = LocalText.of(ja="Slack が認可を返しませんでした。", en="Slack did not grant the installation.")


class InstalledBot(AsyncAuthorize):
    """Bolt's `authorize` in the OAuth mode: the bot installed in the request's workspace (or org)."""

    def __init__(self, installations: Installations) -> None:
        super().__init__()
        self.installations = installations

    async def __call__(self, *, context: AsyncBoltContext, enterprise_id: str | None, team_id: str | None,
                       user_id: str | None, **_: Any) -> AuthorizeResult | None:
        bot = await self.installations.async_find_bot(enterprise_id=enterprise_id, team_id=team_id,
                                                      is_enterprise_install=context.is_enterprise_install)
        if bot is None or not bot.bot_token:
            log.warning("a request from Slack workspace %s, where the app is not installed",
                        team_id or enterprise_id)
            return None
        return AuthorizeResult(enterprise_id=bot.enterprise_id, team_id=bot.team_id, team=bot.team_name,
                               bot_user_id=bot.bot_user_id, bot_id=bot.bot_id, bot_token=bot.bot_token,
                               bot_scopes=bot.bot_scopes, user_id=user_id)


class InstallFlow(AsyncOAuthFlow):
    """Bolt's OAuth flow, with the "Add to Slack" page in Japanese and English."""

    async def build_install_page_html(self, url: str, request: AsyncBoltRequest) -> str:
        return _page(f"{INSTALL('ja')} / {INSTALL('en')}",
                     f'<p><a href="{html.escape(url)}">{ADD_TO_SLACK("ja")} / {ADD_TO_SLACK("en")}</a></p>')


class Pages(RedirectUriPageRenderer):
    """The pages /slack/oauth_redirect answers with, in Japanese and English."""

    def render_success_page(self, app_id: str, team_id: str | None, is_enterprise_install: bool | None = None,
                            enterprise_url: str | None = None) -> str:
        url = f"slack://app?team={team_id}&id={app_id}" if team_id and app_id else "slack://open"
        link = f'<p><a href="{html.escape(url)}">{OPEN_SLACK("ja")} / {OPEN_SLACK("en")}</a></p>'
        return _page(f"{INSTALLED('ja')} / {INSTALLED('en')}", link)

    def render_failure_page(self, reason: str) -> str:
        why = REASONS.get(reason, UNKNOWN_REASON)
        again = f'<a href="{html.escape(self.install_path)}">{TRY_AGAIN("ja")} / {TRY_AGAIN("en")}</a>'
        return _page(f"{FAILED('ja')} / {FAILED('en')}",
                     f"<p>{html.escape(why('ja'))}<br>{html.escape(why('en'))}</p>"
                     f"<p>{again} (reason: {html.escape(reason)})</p>")


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'</head><body style="font-family: sans-serif; text-align: center; padding: 2em">'
            f"<h2>{html.escape(title)}</h2>{body}</body></html>")


def oauth_settings(*, client_id: str, client_secret: str, scopes: Sequence[str], installations: Installations,
                   states: OAuthStates, redirect_uri: str | None = None,
                   state_expiration_seconds: int = 600) -> AsyncOAuthSettings:
    """Bolt's OAuth settings on our stores, with our pages."""
    settings = AsyncOAuthSettings(
        client_id=client_id, client_secret=client_secret, scopes=list(scopes), user_scopes=[],
        redirect_uri=redirect_uri, install_path=INSTALL_PATH, redirect_uri_path=REDIRECT_PATH,
        installation_store=installations, installation_store_bot_only=True, state_store=states,
        state_expiration_seconds=state_expiration_seconds, logger=log)
    # read by the flow when it is made (AsyncApp makes it from these settings)
    settings.redirect_uri_page_renderer = Pages(install_path=INSTALL_PATH, redirect_uri_path=REDIRECT_PATH)
    return settings


class WorkspaceClients:
    """A Web API client per installed workspace, with its bot token, for the delivery loop (which sends without a
    request to take the token from). Clients share `template`'s session (the process's connection pool)."""

    def __init__(self, installations: Installations, template: AsyncWebClient) -> None:
        self.installations, self.template = installations, template
        self._clients: dict[str, AsyncWebClient] = {}  # bot token -> its client

    async def client(self, team_id: str | None) -> AsyncWebClient | None:
        """The client for the workspace, None when the app is not installed there."""
        if not team_id:
            return None
        bot = await self.installations.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or not bot.bot_token:
            return None
        client = self._clients.get(bot.bot_token)
        if client is None:
            client = self._clients[bot.bot_token] = AsyncWebClient(token=bot.bot_token,
                                                                   base_url=self.template.base_url)
        client.session = self.template.session  # set or cleared with the server's session
        return client

    async def renewed(self, team_id: str | None) -> bool:
        """Slack refused the workspace's token: read its installation again; True when it now has another token
        (installed again meanwhile, e.g. through another replica)."""
        if not team_id:
            return False
        old = await self.installations.async_find_bot(enterprise_id=None, team_id=team_id)
        self.installations.forget(enterprise_id=None, team_id=team_id)
        new = await self.installations.async_find_bot(enterprise_id=None, team_id=team_id)
        return new is not None and bool(new.bot_token) and (old is None or new.bot_token != old.bot_token)
