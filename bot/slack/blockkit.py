"""Neutral views (handlers.views) rendered as Slack Block Kit, and modal submissions read back.

`render_message`, `render_form` and `render_home` turn a neutral surface into the JSON that chat.postMessage /
chat.update, views.open / views.update and views.publish take. `read_submission` turns a view_submission's
`view.state.values` back into neutral values keyed by `Input.name`, and `errors_response` builds the
`response_action: errors` answer that shows validation errors under the offending inputs.

Slack rejects a whole payload when one string is too long, so every limit Slack enforces is applied here by
truncating with "…" (text, values) or by folding the tail into a "… N more" line (blocks); nothing a handler
says is dropped silently. The exceptions are identifiers (callback, input names) and private_metadata: cutting
those would route a click or a submission to the wrong place, so they raise ValueError instead.
The limits are the ones slack_sdk.models enforces (tests validate every payload with those models).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

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
    InputKind,
    Message,
    Option,
    Text,
)

JSON = dict[str, Any]

# --- Slack's limits (characters unless said otherwise) ----------------------------------------------------
HEADER_TEXT = 150
SECTION_TEXT = 3000
FIELD_TEXT = 2000
FIELDS_PER_SECTION = 10
CONTEXT_TEXT = 3000  # the generic text-object limit; slack_sdk does not check context text itself
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
BUTTONS_PER_BLOCK = 25
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
SURFACE_TEXT = 24  # modal title, submit and close
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTIONS_PER_SELECT = 100
PLACEHOLDER = 150
LABEL = 2000
HINT = 2000
ERROR = 2000  # not stated by Slack or slack_sdk; the error sits where the hint does, so the hint's limit
PRIVATE_METADATA = 3000
IDENTIFIER = 255  # callback_id, block_id, action_id
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
FALLBACK_TEXT = 4000  # Slack's advice for a message's top-level text (it truncates only past 40,000)

ELLIPSIS = "…"
EMPTY = "—"  # Slack rejects empty or blank text objects; a dash keeps the element and shows nothing is there
VALUE_ACTION = "value"  # the action_id of every input element: the block_id already names the input
ACTION_SEPARATOR = "#"
RANGE_PARTS = ("start", "end")

_WORDS: dict[str, dict[str, str]] = {
    "ja": {"start": "（開始）", "end": "（終了）", "more": "…ほか {n} 件"},
    "en": {"start": " (Start)", "end": " (End)", "more": "… {n} more"},
}

# The element state keys of a view_submission, in the order they are looked for.
_STATE_KEYS = (
    "value",
    "selected_date",
    "selected_time",
    "selected_date_time",
    "selected_option",
    "selected_options",
    "selected_user",
    "selected_users",
    "selected_conversation",
    "selected_conversations",
    "selected_channel",
    "selected_channels",
)


# ------------------------------------------------------------------------------------------------ surfaces


def render_message(m: Message, locale: str = "ja") -> JSON:
    """A chat.postMessage / chat.update payload: notification text plus at most 50 blocks."""
    blocks = _render_blocks(m.blocks, locale) or [_section(Text(m.fallback, markdown=False))]
    return {
        "text": truncate(_visible(m.fallback), FALLBACK_TEXT),
        "blocks": _fit(blocks, MESSAGE_BLOCKS, locale),
    }


def render_form(f: Form, locale: str = "ja") -> JSON:
    """A modal view for views.open / views.update / views.push; `private_metadata` carries `Form.state`."""
    if len(f.state) > PRIVATE_METADATA:
        raise ValueError(f"form state is {len(f.state)} characters; Slack keeps at most {PRIVATE_METADATA}")
    locale = f.locale or locale  # the person's own language (their choice) over the platform's
    return {
        "type": "modal",
        "callback_id": _identifier(f.callback, "callback"),
        "title": _plain(f.title, SURFACE_TEXT),
        "submit": _plain(f.submit, SURFACE_TEXT),
        "close": _plain(f.close, SURFACE_TEXT),
        "private_metadata": f.state,
        "blocks": _fit(_render_blocks(f.blocks, locale) or [_context(Context(EMPTY))], VIEW_BLOCKS, locale),
    }


def render_home(h: Home, locale: str = "ja") -> JSON:
    """An App Home view for views.publish."""
    blocks = _render_blocks(h.blocks, locale) or [_context(Context(EMPTY))]
    return {"type": "home", "blocks": _fit(blocks, VIEW_BLOCKS, locale)}


def _render_blocks(blocks: Iterable[Block], locale: str) -> list[JSON]:
    words = _WORDS[normalize_locale(locale)]
    return [rendered for block in blocks for rendered in _render_block(block, words)]


def _render_block(block: Block, words: Mapping[str, str]) -> list[JSON]:
    """One neutral block becomes one Slack block, or several where Slack caps what one can hold."""
    match block:
        case Header():
            return [{"type": "header", "text": _plain(block.text, HEADER_TEXT)}]
        case Text():
            return [_section(block)]
        case Fields():
            return _fields(block)
        case Context():
            return [_context(block)]
        case Divider():
            return [{"type": "divider"}]
        case Actions():
            return _actions(block)
        case Input():
            return _inputs(block, words)
    raise TypeError(f"not a neutral block: {block!r}")


def _fit(blocks: list[JSON], limit: int, locale: str) -> list[JSON]:
    """Keep a surface within Slack's block count: the first limit-1 blocks and a line saying what is left."""
    if len(blocks) <= limit:
        return blocks
    hidden = len(blocks) - (limit - 1)
    more = _WORDS[normalize_locale(locale)]["more"].format(n=hidden)
    return [*blocks[: limit - 1], _context(Context(more))]


# ------------------------------------------------------------------------------------------------ text


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def truncate_mrkdwn(text: str, limit: int) -> str:
    """Like `truncate`, but never leaves half a `<link|label>` or `&amp;` entity before the "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    # A cut inside <...> would show raw markup (or a broken mention); cut before it instead.
    if head.rfind("<") > head.rfind(">"):
        head = head[: head.rfind("<")]
    amp = head.rfind("&")
    if amp >= 0 and ";" not in head[amp:] and len(head) - amp < len("&amp;"):
        head = head[:amp]
    return head + ELLIPSIS


def escape_mrkdwn(text: str) -> str:
    """Data shown in mrkdwn: the three characters Slack asks apps to escape, so `<!channel>` is just text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _visible(text: str) -> str:
    return text if text.strip() else EMPTY


def _plain(text: str, limit: int) -> JSON:
    return {"type": "plain_text", "text": truncate(_visible(text), limit)}


def _mrkdwn(text: str, limit: int) -> JSON:
    return {"type": "mrkdwn", "text": truncate_mrkdwn(_visible(text), limit)}


def _identifier(value: str, what: str) -> str:
    if not value or len(value) > IDENTIFIER:
        raise ValueError(f"{what} {value[:40]!r} must be 1 to {IDENTIFIER} characters for Slack")
    return value


# ------------------------------------------------------------------------------------------------ display


def _section(block: Text) -> JSON:
    text = _mrkdwn(block.text, SECTION_TEXT) if block.markdown else _plain(block.text, SECTION_TEXT)
    return {"type": "section", "text": text}


def _context(block: Context) -> JSON:
    # Context takes the same markup as Text(markdown=True): who and when, sometimes bold or a link.
    return {"type": "context", "elements": [_mrkdwn(block.text, CONTEXT_TEXT)]}


def _fields(block: Fields) -> list[JSON]:
    """Label/value pairs, ten to a section (Slack's cap); values are data, so they are escaped."""
    texts = [_field_text(label, value) for label, value in block.pairs]
    return [
        {"type": "section", "fields": texts[i : i + FIELDS_PER_SECTION]}
        for i in range(0, len(texts), FIELDS_PER_SECTION)
    ]


def _field_text(label: str, value: str) -> JSON:
    shown_label = f"*{escape_mrkdwn(label.strip())}*\n" if label.strip() else ""
    return _mrkdwn(shown_label + escape_mrkdwn(value), FIELD_TEXT)


def _actions(block: Actions) -> list[JSON]:
    """A row of buttons; past Slack's 25 per block, further rows (never dropped)."""
    rows = [block.buttons[i : i + BUTTONS_PER_BLOCK] for i in range(0, len(block.buttons), BUTTONS_PER_BLOCK)]
    return [{"type": "actions", "elements": [_button(b, n) for n, b in enumerate(row)]} for row in rows]


def _button(button: Button, position: int) -> JSON:
    rendered: JSON = {
        "type": "button",
        "text": _plain(button.label, BUTTON_TEXT),
        "action_id": action_id(button.action or "link", position),
    }
    if button.value:
        rendered["value"] = truncate(button.value, BUTTON_VALUE)
    if button.url:
        rendered["url"] = truncate(button.url, BUTTON_URL)
    if button.style != "default":
        rendered["style"] = button.style
    if button.confirm is not None:
        rendered["confirm"] = _confirm(button.confirm, button)
    return rendered


def action_id(action: str, position: int) -> str:
    """The action_id of the button at `position` in its block: Slack wants them unique within a block, and
    two buttons of one row may share an action (e.g. "pick" with different values)."""
    suffix = f"{ACTION_SEPARATOR}{position}"
    return _identifier(action, "action")[: IDENTIFIER - len(suffix)] + suffix


def action_name(slack_action_id: str) -> str:
    """The neutral `Button.action` of a clicked button's action_id (the inverse of `action_id`)."""
    name, separator, position = slack_action_id.rpartition(ACTION_SEPARATOR)
    return name if separator and position.isdigit() else slack_action_id


def _confirm(confirm: Confirm, button: Button) -> JSON:
    dialog: JSON = {
        "title": _plain(confirm.title, CONFIRM_TITLE),
        "text": _plain(confirm.text, CONFIRM_TEXT),
        "confirm": _plain(confirm.confirm, CONFIRM_BUTTON),
        "deny": _plain(confirm.deny, CONFIRM_BUTTON),
    }
    if button.style != "default":
        dialog["style"] = button.style  # a "Reject?" dialog's confirm button is red like the button itself
    return dialog


# ------------------------------------------------------------------------------------------------ inputs


def _inputs(field: Input, words: Mapping[str, str]) -> list[JSON]:
    """One input block per input; a date range is two date pickers (`name.start`, `name.end`)."""
    if field.kind != "date_range":
        return [_input_block(field, field.name, field.label, _ELEMENTS[field.kind](field))]
    initial = field.initial if isinstance(field.initial, tuple) else (None, None)
    return [
        _input_block(
            field, f"{field.name}.{part}", _suffixed(field.label, words[part]), _datepicker(field, day)
        )
        for part, day in zip(RANGE_PARTS, initial, strict=True)
    ]


def _suffixed(label: str, suffix: str) -> str:
    # The suffix is what tells the two pickers apart, so the label gives way to it, not the other way.
    return truncate(_visible(label), LABEL - len(suffix)) + suffix


def _input_block(field: Input, block_id: str, label: str, element: JSON) -> JSON:
    block: JSON = {
        "type": "input",
        "block_id": _identifier(block_id, "input name"),
        "label": _plain(label, LABEL),
        "element": element,
        "optional": not field.required,
    }
    hint = _hint(field)
    if hint:
        block["hint"] = _plain(hint, HINT)
    if field.dispatch:
        block["dispatch_action"] = True
    return block


def _hint(field: Input) -> str | None:
    # Block Kit has no error field on an input; the real inline error comes from errors_response. This is
    # for a form re-opened with its errors (e.g. a prefilled resubmission).
    if not field.error:
        return field.hint
    return f"⚠ {field.error}" + (f"\n{field.hint}" if field.hint else "")


def _element(kind: str, field: Input) -> JSON:
    element: JSON = {"type": kind, "action_id": VALUE_ACTION}
    if field.placeholder:
        element["placeholder"] = _plain(field.placeholder, PLACEHOLDER)
    return element


def _text_input(field: Input, multiline: bool = False) -> JSON:
    element = _element("plain_text_input", field)
    if multiline:
        element["multiline"] = True
    if field.max_length:
        element["max_length"] = field.max_length
    if isinstance(field.initial, str) and field.initial:
        element["initial_value"] = field.initial
    return element


def _number_input(field: Input, decimals: bool = True, floor: str | None = None) -> JSON:
    element = _element("number_input", field)
    element["is_decimal_allowed"] = decimals
    bounds = {"min_value": field.min_value or floor, "max_value": field.max_value}
    element.update({key: bound for key, bound in bounds.items() if bound is not None})
    if isinstance(field.initial, str) and field.initial:
        element["initial_value"] = field.initial
    return element


def _datepicker(field: Input, initial: object = None) -> JSON:
    element = _element("datepicker", field)
    day = _iso_date(initial)
    if day:
        element["initial_date"] = day
    return element


def _iso_date(value: object) -> str | None:
    """A date or an ISO date string as Slack's YYYY-MM-DD; anything else (a typo in a prefill) is no prefill."""
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(value).isoformat() if isinstance(value, str) else None
    except ValueError:
        return None


def _static_select(field: Input) -> JSON:
    element = _element("static_select", field)
    options = _capped_options(field.options, field.initial)
    element["options"] = [_option(o) for o in options]
    initial = next((o for o in options if o.value == field.initial), None)
    if initial is not None:
        element["initial_option"] = _option(initial)
    return element


def _capped_options(options: Sequence[Option], initial: object) -> Sequence[Option]:
    """At most 100 options (Slack's cap; a longer list wants an external select). A prefilled choice past
    the cap takes the last place, so a resubmission never loses its answer."""
    if len(options) <= OPTIONS_PER_SELECT:
        return options
    kept = list(options[:OPTIONS_PER_SELECT])
    chosen = next((o for o in options[OPTIONS_PER_SELECT:] if o.value == initial), None)
    if chosen is not None:
        kept[-1] = chosen
    return kept


def _option(option: Option) -> JSON:
    return {"text": _plain(option.label, OPTION_TEXT), "value": truncate(option.value, OPTION_VALUE)}


def _user_select(field: Input) -> JSON:
    element = _element("users_select", field)
    if isinstance(field.initial, str) and field.initial:
        element["initial_user"] = field.initial
    return element


def _url_input(field: Input) -> JSON:
    element = _element("url_text_input", field)
    if isinstance(field.initial, str) and field.initial:
        element["initial_value"] = field.initial
    return element


_ELEMENTS: dict[InputKind, Callable[[Input], JSON]] = {
    "text": _text_input,
    "multiline": lambda field: _text_input(field, multiline=True),
    "number": _number_input,
    "money": lambda field: _number_input(field, decimals=False, floor="0"),
    "date": lambda field: _datepicker(field, field.initial),
    "select": _static_select,
    "user": _user_select,
    "file": _url_input,
}


# ------------------------------------------------------------------------------------------------ submissions


def read_submission(state_values: Mapping[str, Any]) -> dict[str, Any]:
    """Neutral values from a view_submission's `view.state.values`, keyed by `Input.name`.

    Text, number and URL inputs give strings (numbers stay strings so money is never a float), date pickers
    `date`, selects the option's value, user pickers the Slack user id. A date range is
    `{"start": date | None, "end": date | None}`. Empty inputs (and blank text) are None.
    """
    values: dict[str, Any] = {}
    ranges: set[str] = set()
    for block_id, actions in state_values.items():
        value = _state_value(_element_state(actions))
        name, _, part = block_id.rpartition(".")
        if name and part in RANGE_PARTS:
            values.setdefault(name, dict.fromkeys(RANGE_PARTS))[part] = value
            ranges.add(name)
        else:
            values[block_id] = value
    for name in ranges:
        if all(v is None for v in values[name].values()):
            values[name] = None
    return values


def _element_state(actions: Mapping[str, Any]) -> Mapping[str, Any]:
    """Our inputs hold one element, action_id "value"; another app's view may name it otherwise."""
    state = actions.get(VALUE_ACTION) or next(iter(actions.values()), None)
    return state if isinstance(state, Mapping) else {}


def _state_value(state: Mapping[str, Any]) -> Any:
    key = next((k for k in _STATE_KEYS if k in state), None)
    if key is None:
        return None
    raw = state[key]
    if key == "selected_date" and isinstance(raw, str):
        return date.fromisoformat(raw)
    return _plain_value(raw)


def _plain_value(raw: Any) -> Any:
    """Options become their values; empty strings and lists become None."""
    if isinstance(raw, Mapping):
        return raw.get("value")
    if isinstance(raw, list):
        return [_plain_value(item) for item in raw] or None
    if isinstance(raw, str) and not raw.strip():
        return None
    return raw


def errors_response(errors: Mapping[str, str], inputs: Collection[str] | None = None) -> JSON:
    """The ack body that shows `errors` ({Input.name: message}) under the inputs of the open modal.

    `inputs` are the block ids of the modal's inputs — pass `view["state"]["values"]` (Slack lists every
    input there, empty or not). With them, a date range's name lands on its `.start` picker and a name with
    no input of its own (a whole-form error) on the first input, since Slack fails the whole response for an
    unknown block_id. Without them, names are used as block ids as they are.
    """
    shown: dict[str, str] = {}
    for name, message in errors.items():
        block_id = _error_block(name, inputs)
        joined = f"{shown[block_id]}\n{message}" if block_id in shown else message
        shown[block_id] = truncate(joined, ERROR)
    return {"response_action": "errors", "errors": shown}


def _error_block(name: str, inputs: Collection[str] | None) -> str:
    if not inputs or name in inputs:
        return name
    start = f"{name}.{RANGE_PARTS[0]}"
    return start if start in inputs else next(iter(inputs))
