"""The Slack app manifest (https://api.slack.com/reference/manifests): paste it into "Create an app → From a
manifest" and the app has the slash command, the "New request" shortcut, the scopes, App Home and the URLs.

slack_sdk has no manifest models (only the apps.manifest.* Web API methods), so the keys here are exactly the
documented ones: display_information, features (app_home, bot_user, shortcuts, slash_commands),
oauth_config.scopes.bot, settings (event_subscriptions, interactivity, org_deploy_enabled, socket_mode_enabled,
token_rotation_enabled). In Socket Mode Slack delivers over the socket, so no URL appears at all.

With `oauth` (installs into several workspaces, bot/slack/oauth.py) the manifest also lists the redirect URL
(`oauth_config.redirect_urls`: <url>/slack/oauth_redirect, so the base URL is needed even in Socket Mode) and the
`app_uninstalled` and `tokens_revoked` events, on which the workspace's installation is deleted.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.slack.app import NEW_REQUEST
from bot.slack.oauth import REDIRECT_PATH

EVENTS_PATH = "/slack/events"  # the one route bot/server.py serves Slack on (commands, events, interactivity)
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# users:read.email: people are matched to employees by email. views.publish (App Home) needs no scope, and
# app_home_opened needs none either; im:write opens the DMs approval cards go to.
BOT_SCOPES = ("commands", "chat:write", "im:write", "users:read", "users:read.email")
BOT_EVENTS = ("app_home_opened",)
OAUTH_EVENTS = ("app_uninstalled", "tokens_revoked")  # need no scope
DESCRIPTION = "社内の申請（休暇・経費・押印・IT）と承認の窓口 / Back-office requests and approvals from Slack"
LONG_DESCRIPTION_JA = ("madoguchi（窓口）は、休暇・経費精算・押印・IT 依頼などの社内申請を Slack から行い、"
                       "上長や担当部署がボタンで承認できるようにするボットです。"
                       "有給休暇の残日数と年5日取得の進み具合もホームタブで確認できます。")
LONG_DESCRIPTION_EN = ("madoguchi (the service counter) lets employees file back-office requests such as leave, "
                       "expenses, seal stamps and IT help from Slack, and lets managers and back-office teams "
                       "approve them with a button. The Home tab shows what waits for you, your requests, "
                       "delegations and your paid leave balance.")
USAGE_HINT = "[leave | expense | stamp | it | status | inbox | help]  休暇 / 経費 / 押印 / 状況 / 承認"
COMMAND_DESCRIPTION = "申請する・状況を見る / File a request, see its status"
SHORTCUT_NAME = "New request / 新規申請"
SHORTCUT_DESCRIPTION = "申請の種類を選んでフォームを開きます / Choose a request type and open its form"
_COMMAND = re.compile(r"^/[a-z0-9_\-]{1,31}$")


class ManifestError(ValueError):
    """An option that would make a manifest Slack rejects (or an app Slack cannot reach)."""


def base_url(url: str) -> str:
    """The public base URL, checked: https (Slack calls only https), except plain http on this machine."""
    parts = urlsplit(url.strip())
    if not parts.hostname:
        raise ManifestError(f"--url must be an absolute URL such as https://bot.example.com, not {url!r}")
    if parts.query or parts.fragment:
        raise ManifestError(f"--url must have no query or fragment: {url!r}")
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS):
        raise ManifestError(f"--url must use https (Slack only calls https URLs), not {url!r}; "
                            f"plain http is accepted only for {' and '.join(LOCAL_HOSTS)}")
    return url.strip().rstrip("/")


def build_manifest(url: str | None, *, socket_mode: bool = False, name: str = "madoguchi",
                   command: str = "/madoguchi", oauth: bool = False) -> dict[str, Any]:
    """The manifest as data. `url` is the public base URL (required unless `socket_mode` without `oauth`)."""
    if not _COMMAND.match(command):
        raise ManifestError(f"--command must be a slash and up to 32 lowercase letters, digits, - or _: {command!r}")
    if not name.strip() or len(name) > 35:
        raise ManifestError(f"--name must be 1 to 35 characters (Slack's limit): {name!r}")
    events = None if socket_mode else _required(url) + EVENTS_PATH
    redirect = _required(url, "--oauth") + REDIRECT_PATH if oauth else None
    slash: dict[str, Any] = {"command": command, "description": COMMAND_DESCRIPTION, "usage_hint": USAGE_HINT,
                             "should_escape": False}
    if events:
        slash = {"command": command, "url": events, **{k: v for k, v in slash.items() if k != "command"}}
    return {
        "display_information": {"name": name, "description": DESCRIPTION,
                                "long_description": f"{LONG_DESCRIPTION_JA}\n\n{LONG_DESCRIPTION_EN}",
                                "background_color": "#2c4f7c"},
        "features": {
            "app_home": {"home_tab_enabled": True, "messages_tab_enabled": True,
                         "messages_tab_read_only_enabled": False},
            "bot_user": {"display_name": name, "always_online": True},
            "shortcuts": [{"name": SHORTCUT_NAME, "type": "global", "callback_id": NEW_REQUEST,
                           "description": SHORTCUT_DESCRIPTION}],
            "slash_commands": [slash],
        },
        "oauth_config": {**({"redirect_urls": [redirect]} if redirect else {}),
                         "scopes": {"bot": list(BOT_SCOPES)}},
        "settings": _settings(events, oauth),
    }


def _required(url: str | None, needed_by: str | None = None) -> str:
    if url is None:
        raise ManifestError(f"--url is required with {needed_by} (Slack sends the browser back to "
                            f"<url>{REDIRECT_PATH})" if needed_by else
                            "--url is required unless --socket-mode is given")
    return base_url(url)


def _settings(events_url: str | None, oauth: bool = False) -> dict[str, Any]:
    """Where Slack sends events and clicks: our one route, or the socket (no URLs at all)."""
    subscriptions: dict[str, Any] = {"bot_events": list(BOT_EVENTS + (OAUTH_EVENTS if oauth else ()))}
    interactivity: dict[str, Any] = {"is_enabled": True}
    if events_url:
        subscriptions = {"request_url": events_url, **subscriptions}
        interactivity["request_url"] = events_url
    return {"event_subscriptions": subscriptions, "interactivity": interactivity, "org_deploy_enabled": False,
            "socket_mode_enabled": events_url is None, "token_rotation_enabled": False}


def manifest_yaml(url: str | None, *, socket_mode: bool = False, name: str = "madoguchi",
                  command: str = "/madoguchi", oauth: bool = False) -> str:
    """The manifest as YAML, Japanese kept readable (not \\u escapes), keys in the documented order."""
    data = build_manifest(url, socket_mode=socket_mode, name=name, command=command, oauth=oauth)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)
