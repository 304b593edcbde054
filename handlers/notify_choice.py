"""Where my messages go: `/madoguchi notify slack|teams|auto` (`通知 Slack|Teams|自動`).

A person who uses both Slack and Teams gets approver cards, reminders and broadcasts on the platform they last
used, unless they choose one here (an admin can too: `madoguchi people notify`). The choice is kept where it can
reach them; on a platform where the bot cannot message them yet (Teams without the app) the reply says so.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from config.i18n import LocalText
from handlers.views import Message, Text

NotifyChoice = Literal["slack", "teams", "auto"]
_WORDS: dict[str, NotifyChoice] = {
    "slack": "slack", "スラック": "slack",
    "teams": "teams", "チームズ": "teams", "microsoft teams": "teams",
    "auto": "auto", "automatic": "auto", "自動": "auto",
}
NAMES = {"slack": "Slack", "teams": "Teams"}

NOW_CHOSEN = LocalText.of("通知先: {platform}（ご自身で選択）", "Your messages go to {platform} (your choice).")
NOW_AUTO = LocalText.of("通知先: 自動（最後に使ったところ。今は {platform}）",
                        "Your messages go where you last used madoguchi (now {platform}).")
NOW_NOWHERE = LocalText.of("通知先: 自動（最後に使ったところ）", "Your messages go where you last used madoguchi.")
HOW = LocalText.of("変えるには `{cmd}通知 Slack`、`{cmd}通知 Teams`、`{cmd}通知 自動` と入力してください。",
                   "To change it, type `{cmd}notify slack`, `{cmd}notify teams` or `{cmd}notify auto`.")
SET = LocalText.of("これからは {platform} にお知らせします。", "From now on your messages go to {platform}.")
SET_AUTO = LocalText.of("通知先を自動（最後に使ったところ）にしました。",
                        "Your messages now go wherever you last used madoguchi.")
NOT_YET = LocalText.of("ただし、{platform} ではまだ madoguchi からお送りできません（アプリを追加するか、一度話しかけて"
                       "ください）。それまでは今までどおりお送りします。",
                       "madoguchi cannot reach you on {platform} yet (add the app, or write to it once); until then "
                       "your messages go where they went before.")
UNKNOWN = LocalText.of("「{text}」は選べる通知先ではありません。Slack、Teams、自動 から選んでください。",
                       "“{text}” is not a place I can send to: choose slack, teams or auto.")


def notify_choice(rest: str) -> NotifyChoice | None:
    """The platform named after `notify` / `通知`, or None when the words name none."""
    return _WORDS.get(unicodedata.normalize("NFKC", rest).strip().casefold())


def current_message(chosen: str | None, reached: str | None, locale: str, command_name: str) -> Message:
    """What `notify` alone answers: where messages go now and how to change it."""
    if chosen:
        now = NOW_CHOSEN(locale).format(platform=NAMES.get(chosen, chosen))
    elif reached:
        now = NOW_AUTO(locale).format(platform=NAMES.get(reached, reached))
    else:
        now = NOW_NOWHERE(locale)
    return _message(now, HOW(locale).format(cmd=f"{command_name} " if command_name else ""), markdown=True)


def set_message(choice: NotifyChoice, reachable: bool, locale: str) -> Message:
    """The answer to a choice, in the person's language; a platform that cannot reach them yet is said so."""
    if choice == "auto":
        return _message(SET_AUTO(locale))
    name = NAMES[choice]
    said = [SET(locale).format(platform=name)]
    if not reachable:
        said.append(NOT_YET(locale).format(platform=name))
    return _message(*said)


def unknown_message(text: str, locale: str) -> Message:
    return _message(UNKNOWN(locale).format(text=text))


def _message(*lines: str, markdown: bool = False) -> Message:
    """Plain text unless asked (a person's own words are never read as markup)."""
    return Message(lines[0], tuple(Text(line, markdown=markdown) for line in lines))
