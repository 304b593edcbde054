"""The Teams app package (`madoguchi teams package`): a zip of manifest.json, its Japanese localization and the
two icons, to upload in Teams ("Apps → Manage your apps → Upload an app") or the Teams admin center.

The manifest follows schema v1.17 (https://learn.microsoft.com/microsoftteams/platform/resources/schema/
manifest-schema); its `$schema` URL is written as a string, never fetched. The bot id is the app id (the Azure
bot's Microsoft App ID), in personal and team scope, with a command menu whose titles are words
`handlers.commands` understands, so choosing one sends a command the bot knows. English strings are in
manifest.json; the Japanese ones in ja-jp.json (localizationInfo), which Teams shows to Japanese clients. The
icons are drawn here (PNG written with zlib + struct): color.png 192x192 opaque, outline.png 32x32 white on
transparent, as the manifest requires.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

MANIFEST_VERSION = "1.17"
SCHEMA_URL = f"https://developer.microsoft.com/en-us/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
LOCALIZATION_SCHEMA_URL = (f"https://developer.microsoft.com/en-us/json-schemas/teams/v{MANIFEST_VERSION}/"
                           "MicrosoftTeams.Localization.schema.json")
JA_FILE = "ja-jp.json"
FILES = ("manifest.json", JA_FILE, "color.png", "outline.png")
SCOPES = ("personal", "team")
ACCENT = (0x1F, 0x5F, 0xAD)  # the colour behind the icon in Teams, and the colour icon's background
# Limits of schema v1.17
SHORT_NAME_MAX, FULL_NAME_MAX, SHORT_DESCRIPTION_MAX, FULL_DESCRIPTION_MAX = 30, 100, 80, 4000
COMMAND_TITLE_MAX, COMMAND_DESCRIPTION_MAX, COMMANDS_MAX = 32, 128, 10

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_HOST = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:[0-9]{1,5})?$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed date: the same input gives the same package, byte for byte


@dataclass(frozen=True)
class BotCommand:
    """One entry of the bot's command menu: what is sent when chosen (the title) and what it does."""

    title_en: str
    title_ja: str
    description_en: str
    description_ja: str


# Titles are words handlers/commands.py understands in each language (tests/unit/test_teams_package.py checks).
COMMANDS = (
    BotCommand("new", "申請", "Choose what to request", "申請の種類を選ぶ"),
    BotCommand("leave", "休暇", "Request leave (paid leave and more)", "休暇を申請する（有給休暇など）"),
    BotCommand("expense", "経費", "Claim an expense", "経費を精算する"),
    BotCommand("stamp", "押印", "Ask for a company seal (押印)", "押印を依頼する"),
    BotCommand("it", "IT", "Ask IT for help or equipment", "IT 部門に依頼する（機器・アカウントなど）"),
    BotCommand("status", "状況", "My requests and their status", "自分の申請の状況"),
    BotCommand("inbox", "承認", "What waits for my approval", "自分の承認待ち"),
    BotCommand("help", "ヘルプ", "How to use madoguchi", "madoguchi の使い方"),
)
# In a team's channel only: make it the channel of the IT queue (handlers/queue_channel.py).
TEAM_COMMANDS = (
    BotCommand("channel it", "チャンネル IT", "Post IT requests in this channel (for IT)",
               "このチャンネルを IT 依頼の受付にする（IT 担当者用）"),
)


def commands_for(scope: str) -> tuple[BotCommand, ...]:
    return COMMANDS + TEAM_COMMANDS if scope == "team" else COMMANDS

DESCRIPTION_EN = "Back-office requests and approvals: leave, expenses, seals, IT"
DESCRIPTION_JA = "社内の申請と承認の窓口：休暇・経費・押印・IT"
FULL_DESCRIPTION_EN = (
    "madoguchi (窓口, the service counter) lets employees file back-office requests such as leave, expense "
    "claims, company seals (押印) and IT requests from Teams, and lets managers and departments approve them "
    "with a button. It nudges approvers before deadlines and shows each person their requests and approvals.")
FULL_DESCRIPTION_JA = (
    "madoguchi（窓口）は、休暇・経費精算・押印・IT 依頼などの社内申請を Teams から行い、"
    "上長や担当部署がボタンで承認できるようにするボットです。期限が近づくと承認者にお知らせし、"
    "自分の申請と承認待ちをいつでも確認できます。")


class PackageError(ValueError):
    """Bad input for the package: the message is one line, in Japanese and English."""


# ------------------------------------------------------------------------------------------------ manifest


def _check(app_id: str, name: str, domain: str | None) -> None:
    if not _GUID.match(app_id):
        raise PackageError(f"--app-id {app_id!r} は GUID ではありません / is not a GUID (the bot's Microsoft App "
                           "ID, e.g. 00000000-0000-0000-0000-000000000000)")
    if not name.strip() or len(name) > SHORT_NAME_MAX:
        raise PackageError(f"--name {name!r}: 1〜{SHORT_NAME_MAX} 文字にしてください / must be 1 to "
                           f"{SHORT_NAME_MAX} characters (the short name Teams shows)")
    if domain is not None and not _HOST.match(domain):
        raise PackageError(f"--domain {domain!r} はホスト名ではありません / is not a host name (give e.g. "
                           "bot.example.com, without https:// or a path)")


def _developer(domain: str | None) -> dict[str, str]:
    site = f"https://{domain.removeprefix('*.') if domain else 'localhost'}"
    return {"name": "madoguchi", "websiteUrl": f"{site}/", "privacyUrl": f"{site}/privacy",
            "termsOfUseUrl": f"{site}/terms"}


def _app_version() -> str:
    try:
        return version("madoguchi")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0.1.0"


def build_manifest(app_id: str, name: str = "madoguchi", domain: str | None = None) -> dict[str, Any]:
    """manifest.json (English strings) for a bot whose Microsoft App ID is `app_id`."""
    _check(app_id, name, domain)
    app_id = app_id.lower()
    return {
        "$schema": SCHEMA_URL,
        "manifestVersion": MANIFEST_VERSION,
        "version": _app_version(),
        "id": app_id,
        "developer": _developer(domain),
        "name": {"short": name, "full": f"{name}: back-office requests"[:FULL_NAME_MAX]},
        "description": {"short": DESCRIPTION_EN, "full": FULL_DESCRIPTION_EN},
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#{:02X}{:02X}{:02X}".format(*ACCENT),
        "localizationInfo": {"defaultLanguageTag": "en-us",
                             "additionalLanguages": [{"languageTag": "ja-jp", "file": JA_FILE}]},
        "bots": [{
            "botId": app_id,
            "scopes": list(SCOPES),
            "isNotificationOnly": False,
            "supportsFiles": False,
            # one list per scope, as the schema advises
            "commandLists": [{"scopes": [scope], "commands": [{"title": c.title_en, "description": c.description_en}
                                                              for c in commands_for(scope)]}
                             for scope in SCOPES],
        }],
        "validDomains": [domain] if domain else [],
    }


def build_japanese(name: str = "madoguchi") -> dict[str, str]:
    """ja-jp.json: the Japanese of every string of manifest.json the localization schema lets us translate."""
    strings = {"$schema": LOCALIZATION_SCHEMA_URL, "name.short": name,
               "name.full": f"{name}（窓口）：社内申請と承認"[:FULL_NAME_MAX],
               "description.short": DESCRIPTION_JA, "description.full": FULL_DESCRIPTION_JA}
    for i, scope in enumerate(SCOPES):
        for j, c in enumerate(commands_for(scope)):
            strings[f"bots[0].commandLists[{i}].commands[{j}].title"] = c.title_ja
            strings[f"bots[0].commandLists[{i}].commands[{j}].description"] = c.description_ja
    return strings


# ------------------------------------------------------------------------------------------------ icons

Pixel = tuple[int, ...]


def png(width: int, height: int, pixel: Callable[[int, int], Pixel]) -> bytes:
    """A PNG of 8-bit RGB (3-tuples) or RGBA (4-tuples) pixels, unfiltered rows, one IDAT chunk."""
    channels = len(pixel(0, 0))
    colour_type = {3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in pixel(x, y)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))


def _in_window(x: int, y: int, size: int, margin: int, stroke: int) -> bool:
    """The mark: a window (窓) of four panes, its frame and cross `stroke` wide, `margin` from the edges."""
    low, high = margin, size - margin - 1
    if not (low <= x <= high and low <= y <= high):
        return False
    middle = size // 2
    on_frame = min(x - low, high - x, y - low, high - y) < stroke
    on_cross = abs(x - middle + 0.5) < stroke / 2 or abs(y - middle + 0.5) < stroke / 2
    return on_frame or on_cross


def color_icon() -> bytes:
    """192x192, opaque: a white window on the accent colour, its panes a lighter tint."""
    white, pane = (255, 255, 255), tuple(min(255, c + 60) for c in ACCENT)

    def pixel(x: int, y: int) -> Pixel:
        if _in_window(x, y, 192, 44, 10):
            return white
        return pane if 44 <= x <= 147 and 44 <= y <= 147 else ACCENT

    return png(192, 192, pixel)


def outline_icon() -> bytes:
    """32x32: the same window in white on a transparent background (Teams tints it)."""
    return png(32, 32, lambda x, y: (255, 255, 255, 255) if _in_window(x, y, 32, 4, 2) else (255, 255, 255, 0))


# ------------------------------------------------------------------------------------------------ the zip


def package_bytes(app_id: str, name: str = "madoguchi", domain: str | None = None) -> bytes:
    """The whole package, in memory (the same input gives the same bytes)."""
    files = {
        "manifest.json": _json(build_manifest(app_id, name, domain)),
        JA_FILE: _json(build_japanese(name)),
        "color.png": color_icon(),
        "outline.png": outline_icon(),
    }
    target = io.BytesIO()
    with ZipFile(target, "w") as archive:
        for filename in FILES:  # at the zip's root: Teams looks for them there
            info = ZipInfo(filename, date_time=_ZIP_TIME)
            info.compress_type = ZIP_DEFLATED
            archive.writestr(info, files[filename])
    return target.getvalue()


def write_package(out: Path, app_id: str, name: str = "madoguchi", domain: str | None = None) -> Path:
    """Write the package to `out` whole or not at all (a temporary file beside it, then renamed)."""
    data = package_bytes(app_id, name, domain)  # bad input raises here, before anything touches the disk
    if out.is_dir():
        raise PackageError(f"--out {out}: フォルダーです / is a directory (give a file name, e.g. {out / 'app.zip'})")
    try:
        handle, temporary = tempfile.mkstemp(prefix=".teams-package-", suffix=".zip", dir=out.parent)
    except OSError as exc:
        raise PackageError(f"--out {out}: 書き込めません / cannot be written ({exc.strerror})") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a package is for others to upload
        os.replace(temporary, out)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise PackageError(f"--out {out}: 書き込めません / cannot be written ({exc.strerror})") from None
    return out


def _json(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

