"""What a person typed, understood: the slash command (Slack `/madoguchi ...`) or a Teams chat message.

`parse_command` turns free text into a `Command` (open the picker, open a form, my requests, my inbox, help);
`help_message`, `picker_message` and `unknown_message` are the neutral messages that answer it.
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

CommandKind = Literal["picker", "form", "status", "inbox", "help", "unknown"]
OPEN_FORM = "open_form"
BUTTONS_PER_ROW = 5
QUOTE_LIMIT = 100

# Words that name an action rather than a request type. They win over a type of the same name, so a policy
# cannot make `/madoguchi help` stop working.
_ACTION_WORDS: dict[str, CommandKind] = {
    "new": "picker", "申請": "picker",
    "status": "status", "状況": "status",
    "inbox": "inbox", "承認": "inbox",
    "help": "help", "ヘルプ": "help", "?": "help",
}
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
HELP_TIP = LocalText.of(
    "ヒント: `{example}` のように種類を続けて入力すると、そのフォームがすぐ開きます。英語でも入力できます（例: `{other}`）。",
    "Tip: type a request type after the command, e.g. `{example}`, to open its form at once. "
    "Japanese words work too (e.g. `{other}`).",
)
PICKER_QUESTION = LocalText.of("何を申請しますか？", "What would you like to request?")
UNKNOWN = LocalText.of("「{text}」は分かりませんでした。", "Sorry, I did not understand “{text}”.")

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


def _usage(command_name: str, pair: tuple[str, str], locale: str, meaning: str) -> str:
    first, second = _ordered(pair, locale)
    alias = f" (`{second}`)" if _key(second) != _key(first) else ""
    return f"• `{command_name} {first}`{alias} — {meaning}"


def _command_lines(command_name: str, locale: str) -> Iterator[str]:
    yield f"• `{command_name}` — {HELP_PICKER(locale)}"
    yield _usage(command_name, ("申請", "new"), locale, HELP_PICKER(locale))
    yield _usage(command_name, ("状況", "status"), locale, HELP_STATUS(locale))
    yield _usage(command_name, ("承認", "inbox"), locale, HELP_INBOX(locale))
    yield _usage(command_name, ("ヘルプ", "help"), locale, HELP_HELP(locale))


def _help_blocks(policy: Policy, locale: str, command_name: str) -> list[Block]:
    types = [_usage(command_name, type_words(policy, key), locale, spec.title(locale))
             for key, spec in policy.types.items()]
    example = _ordered(type_words(policy, next(iter(policy.types))), locale)
    tip = HELP_TIP(locale).format(example=f"{command_name} {example[0]}", other=f"{command_name} {example[1]}")
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


def unknown_message(text: str, policy: Policy, locale: str, command_name: str = "/madoguchi") -> Message:
    """Says the text was not understood, quoting it (cut, and as plain text: it is the person's, not markup),
    followed by the help."""
    quoted = normalize(text)
    if len(quoted) > QUOTE_LIMIT:
        quoted = quoted[: QUOTE_LIMIT - 1] + "…"
    sorry = UNKNOWN(locale).format(text=quoted)
    return Message(fallback=sorry, blocks=(Text(sorry, markdown=False), *_help_blocks(policy, locale, command_name)))
