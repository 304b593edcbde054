"""`madoguchi slack manifest`: the YAML parses back into the documented manifest keys, with our URLs and scopes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.slack.manifest import BOT_SCOPES, ManifestError, build_manifest, manifest_yaml

TOP_KEYS = {"display_information", "features", "oauth_config", "settings"}
SETTINGS_KEYS = {"event_subscriptions", "interactivity", "org_deploy_enabled", "socket_mode_enabled",
                 "token_rotation_enabled"}


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["slack", "manifest", *args])


def test_http_mode_points_every_url_at_slack_events() -> None:
    result = run("--url", "https://bot.example.com/")
    assert result.exit_code == 0, result.stderr
    m = yaml.safe_load(result.stdout)
    assert set(m) == TOP_KEYS and set(m["settings"]) == SETTINGS_KEYS
    url = "https://bot.example.com/slack/events"
    assert m["settings"]["event_subscriptions"] == {"request_url": url, "bot_events": ["app_home_opened"]}
    assert m["settings"]["interactivity"] == {"is_enabled": True, "request_url": url}
    assert m["settings"]["socket_mode_enabled"] is False
    (command,) = m["features"]["slash_commands"]
    assert command["command"] == "/madoguchi" and command["url"] == url and command["usage_hint"]
    assert m["features"]["app_home"]["home_tab_enabled"] and m["features"]["app_home"]["messages_tab_enabled"]


def test_scopes_shortcut_and_display_information() -> None:
    m = build_manifest("https://bot.example.com")
    assert set(m["oauth_config"]["scopes"]["bot"]) >= {"commands", "chat:write", "im:write", "users:read",
                                                         "users:read.email"}
    assert m["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    (shortcut,) = m["features"]["shortcuts"]
    assert shortcut["type"] == "global" and shortcut["callback_id"] == "new_request"
    assert "新規申請" in shortcut["name"] and len(shortcut["name"]) <= 24
    info = m["display_information"]
    assert len(info["description"]) <= 140 and 175 <= len(info["long_description"]) <= 4000
    assert "申請" in info["description"] and "requests" in info["description"]  # ja and en


def test_socket_mode_has_no_urls() -> None:
    result = run("--socket-mode", "--name", "窓口", "--command", "/req")
    assert result.exit_code == 0, result.stderr
    m = yaml.safe_load(result.stdout)
    assert m["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in m["settings"]["event_subscriptions"]
    assert "request_url" not in m["settings"]["interactivity"]
    assert "url" not in m["features"]["slash_commands"][0] and "http" not in result.stdout
    assert m["display_information"]["name"] == "窓口" and m["features"]["slash_commands"][0]["command"] == "/req"


def test_local_http_is_accepted() -> None:
    assert "http://127.0.0.1:3000/slack/events" in manifest_yaml("http://127.0.0.1:3000")


@pytest.mark.parametrize("args", [("--url", "http://bot.example.com"), ("--url", "bot.example.com"),
                                  ("--url", "https://bot.example.com/?a=1"), (),
                                  ("--url", "https://bot.example.com", "--command", "madoguchi")])
def test_bad_options_exit_2_with_a_clear_error(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 2 and "✗ --" in result.stderr and not result.stdout


def test_build_manifest_refuses_a_missing_url() -> None:
    with pytest.raises(ManifestError, match="--url is required"):
        build_manifest(None)


def test_oauth_adds_the_redirect_url_and_the_uninstall_events() -> None:
    result = run("--url", "https://bot.example.com", "--oauth")
    assert result.exit_code == 0, result.stderr
    m = yaml.safe_load(result.stdout)
    assert m["oauth_config"]["redirect_urls"] == ["https://bot.example.com/slack/oauth_redirect"]
    assert m["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert m["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened", "app_uninstalled",
                                                                   "tokens_revoked"]
    socket = build_manifest("https://bot.example.com", socket_mode=True, oauth=True)
    assert socket["oauth_config"]["redirect_urls"] == ["https://bot.example.com/slack/oauth_redirect"]
    assert "request_url" not in socket["settings"]["event_subscriptions"]
    assert "redirect_urls" not in build_manifest("https://bot.example.com")["oauth_config"]


def test_oauth_without_a_url_is_refused_with_the_reason() -> None:
    result = run("--socket-mode", "--oauth")
    assert result.exit_code == 2 and "--url is required with --oauth" in result.stderr
    assert result.stdout == ""
