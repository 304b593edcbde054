"""`channel <type>` (`チャンネル <種類>`) typed in a Teams channel: make it the channel of that type's queue, where
its one shared card (Claim / Resolved) is posted. Typed anywhere else, or by someone who does not hold the queue,
it explains and changes nothing. (A Slack queue's channel is named in workflows.yaml instead.)"""

from __future__ import annotations

from config.i18n import LocalText
from config.policy import Policy
from handlers.commands import parse_command, prefix, type_words
from handlers.views import Message, Text, line
from workflow.queue_channels import Refused, Registered, types_with_channels

DONE = LocalText.of("このチャンネルを「{type}」の受付チャンネルにしました。新しい依頼はここに投稿され、{who}の誰かが"
                    "「担当する」を押して対応します。",
                    "This channel is now where “{type}” requests arrive. Each new one is posted here, and anyone of "
                    "{who} takes it with “Claim”.")
ONLY_IN_CHANNEL = LocalText.of("受付チャンネルを決めるには、そのチームのチャンネルで madoguchi をメンションして "
                               "`{example}` と入力してください（アプリをチームに追加しておいてください）。",
                               "To choose a queue's channel, mention madoguchi in that team channel and type "
                               "`{example}` there (add the app to the team first).")
NOT_HOLDER = LocalText.of("「{type}」の受付チャンネルを決められるのは、その担当者か管理者だけです。何も変更していません。",
                          "Only the people who handle “{type}” requests, or an admin, can choose its channel. "
                          "Nothing was changed.")
NO_QUEUE = LocalText.of("「{type}」には受付チャンネルを使う担当キューがありません（workflows.yaml のキューの段に "
                        "`channel:` がありません）。",
                        "“{type}” has no queue that posts to a channel (its queue step in workflows.yaml has no "
                        "`channel:`).")
NONE_AT_ALL = LocalText.of("受付チャンネルを使う申請の種類がありません（workflows.yaml のキューの段に `channel:` を"
                           "書くと使えます）。",
                           "No request type posts to a queue channel (give a queue step a `channel:` in "
                           "workflows.yaml).")
WHICH = LocalText.of("どの種類の受付チャンネルにしますか？ `{examples}` のように種類を続けて入力してください。",
                     "Which queue should post here? Type the request type after it, e.g. `{examples}`.")
UNKNOWN_TYPE = LocalText.of("「{text}」という申請の種類はありません。", "There is no request type “{text}”.")
HINT = LocalText.of("このチャンネルを受付チャンネルにするには `{example}` と入力してください。",
                    "To have a queue post its requests in this channel, type `{example}` here.")


def _said(text: str) -> Message:
    return line(text, markdown=True)  # the commands it quotes are `code`


def requested_type(policy: Policy, rest: str) -> tuple[str | None, bool]:
    """(the type named after `channel`, whether the words named one): ("it", True), (None, False) for nothing."""
    if not rest.strip():
        return None, False
    command = parse_command(rest, policy)
    return (command.type_key, True) if command.kind == "form" else (None, True)


def example(policy: Policy, locale: str, command_name: str) -> str:
    keys = types_with_channels(policy) or ["it"]
    ja, en = type_words(policy, keys[0]) if keys[0] in policy.types else ("IT", "it")
    word, kind = ("チャンネル", ja) if locale == "ja" else ("channel", en)
    return f"{prefix(command_name)}{word} {kind}"


def only_in_channel(policy: Policy, locale: str, command_name: str) -> Message:
    return _said(ONLY_IN_CHANNEL(locale).format(example=example(policy, locale, command_name)))


def channel_hint(policy: Policy, locale: str, command_name: str) -> Text | None:
    """A line for the welcome in a team channel, when some queue can post to one."""
    if not types_with_channels(policy):
        return None
    return Text(HINT(locale).format(example=example(policy, locale, command_name)))


def outcome_message(policy: Policy, outcome: Registered | Refused, locale: str, command_name: str,
                    rest: str) -> Message:
    title = policy.types[outcome.type_key].title(locale) if outcome.type_key in policy.types else ""
    match outcome:
        case Registered():
            holders = ", ".join(ref for s in outcome.steps for ref in s.approver_refs)
            who = holders.replace("role:", "") if locale != "ja" else holders.replace("role:", "役割 ")
            return _said(DONE(locale).format(type=title, who=who))
        case Refused(reason="not_holder"):
            return _said(NOT_HOLDER(locale).format(type=title))
        case Refused(reason="no_queue") if outcome.type_key:
            return _said(NO_QUEUE(locale).format(type=title))
        case Refused(reason="no_queue"):
            return _said(NONE_AT_ALL(locale))
        case Refused(reason="no_type"):
            return _said(UNKNOWN_TYPE(locale).format(text=rest.strip()[:100]) + " "
                         + WHICH(locale).format(examples=example(policy, locale, command_name)))
    return _said(WHICH(locale).format(examples=example(policy, locale, command_name)))
