"""What a person typed, understood: the slash command (Slack `/madoguchi ...`) or a Teams chat message.

`parse_command` turns free text into a `Command` (open the picker, open a form, my requests, my inbox, help,
my language); `help_message`, `picker_message`, `unknown_message` and the `language_*` messages answer it.
Request types come from the policy, so a company's own type (e.g. `ringi` / 稟議) is understood by its key
and by its titles with no code; the built-in Japanese words (休暇, 経費, 押印) apply only to types that exist.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from config.i18n import LocalText, normalize_locale
from config.policy import Policy
from handlers.views import Actions, Block, Button, Context, Header, Message, Text
from models.people import LocaleSource

CommandKind = Literal["picker", "form", "status", "inbox", "help", "language", "notify", "channel", "unknown"]
LanguageChoice = Literal["ja", "en", "auto"]
OPEN_FORM = "open_form"
SET_LANGUAGE = "set_language"  # a button choosing the language: its value is a LanguageChoice
BUTTONS_PER_ROW = 5
QUOTE_LIMIT = 100

# Words that name an action rather than a request type. They win over a type of the same name, so a policy
# cannot make `/madoguchi help` stop working.
_ACTION_WORDS: dict[str, CommandKind] = {
    "new": "picker", "申請": "picker",
    "status": "status", "状況": "status",
    "inbox": "inbox", "承認": "inbox",
    "help": "help", "ヘルプ": "help", "?": "help",
    "language": "language", "言語": "language",
    "notify": "notify", "通知": "notify",
    "channel": "channel", "チャンネル": "channel",
}
# What may follow `language` / `言語` (compared as _key does).
_LANGUAGE_WORDS: dict[str, LanguageChoice] = {
    "en": "en", "english": "en", "英語": "en",
    "ja": "ja", "japanese": "ja", "日本語": "ja",
    "auto": "auto", "automatic": "auto", "自動": "auto",
}
# How each platform is named to a person ("your Slack setting").
_PLATFORM_NAMES = {"slack": "Slack", "teams": "Teams", "playground": "Slack"}
# Short words for the shipped types, (ja, en); used only when the policy has that type.
_TYPE_WORDS: dict[str, tuple[str, str]] = {
    "leave": ("休暇", "leave"),
    "expense": ("経費", "expense"),
    "stamp": ("押印", "stamp"),
    "it": ("IT", "it"),
}

# Every sentence this module shows, in both languages.
HELP_TITLE = LocalText.of("madoguchi の使い方", "How to use madoguchi")
HELP_COMMANDS = LocalText.of("コマンド", "Commands")
HELP_TYPES = LocalText.of("申請の種類（フォームを直接開きます）", "Request types (open the form directly)")
HELP_PICKER = LocalText.of("申請の種類を選ぶ", "choose what to request")
HELP_STATUS = LocalText.of("自分の申請の状況", "my requests and their status")
HELP_INBOX = LocalText.of("自分の承認待ち", "what waits for my approval")
HELP_HELP = LocalText.of("この説明", "this help")
HELP_NOTIFY = LocalText.of("通知先を選ぶ（Slack / Teams / 自動）", "where my messages go (slack / teams / auto)")
HELP_LANGUAGE = LocalText.of("表示言語を変える（英語 / 日本語 / 自動）", "change my language (en / ja / auto)")
HELP_TIP = LocalText.of(
    "ヒント: `{example}` のように種類を続けて入力すると、そのフォームがすぐ開きます。英語でも入力できます（例: `{other}`）。",
    "Tip: type a request type after the command, e.g. `{example}`, to open its form at once. "
    "Japanese words work too (e.g. `{other}`).",
)
PICKER_QUESTION = LocalText.of("何を申請しますか？", "What would you like to request?")
UNKNOWN = LocalText.of("「{text}」は分かりませんでした。", "Sorry, I did not understand “{text}”.")
LANGUAGE_NAMES: dict[str, LocalText] = {"ja": LocalText.of("日本語", "Japanese"),
                                        "en": LocalText.of("英語", "English")}
LANGUAGE_SOURCES: dict[LocaleSource, LocalText] = {
    "choice": LocalText.of("あなたが選んだ言語", "your choice"),
    "platform": LocalText.of("{platform} の言語設定", "from your {platform} language setting"),
    "org": LocalText.of("会社の設定", "the company's setting"),
}
LANGUAGE_NOW = LocalText.of("表示言語: {language}（{source}）", "Language: {language} ({source})")
LANGUAGE_HOW = LocalText.of(
    "変更するには `{cmd}言語 英語` または `{cmd}言語 日本語`、"
    "自動（{platform} の言語設定、なければ会社の設定）に戻すには `{cmd}言語 自動` と入力してください。",
    "To change it, type `{cmd}language en` or `{cmd}language ja`; "
    "`{cmd}language auto` follows your {platform} language setting again (else the company's).")
LANGUAGE_SET = LocalText.of("表示言語を{language}にしました。", "Your language is now {language}.")
LANGUAGE_AUTO = LocalText.of("表示言語を自動にしました。今は{language}です（{source}）。",
                             "Your language is automatic again: {language} for now ({source}).")
LANGUAGE_UNKNOWN = LocalText.of("「{text}」は選べる言語ではありません。", "“{text}” is not a language I can show.")
LANGUAGE_CHOICES = LocalText.of(
    "選べるのは 英語（`{cmd}言語 英語`）、日本語（`{cmd}言語 日本語`）、"
    "自動（`{cmd}言語 自動`: {platform} の言語設定に従う）です。",
    "The choices are English (`{cmd}language en`), Japanese (`{cmd}language ja`) and automatic "
    "(`{cmd}language auto`: follow your {platform} language setting).")
LANGUAGE_OTHER = LocalText.of("English", "日本語")  # the button that switches: named in the language it gives
LANGUAGE_AUTO_BUTTON = LocalText.of("自動（{platform} の設定）", "Automatic ({platform} setting)")

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Command:
    """A person's command: what to do, for which request type, and any words after it (kept for later)."""

    kind: CommandKind
    type_key: str | None = None
    rest: str = ""
    text: str = ""


# ------------------------------------------------------------------------------------------------ parsing


def normalize(text: str) -> str:
    """NFKC (full-width letters and the ideographic space become ASCII), runs of spaces collapsed, stripped."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _key(phrase: str) -> str:
    """How a phrase is compared: normalized and case-folded (`ＬＥＡＶＥ`, `Leave` and `leave` are one word)."""
    return normalize(phrase).casefold()


def parse_command(text: str, policy: Policy) -> Command:
    """Understand the text after the slash command (or a chat message). Never raises."""
    shown = normalize(text)
    if not shown:
        return Command(kind="picker", text=shown)
    words = shown.split(" ")
    vocabulary = _vocabulary(policy)
    # Longest phrase first, so a multi-word title ("Leave request") beats its first word.
    for n in range(min(len(words), _longest(vocabulary)), 0, -1):
        found = vocabulary.get(_key(" ".join(words[:n])))
        if found is not None:
            kind, type_key = found
            return Command(kind=kind, type_key=type_key, rest=" ".join(words[n:]), text=shown)
    return Command(kind="unknown", text=shown)


def language_choice(rest: str) -> LanguageChoice | None:
    """The language named after `language` / `言語` (`en`, `English`, `英語`, `日本語`, `auto`, `自動`, ...), or None
    when the words name none."""
    return _LANGUAGE_WORDS.get(_key(rest))


def _vocabulary(policy: Policy) -> dict[str, tuple[CommandKind, str | None]]:
    """Every phrase understood, as a compared key -> (kind, type key). Earlier entries win over later ones."""
    found: dict[str, tuple[CommandKind, str | None]] = {}
    entries: list[tuple[str, CommandKind, str | None]] = [(w, k, None) for w, k in _ACTION_WORDS.items()]
    for key, spec in policy.types.items():
        entries += [(key, "form", key), (spec.title.ja, "form", key), (spec.title.en, "form", key)]
    for key, (ja, en) in _TYPE_WORDS.items():
        if key in policy.types:
            entries += [(ja, "form", key), (en, "form", key)]
    for phrase, kind, type_key in entries:
        found.setdefault(_key(phrase), (kind, type_key))
    return found


def _longest(vocabulary: dict[str, tuple[CommandKind, str | None]]) -> int:
    return max(len(phrase.split(" ")) for phrase in vocabulary)


# ------------------------------------------------------------------------------------------------ messages


def type_words(policy: Policy, type_key: str) -> tuple[str, str]:
    """The (Japanese, English) words that open a type's form: the short word if shipped, else title and key."""
    if type_key in _TYPE_WORDS:
        return _TYPE_WORDS[type_key]
    return policy.types[type_key].title.ja, type_key


def _ordered(pair: tuple[str, str], locale: str) -> tuple[str, str]:
    """The reader's language first."""
    ja, en = pair
    return (ja, en) if normalize_locale(locale) == "ja" else (en, ja)


SLASH_COMMAND = "/madoguchi"


def command_name(platform: str | None, slash_command: str = SLASH_COMMAND) -> str:
    """How commands are typed on a platform: after the slash command on Slack (and where the platform is not
    known yet), as plain words to the bot on Teams."""
    return "" if platform == "teams" else slash_command


def prefix(command_name: str) -> str:
    """What comes before a subcommand: `/madoguchi ` on Slack; nothing where people type to the bot itself
    (Teams: the command name is empty)."""
    return f"{command_name} " if command_name else ""


def _usage(command_name: str, pair: tuple[str, str], locale: str, meaning: str) -> str:
    first, second = _ordered(pair, locale)
    alias = f" (`{second}`)" if _key(second) != _key(first) else ""
    return f"• `{prefix(command_name)}{first}`{alias} — {meaning}"


def _command_lines(command_name: str, locale: str) -> Iterator[str]:
    if command_name:  # the bare command opens the picker (on Teams the `申請` / `new` line says it)
        yield f"• `{command_name}` — {HELP_PICKER(locale)}"
    yield _usage(command_name, ("申請", "new"), locale, HELP_PICKER(locale))
    yield _usage(command_name, ("状況", "status"), locale, HELP_STATUS(locale))
    yield _usage(command_name, ("承認", "inbox"), locale, HELP_INBOX(locale))
    yield _usage(command_name, ("言語 英語", "language en"), locale, HELP_LANGUAGE(locale))
    yield _usage(command_name, ("通知 Teams", "notify teams"), locale, HELP_NOTIFY(locale))
    yield _usage(command_name, ("ヘルプ", "help"), locale, HELP_HELP(locale))


def _help_blocks(policy: Policy, locale: str, command_name: str) -> list[Block]:
    types = [_usage(command_name, type_words(policy, key), locale, spec.title(locale))
             for key, spec in policy.types.items()]
    example = _ordered(type_words(policy, next(iter(policy.types))), locale)
    tip = HELP_TIP(locale).format(example=f"{prefix(command_name)}{example[0]}",
                                  other=f"{prefix(command_name)}{example[1]}")
    return [
        Header(HELP_TITLE(locale)),
        Text("\n".join([f"*{HELP_COMMANDS(locale)}*", *_command_lines(command_name, locale)])),
        Text("\n".join([f"*{HELP_TYPES(locale)}*", *types])),
        Context(tip),
    ]


def help_message(policy: Policy, locale: str, command_name: str = "/madoguchi") -> Message:
    """Every subcommand in the reader's language (the other language's word beside it), one line per type."""
    return Message(fallback=HELP_TITLE(locale), blocks=tuple(_help_blocks(policy, locale, command_name)))


def picker_message(policy: Policy, locale: str) -> Message:
    """"What would you like to request?" with one button per type, in rows both platforms can show."""
    buttons = [Button(label=spec.title(locale), action=OPEN_FORM, value=key) for key, spec in policy.types.items()]
    rows: list[Block] = [Actions(tuple(buttons[i : i + BUTTONS_PER_ROW]))
                         for i in range(0, len(buttons), BUTTONS_PER_ROW)]
    described = [f"*{spec.title(locale)}* — {spec.description(locale)}"
                 for spec in policy.types.values() if spec.description is not None]
    notes: list[Block] = [Context("\n".join(described))] if described else []
    question = PICKER_QUESTION(locale)
    return Message(fallback=question, blocks=(Text(question, markdown=False), *rows, *notes))


def _quoted(text: str) -> str:
    """A person's words to quote back: normalized and cut."""
    quoted = normalize(text)
    return quoted[: QUOTE_LIMIT - 1] + "…" if len(quoted) > QUOTE_LIMIT else quoted


def unknown_message(text: str, policy: Policy, locale: str, command_name: str = "/madoguchi") -> Message:
    """Says the text was not understood, quoting it (cut, and as plain text: it is the person's, not markup),
    followed by the help."""
    sorry = UNKNOWN(locale).format(text=_quoted(text))
    return Message(fallback=sorry, blocks=(Text(sorry, markdown=False), *_help_blocks(policy, locale, command_name)))


# ------------------------------------------------------------------------------------------------ language


def platform_name(platform: str) -> str:
    """A platform as a person calls it: "Slack", "Teams"."""
    return _PLATFORM_NAMES.get(platform, platform)


def language_line(locale: str, source: LocaleSource, platform: str) -> str:
    """"Language: English (from your Slack language setting)", in that language."""
    lang = normalize_locale(locale)
    where = LANGUAGE_SOURCES[source](lang).format(platform=platform_name(platform))
    return LANGUAGE_NOW(lang).format(language=LANGUAGE_NAMES[lang](lang), source=where)


def language_message(locale: str, source: LocaleSource, platform: str, command_name: str = "/madoguchi") -> Message:
    """The answer to `language` alone: the current language, where it comes from, how to change it."""
    lang = normalize_locale(locale)
    now = language_line(lang, source, platform)
    how = LANGUAGE_HOW(lang).format(cmd=prefix(command_name), platform=platform_name(platform))
    return Message(now, (Text(now, markdown=False), Context(how)))


def language_set_message(locale: str, source: LocaleSource, platform: str, *, automatic: bool) -> Message:
    """The confirmation of a change, in the language now in force."""
    lang = normalize_locale(locale)
    name = LANGUAGE_NAMES[lang](lang)
    if automatic:
        where = LANGUAGE_SOURCES[source](lang).format(platform=platform_name(platform))
        said = LANGUAGE_AUTO(lang).format(language=name, source=where)
    else:
        said = LANGUAGE_SET(lang).format(language=name)
    return Message(said, (Text(said, markdown=False),))


def language_unknown_message(text: str, locale: str, platform: str, command_name: str = "/madoguchi") -> Message:
    """An argument that names no language: the choices, in the person's current language."""
    lang = normalize_locale(locale)
    sorry = LANGUAGE_UNKNOWN(lang).format(text=_quoted(text))
    choices = LANGUAGE_CHOICES(lang).format(cmd=prefix(command_name), platform=platform_name(platform))
    return Message(sorry, (Text(sorry, markdown=False), Text(choices)))


def language_buttons(locale: str, source: LocaleSource, platform: str) -> Actions:
    """Switch to the other language ("English" while Japanese is shown, "日本語" while English is); once a
    person has chosen, also back to automatic."""
    lang = normalize_locale(locale)
    buttons = [Button(label=LANGUAGE_OTHER(lang), action=SET_LANGUAGE, value="en" if lang == "ja" else "ja")]
    if source == "choice":
        buttons.append(Button(label=LANGUAGE_AUTO_BUTTON(lang).format(platform=platform_name(platform)),
                              action=SET_LANGUAGE, value="auto"))
    return Actions(tuple(buttons))
