"""Neutral views (handlers.views) rendered as Microsoft Teams Adaptive Cards 1.5, and card actions read back.

The Teams counterpart of bot/slack/blockkit.py, with the same public shape: `render_message`, `render_form`
and `render_home` give the card JSON an activity attachment carries (contentType
application/vnd.microsoft.card.adaptive); `read_action` says what an `adaptiveCard/action` invoke's
`action.data` asks for (a button click, a form submitted, a form closed); `read_submission` turns the same
data into neutral values keyed by `Input.name`, exactly as the Slack renderer's read_submission does; and
`errors_card` is the form again with each error under its input and what the person typed kept.

How the vocabulary maps, and why where it is not one to one:
- Buttons are `Action.Execute` (Universal Actions): `verb` is the Button's action and `data` carries action
  and value under one key (`madoguchi`), so a click maps back to the same neutral ClickEvent Slack makes.
  Teams merges the card's input values into that same `data` object, hence one namespaced key. A link button
  is `Action.OpenUrl`. Styles: primary -> positive, danger -> destructive. Rows hold at most 5 actions (the
  library's host default; more and it reports TooManyActions), so a longer row becomes several.
- A Button with a Confirm: Adaptive Cards have no confirm dialog, so the button is an `Action.ShowCard` whose
  card holds the dialog's title and text and the real Action.Execute (labelled with the confirm word). Nothing
  is sent until that second press, which is what the dialog guarantees on Slack. The deny word has no action
  to put it on: pressing the button again folds the panel away, which is what deny does.
- Forms: the title is the first (heading) line; each Input is an Input.* element with `label`, `isRequired`
  and `errorMessage` (a required input always has one: the library asks for it, and Teams shows it when its
  own client-side check stops a submit). Text and multiline are Input.Text, number and money Input.Number
  (money: min 0), date Input.Date, a date range two Input.Date (`name.start`, `name.end`), select
  Input.ChoiceSet (typeahead "filtered" style for long lists), file an Input.Text of style url. A hint is a
  small line under its input. `dispatch` (tell the handler on change) has no Adaptive Card equivalent; the
  handlers never rely on it (a field shown only for some choices is never required by the platform).
- User pickers: Teams' people picker (`choices.data` of type Data.Query, dataset graph.microsoft.com/users)
  is a 1.6 property in Microsoft's adaptivecards library (3.0.6 reports "supported in version 1.6" on a 1.5
  card), so a user input is an Input.Text of style email: the reader types a colleague's address.
- The submit button is an Action.Execute (verb: the Form's callback) whose data carries the callback, the
  state (what Slack keeps in callback_id and private_metadata) and the form's inputs with their kinds, so a
  submission is self-describing: dates come back as dates, an input left empty as None, and card data for
  a field the form does not have is ignored. Close is an Action.Execute that sends no inputs.
- Errors: Adaptive Cards 1.5 show `errorMessage` only after a client-side check fails, so an error also gets
  a visible TextBlock (color attention) right under its input.
- Text: views' markdown is Slack's mrkdwn; a TextBlock takes a Markdown subset, so *bold* becomes **bold**,
  <url|label> becomes [label](url), Slack's escapes (&amp; &lt; &gt;) are undone, and a line break becomes a
  paragraph break (Markdown joins single lines). Plain text is a RichTextBlock TextRun, which Teams shows
  literally (no Markdown). Fields are a FactSet (label: value side by side), ten pairs to a set.
  A Divider is the `separator` line above the element after it.

Size: Teams refuses a message over 28 KB. Every text is first cut to Slack-like per-element limits ("…" at
the end); a card still over `CARD_BUDGET` is rendered again with all text limits halved, then quartered...;
if that is not enough, the tail of the body is folded into one "…ほか N 件" / "… N more" line. Nothing is
dropped silently. The size is measured as `json.dumps` writes it by default (non-ASCII escaped: six bytes a
kana), the largest any serializer on the way makes it, so the card fits however the edge sends it.
Identifiers (verbs, input names) and the form state are never cut: a cut one would route a click or a
submission to the wrong place, so they raise ValueError instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from config.i18n import normalize_locale
from handlers.views import (
    Actions,
    Block,
    Button,
    Confirm,
    Context,
    Divider,
    Fields,
    Form,
    Header,
    Home,
    Input,
    Message,
    Option,
    Text,
)

JSON = dict[str, Any]

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
CARD_BYTES = 28 * 1024  # Teams refuses a message bigger than this
# What a card may take of it: the activity around the attachment (ids, serviceUrl, conversation) needs the rest.
CARD_BUDGET = 26 * 1024

# --- per-element limits (characters), before the size budget tightens them ---------------------------------
HEADER_TEXT = 150
TEXT = 3000
CONTEXT_TEXT = 3000
FACT_TITLE = 150
FACT_VALUE = 2000
FACTS_PER_SET = 10
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
ACTIONS_PER_SET = 5  # the adaptivecards library's default host config; past it, TooManyActions
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
LABEL = 2000
HINT = 2000
ERROR = 2000
PLACEHOLDER = 150
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTIONS_PER_SELECT = 1000  # a budget, not a platform cap: long lists are searchable ("filtered")
FILTERED_FROM = 12  # from this many options a select is a typeahead
FALLBACK_TEXT = 1000
STATE = 3000  # the same as Slack's private_metadata, so a handler's state fits both
IDENTIFIER = 255
MIN_TEXT = 40  # however tight the budget, a text keeps this much
SCALES = (1.0, 0.5, 0.25, 0.125, 0.0625)

DATA_KEY = "madoguchi"  # our part of an Action.Execute's data; Teams merges the input values beside it
ELLIPSIS = "…"
EMPTY = "—"  # an empty TextBlock shows nothing and says nothing: a dash keeps the element visible
RANGE_PARTS = ("start", "end")

_WORDS: dict[str, dict[str, str]] = {
    "ja": {"start": "（開始）", "end": "（終了）", "more": "…ほか {n} 件", "required": "入力してください"},
    "en": {"start": " (Start)", "end": " (End)", "more": "… {n} more", "required": "Please fill this in."},
}

_STYLES = {"primary": "positive", "danger": "destructive"}
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_URL_UNSAFE = str.maketrans({" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E"})
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


# ------------------------------------------------------------------------------------------------ surfaces


def render_message(m: Message, locale: str = "ja") -> JSON:
    """The Adaptive Card of a chat message (a DM, a channel post, an updated card)."""
    words = _words(locale)
    blocks = m.blocks or (Text(m.fallback, markdown=False),)

    def card(r: _Renderer, body: list[JSON]) -> JSON:
        rendered = _card(body, fallback=r.cut(_visible(m.fallback), FALLBACK_TEXT))
        if m.refresh is not None:
            rendered["refresh"] = _refresh(m.refresh)
        return rendered

    return _fitted(lambda r: r.body(blocks), card, words)


def _refresh(button: Button) -> JSON:
    """Universal Actions' refresh: Teams sends this Action.Execute by itself when the card is shown, and puts the
    card we answer with in its place (a copy that missed an update shows the current state). In a personal chat
    no `userIds` are needed; in a group chat only the users listed (at most 60) would refresh automatically."""
    data = {"kind": "click", "action": button.action, "value": truncate(button.value, BUTTON_VALUE)}
    return {"action": {"type": "Action.Execute", "verb": _identifier(button.action, "action"),
                       "data": {DATA_KEY: data}}}


def render_form(f: Form, locale: str = "ja") -> JSON:
    """A form as a card: its title, its inputs, and Submit / Close as Action.Execute carrying `Form.callback`
    and `Form.state` (and what kind each input is, for `read_submission`)."""
    return _render_form(f, locale, None, [])


def render_home(h: Home, locale: str = "ja") -> JSON:
    """A person's home (what waits for them, their requests...) as one card."""
    blocks = h.blocks or (Context(EMPTY),)
    return _fitted(lambda r: r.body(blocks), lambda r, body: _card(body), _words(locale))


def errors_card(f: Form, errors: Mapping[str, str], values: Mapping[str, Any] | None = None,
                locale: str = "ja") -> JSON:
    """The form again with `errors` ({Input.name: message}) under their inputs and the person's `values`
    (what `read_submission` gave) in them, so nothing typed is lost.

    A date range's `name.start` / `name.end` land on the range; a name with no input of its own (a whole-form
    error) is shown at the top of the form, under the title.
    """
    placed, unplaced = _placed_errors(f, errors)
    blocks = tuple(replace(b, error=placed[b.name]) if isinstance(b, Input) and b.name in placed else b
                   for b in f.blocks)
    problems = [_FormProblem("\n".join(unplaced))] if unplaced else []
    typed = _typed(f, values) if values is not None else None
    return _render_form(replace(f, blocks=blocks), locale, typed, problems)


def card_size(card: JSON) -> int:
    """The card's size as Teams may receive it: json.dumps' default output, non-ASCII escaped (the largest)."""
    return len(json.dumps(card).encode())


def _render_form(f: Form, locale: str, typed: Mapping[str, Any] | None, problems: list[_FormProblem]) -> JSON:
    if len(f.state) > STATE:
        raise ValueError(f"form state is {len(f.state)} characters; a card keeps at most {STATE}")
    _identifier(f.callback, "callback")
    for block in f.blocks:
        if isinstance(block, Input) and block.name == DATA_KEY:
            raise ValueError(f"an input may not be named {DATA_KEY!r}: the card's action data uses that key")
    words = _words(f.locale or locale)  # the person's own language (their choice) over the platform's
    blocks: tuple[Block | _FormProblem, ...] = (Header(f.title), *problems, *(f.blocks or (Context(EMPTY),)))

    def card(r: _Renderer, body: list[JSON]) -> JSON:
        shown = _input_ids(body)
        inputs = {i.name: i.kind for i in f.blocks if isinstance(i, Input) and _ids_of(i) & shown}
        return _card(body, actions=_form_actions(f, r, inputs))

    return _fitted(lambda r: r.body(blocks), card, words, typed)


def _card(body: list[JSON], *, actions: list[JSON] | None = None, fallback: str | None = None) -> JSON:
    card: JSON = {"$schema": SCHEMA, "type": "AdaptiveCard", "version": VERSION, "body": body}
    if actions:
        card["actions"] = actions
    if fallback:
        card["fallbackText"] = fallback
    return card


def _form_actions(f: Form, r: _Renderer, inputs: Mapping[str, str]) -> list[JSON]:
    submit = {"kind": "submit", "callback": f.callback, "state": f.state, "inputs": dict(inputs)}
    close = {"kind": "close", "callback": f.callback, "state": f.state}
    return [
        {"type": "Action.Execute", "title": r.cut(_visible(f.submit), BUTTON_TEXT), "verb": f.callback,
         "style": "positive", "data": {DATA_KEY: submit}},
        {"type": "Action.Execute", "title": r.cut(_visible(f.close), BUTTON_TEXT), "verb": f.callback,
         "associatedInputs": "none", "data": {DATA_KEY: close}},
    ]


def _fitted(body_of: Callable[[_Renderer], list[JSON]], card_of: Callable[[_Renderer, list[JSON]], JSON],
            words: Mapping[str, str], typed: Mapping[str, Any] | None = None) -> JSON:
    """The card at the loosest text limits that fit the budget; failing that, the tightest with the tail of
    its body folded into a "… N more" line (as few elements folded as possible)."""
    for scale in SCALES:
        r = _Renderer(words, scale, typed)
        body = body_of(r)
        card = card_of(r, body)
        if card_size(card) <= CARD_BUDGET:
            return card

    def folded(keep: int) -> JSON:
        more = r.context(words["more"].format(n=len(body) - keep))
        return card_of(r, [*body[:keep], more])

    low, high = 0, len(body) - 1  # the most elements that fit: folded(low) is assumed to fit
    while low < high:
        middle = (low + high + 1) // 2
        if card_size(folded(middle)) <= CARD_BUDGET:
            low = middle
        else:
            high = middle - 1
    return folded(low)


def _words(locale: str) -> Mapping[str, str]:
    return _WORDS[normalize_locale(locale)]


# ------------------------------------------------------------------------------------------------ text


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def mrkdwn_to_markdown(text: str) -> str:
    """Slack mrkdwn (what views' markdown Text is) as the Markdown subset a TextBlock renders."""
    out: list[str] = []
    last = 0
    for match in _LINK.finditer(text):
        out.append(_inline(text[last:match.start()]))
        out.append(_link(match[1], match[2]))
        last = match.end()
    out.append(_inline(text[last:]))
    # Markdown joins single lines into one paragraph; mrkdwn keeps them apart.
    return re.sub(r"\n+", "\n\n", "".join(out))


def _inline(text: str) -> str:
    return _unescape(_BOLD.sub(r"**\1**", text))


def _link(target: str, label: str | None) -> str:
    if target.startswith(("http://", "https://", "mailto:")):
        shown = _unescape(label) if label else _unescape(target)
        return f"[{shown.replace('[', '(').replace(']', ')')}]({_url(_unescape(target))})"
    if target.startswith(("@", "#")):  # a Slack mention or channel: its name if given, else the id
        return target[0] + _unescape(label or target[1:])
    if target.startswith("!"):  # <!channel>, <!here>
        return "@" + _unescape(label or target[1:])
    return _unescape(label or target)


def _url(url: str) -> str:
    # A Markdown link target ends at a space or an unbalanced parenthesis; these are safe percent-encoded.
    return url.translate(_URL_UNSAFE)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def truncate_markdown(text: str, limit: int) -> str:
    """Like `truncate`, but never leaves half a [label](url) link or a lone ** before the "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if head.rfind("[") > head.rfind(")"):  # inside a [label](url): a cut link would show raw markup
        head = head[: head.rfind("[")]
    if head.count("**") % 2:
        head = head[: head.rfind("**")]
    return head + ELLIPSIS


def _visible(text: str) -> str:
    return text if text.strip() else EMPTY


def _identifier(value: str, what: str) -> str:
    if not value or len(value) > IDENTIFIER:
        raise ValueError(f"{what} {value[:40]!r} must be 1 to {IDENTIFIER} characters for a card")
    return value


# ------------------------------------------------------------------------------------------------ the body


@dataclass(frozen=True)
class _FormProblem:
    """A whole-form error (one under no input), shown at the top of the form in the attention colour."""

    text: str


@dataclass(frozen=True)
class _Renderer:
    """Renders blocks at one text scale. `typed` holds the values a person submitted, by element id; they
    take the place of the inputs' own prefills (a form shown again with its errors)."""

    words: Mapping[str, str]
    scale: float = 1.0
    typed: Mapping[str, Any] | None = None

    def cut(self, text: str, limit: int) -> str:
        return truncate(text, self.limit(limit))

    def limit(self, limit: int) -> int:
        return max(min(limit, MIN_TEXT), int(limit * self.scale))

    def body(self, blocks: Iterable[Block | _FormProblem]) -> list[JSON]:
        """The card body; a Divider becomes the separator line above whatever follows it."""
        body: list[JSON] = []
        separate = False
        for block in blocks:
            if isinstance(block, Divider):
                separate = True
                continue
            rendered = self.block(block)
            if separate and rendered:
                rendered[0] = {**rendered[0], "separator": True, "spacing": "medium"}
                separate = False
            body += rendered
        return body

    def block(self, block: Block | _FormProblem) -> list[JSON]:
        match block:
            case Header():
                return [{"type": "TextBlock", "text": self.cut(_visible(block.text), HEADER_TEXT),
                         "style": "heading", "size": "large", "weight": "bolder", "wrap": True}]
            case Text():
                return [self.text(block.text, TEXT) if block.markdown else self.plain(block.text, TEXT)]
            case Fields():
                return self.facts(block)
            case Context():
                return [self.context(block.text)]
            case Actions():
                return self.actions(block)
            case Input():
                return self.inputs(block)
            case _FormProblem():
                return [self.attention(block.text)]
        raise TypeError(f"not a neutral block: {block!r}")

    # --- display

    def text(self, text: str, limit: int, **extra: Any) -> JSON:
        shown = truncate_markdown(mrkdwn_to_markdown(_visible(text)), self.limit(limit))
        return {"type": "TextBlock", "text": shown, "wrap": True, **extra}

    def plain(self, text: str, limit: int) -> JSON:
        # A TextRun is never read as Markdown: plain text stays exactly what the handler wrote.
        return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": self.cut(_visible(text), limit)}]}

    def context(self, text: str, limit: int = CONTEXT_TEXT) -> JSON:
        return self.text(text, limit, size="small", isSubtle=True, spacing="small")

    def attention(self, text: str) -> JSON:
        return {"type": "TextBlock", "text": self.cut(f"⚠ {text}", ERROR), "color": "attention",
                "size": "small", "wrap": True, "spacing": "small"}

    def facts(self, block: Fields) -> list[JSON]:
        facts = [{"title": self.cut(label.strip() or EMPTY, FACT_TITLE), "value": self.cut(_visible(value), FACT_VALUE)}
                 for label, value in block.pairs]
        if not facts:
            return [self.context(EMPTY)]
        return [{"type": "FactSet", "facts": facts[i: i + FACTS_PER_SET]} for i in range(0, len(facts), FACTS_PER_SET)]

    def actions(self, block: Actions) -> list[JSON]:
        rows = [block.buttons[i: i + ACTIONS_PER_SET] for i in range(0, len(block.buttons), ACTIONS_PER_SET)]
        return [{"type": "ActionSet", "actions": [self.button(b) for b in row]} for row in rows]

    def button(self, button: Button) -> JSON:
        title = self.cut(_visible(button.label), BUTTON_TEXT)
        if button.url:
            action: JSON = {"type": "Action.OpenUrl", "title": title, "url": truncate(button.url, BUTTON_URL)}
        else:
            action = self.execute(button, title)
            if button.confirm is not None:
                action = self.confirm(button, button.confirm, title, action)
        if button.style in _STYLES:
            action["style"] = _STYLES[button.style]
        return action

    def execute(self, button: Button, title: str) -> JSON:
        data = {"kind": "click", "action": button.action, "value": truncate(button.value, BUTTON_VALUE)}
        return {"type": "Action.Execute", "title": title, "verb": _identifier(button.action, "action"),
                "data": {DATA_KEY: data}}

    def confirm(self, button: Button, confirm: Confirm, title: str, execute: JSON) -> JSON:
        execute = {**execute, "title": self.cut(_visible(confirm.confirm), CONFIRM_BUTTON)}
        if button.style in _STYLES:
            execute["style"] = _STYLES[button.style]  # a "Reject?" panel's button is red like the button itself
        body = [{"type": "TextBlock", "text": self.cut(_visible(confirm.title), CONFIRM_TITLE), "weight": "bolder",
                 "wrap": True},
                self.plain(confirm.text, CONFIRM_TEXT)]
        return {"type": "Action.ShowCard", "title": title, "card": {"type": "AdaptiveCard", "body": body,
                                                                  "actions": [execute]}}

    # --- inputs

    def inputs(self, block: Input) -> list[JSON]:
        """An input, then its error (visible) and its hint; a date range is two date inputs."""
        if block.kind == "date_range":
            initial = block.initial if isinstance(block.initial, tuple) else (None, None)
            elements = [self.date_input(block, f"{block.name}.{part}", self.suffixed(block.label, self.words[part]),
                                        day)
                        for part, day in zip(RANGE_PARTS, initial, strict=True)]
        else:
            elements = self.kind_inputs(block)
        if block.error:
            elements.append(self.attention(block.error))
        if block.hint:
            elements.append(self.context(block.hint, HINT))
        return elements

    def kind_inputs(self, block: Input) -> list[JSON]:
        match block.kind:
            case "text" | "multiline" | "user" | "file":
                return [self.text_input(block)]
            case "number" | "money":
                return [self.number_input(block)]
            case "date":
                return [self.date_input(block, block.name, block.label, block.initial)]
            case "select":
                return self.select(block)
        raise TypeError(f"not an input kind: {block.kind!r}")

    def suffixed(self, label: str, suffix: str) -> str:
        # The suffix is what tells the two pickers apart, so the label gives way to it, not the other way.
        return truncate(_visible(label), self.limit(LABEL) - len(suffix)) + suffix

    def element(self, kind: str, block: Input, element_id: str, label: str) -> JSON:
        element: JSON = {"type": kind, "id": _identifier(element_id, "input name"),
                         "label": self.cut(_visible(label), LABEL)}
        if block.required:
            element["isRequired"] = True
        if block.required or block.error:
            element["errorMessage"] = self.cut(block.error or self.words["required"], ERROR)
        if block.placeholder:
            element["placeholder"] = self.cut(block.placeholder, PLACEHOLDER)
        return element

    def initial(self, element_id: str, initial: object) -> object:
        """What the input shows: what the person typed, if the form comes back to them, else its prefill."""
        if self.typed is not None and element_id in self.typed:
            return self.typed[element_id]
        return initial

    def text_input(self, block: Input) -> JSON:
        element = self.element("Input.Text", block, block.name, block.label)
        if block.kind == "multiline":
            element["isMultiline"] = True
        elif block.kind in ("user", "file"):
            element["style"] = "email" if block.kind == "user" else "url"
        if block.max_length:
            element["maxLength"] = block.max_length
        value = self.initial(block.name, block.initial)
        if isinstance(value, str) and value:
            element["value"] = value
        return element

    def number_input(self, block: Input) -> JSON:
        element = self.element("Input.Number", block, block.name, block.label)
        floor = block.min_value or ("0" if block.kind == "money" else None)
        bounds = {"min": _number(floor), "max": _number(block.max_value)}
        element.update({key: bound for key, bound in bounds.items() if bound is not None})
        value = _number(self.initial(block.name, block.initial))
        if value is not None:
            element["value"] = value
        return element

    def date_input(self, block: Input, element_id: str, label: str, initial: object) -> JSON:
        element = self.element("Input.Date", block, element_id, label)
        bounds = {"min": _iso_date(block.min_value), "max": _iso_date(block.max_value)}
        element.update({key: bound for key, bound in bounds.items() if bound is not None})
        day = _iso_date(self.initial(element_id, initial))
        if day:
            element["value"] = day
        return element

    def select(self, block: Input) -> list[JSON]:
        element = self.element("Input.ChoiceSet", block, block.name, block.label)
        value = self.initial(block.name, block.initial)
        options = _capped_options(block.options, value, self.limit(OPTIONS_PER_SELECT))
        element["choices"] = [self.choice(o) for o in options] or [self.choice(Option("", EMPTY))]
        element["style"] = "filtered" if len(options) >= FILTERED_FROM else "compact"
        if any(o.value == value for o in options):
            element["value"] = truncate(str(value), OPTION_VALUE)
        hidden = len(block.options) - len(options)
        return [element, self.context(self.words["more"].format(n=hidden))] if hidden else [element]

    def choice(self, option: Option) -> JSON:
        return {"title": self.cut(_visible(option.label), OPTION_TEXT), "value": truncate(option.value, OPTION_VALUE)}


def _capped_options(options: Sequence[Option], initial: object, limit: int) -> Sequence[Option]:
    """At most `limit` options; a prefilled choice past it takes the last place, so it is never lost."""
    if len(options) <= limit:
        return options
    kept = list(options[:limit])
    chosen = next((o for o in options[limit:] if o.value == initial), None)
    if chosen is not None:
        kept[-1] = chosen
    return kept


def _number(value: object) -> int | float | None:
    """A number input's bound or value as a JSON number (an int when whole); anything else is none."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def _iso_date(value: object) -> str | None:
    """A date or an ISO date string as YYYY-MM-DD; anything else (a typo in a prefill) is no prefill."""
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(value).isoformat() if isinstance(value, str) else None
    except ValueError:
        return None


def _ids_of(block: Input) -> set[str]:
    return {f"{block.name}.{p}" for p in RANGE_PARTS} if block.kind == "date_range" else {block.name}


def _input_ids(body: Iterable[JSON]) -> set[str]:
    return {e["id"] for e in body if str(e.get("type", "")).startswith("Input.") and "id" in e}


# ------------------------------------------------------------------------------------------------ errors


def _placed_errors(f: Form, errors: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Messages per input name (several joined) and those that belong to no input."""
    inputs = {b.name: b for b in f.blocks if isinstance(b, Input)}
    placed: dict[str, str] = {}
    unplaced: list[str] = []
    for name, message in errors.items():
        head, _, part = name.rpartition(".")
        if name in inputs:
            target: str | None = name
        elif part in RANGE_PARTS and head in inputs and inputs[head].kind == "date_range":
            target = head
        else:
            target = None
        if target is None:
            unplaced.append(message)
        else:
            placed[target] = f"{placed[target]}\n{message}" if target in placed else message
    return placed, unplaced


def _typed(f: Form, values: Mapping[str, Any]) -> dict[str, Any]:
    """Submitted values by element id (a range's two ends apart); inputs the submission lacks keep their prefill."""
    typed: dict[str, Any] = {}
    for block in f.blocks:
        if not isinstance(block, Input) or block.name not in values:
            continue
        value = values[block.name]
        if block.kind == "date_range":
            ends = value if isinstance(value, Mapping) else {}
            for part in RANGE_PARTS:
                typed[f"{block.name}.{part}"] = ends.get(part)
        else:
            typed[block.name] = value
    return typed


# ------------------------------------------------------------------------------------------------ actions back


@dataclass(frozen=True)
class CardAction:
    """What an Action.Execute of ours asks for. A click: `name` and `value` are the Button's action and value
    (a neutral ClickEvent). A submit or a close: the Form's callback and state (a SubmitEvent with
    `read_submission`'s values, or the form dismissed)."""

    kind: Literal["click", "submit", "close"]
    name: str
    value: str


def read_action(data: Mapping[str, Any] | None, verb: str | None = None) -> CardAction | None:
    """The action behind an invoke's `action.data` (and `action.verb`); None when it is not one of ours.

    A card of another app (or an old one of ours) may carry only a verb: that is a click with no value.
    """
    ours = _ours(data)
    kind = ours.get("kind")
    if kind == "click" and isinstance(ours.get("action"), str):
        return CardAction("click", ours["action"], _text(ours.get("value")))
    if kind in ("submit", "close") and isinstance(ours.get("callback"), str):
        return CardAction(kind, ours["callback"], _text(ours.get("state")))
    if verb:
        return CardAction("click", verb, "")
    return None


def read_submission(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Neutral values from an invoke's `action.data`, keyed by `Input.name`, as bot.slack.blockkit gives them.

    Text, number and URL inputs give strings (numbers stay strings, so money is never a float), dates `date`,
    selects the chosen value, user inputs the email typed. A date range is `{"start": date | None,
    "end": date | None}`. Inputs left empty (and blank text) are None. Only the inputs the submitted form
    has are read (its submit action lists them): anything else in the data is ignored. Data from a card that
    lists no inputs is read as it comes, every key but ours.
    """
    if not isinstance(data, Mapping):
        return {}
    listed = _ours(data).get("inputs")
    if not isinstance(listed, Mapping) or not listed:
        return {str(k): _value(v) for k, v in data.items() if k != DATA_KEY}
    values: dict[str, Any] = {}
    for name, kind in listed.items():
        if not isinstance(name, str):
            continue
        if kind == "date_range":
            ends = {part: _date(data.get(f"{name}.{part}")) for part in RANGE_PARTS}
            values[name] = ends if any(v is not None for v in ends.values()) else None
        elif kind == "date":
            values[name] = _date(data.get(name))
        else:
            values[name] = _value(data.get(name))
    return values


def _ours(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    ours = data.get(DATA_KEY) if isinstance(data, Mapping) else None
    return ours if isinstance(ours, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _date(value: object) -> date | None:
    day = _iso_date(value.strip() if isinstance(value, str) else value)
    return date.fromisoformat(day) if day else None


def _value(raw: object) -> Any:
    """Strings as typed (blank: None); numbers as the string a person would type; anything else None."""
    if isinstance(raw, str):
        return raw if raw.strip() else None
    if isinstance(raw, bool):
        return "true" if raw else "false"  # Input.Toggle's own words
    if isinstance(raw, int | float):
        number = Decimal(str(raw))
        return format(number.normalize(), "f") if number.is_finite() else None
    return None
