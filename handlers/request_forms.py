"""A request type's form as a neutral view, and the person's answers back as the payload the engine judges.

Forms come from workflows.yaml, so a company's own request type works with no code:
- `form_for` builds the `Form` (one `Input` per field; a line-items field becomes a few numbered groups),
  prefilled from an earlier payload when a sent-back request is fixed, the engine's errors under the inputs.
- `payload_from` turns the renderer's values (keyed by `Input.name`) into a payload for
  `workflow.forms.validate_payload`. It only reshapes: judging values is the engine's job, in one place.
- `input_errors` maps the engine's error paths (`period.end`, `items[1].amount`) onto input names, for the
  platforms' inline errors (Slack's `response_action: errors`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from config.i18n import LocalText
from config.policy import FieldSpec, FieldType, RequestTypeSpec
from handlers.views import Block, Context, Form, Header, Input, InputKind, Option, Text

CALLBACK = "submit_request"

# Slack refuses a modal of more than 100 blocks (Adaptive Cards have no lower limit), so line-item groups are
# capped to what fits; the blocks kept free here are the few the top of a form may carry.
MAX_FORM_BLOCKS = 100
_TOP_RESERVE = 4

# Every sentence this module shows, in both languages.
SUBMIT = LocalText.of("申請する", "Submit")
CANCEL = LocalText.of("キャンセル", "Cancel")
ITEM_HEADING = LocalText.of("明細 {n}", "Item {n}")
APPLIES_WHEN = LocalText.of("「{field}」が「{values}」のときに入力してください", "Only when {field} is {values}")
OPTION_JOIN = LocalText.of("」または「", " or ")
PROBLEMS = LocalText.of("入力内容を確認してください", "Please check the form")
ITEMS_CUT = LocalText.of("「{field}」は全{total}件のうち最初の{shown}件だけを表示しています。残りは送信されません。",
                         "{field}: only the first {shown} of {total} fit in this form; the rest is not sent.")

_KINDS: dict[FieldType, InputKind] = {
    "text": "text", "multiline": "multiline", "number": "number", "money": "money", "date": "date",
    "date_range": "date_range", "select": "select", "user": "user", "file": "file",
}
_ITEM_NAME = re.compile(r"(?P<field>[a-z][a-z0-9_]*)\[(?P<index>\d+)\]\.(?P<column>[a-z][a-z0-9_]*)")
_ITEM_PATH = re.compile(r"(?P<field>[a-z][a-z0-9_]*)\[(?P<index>\d+)\]")


# ------------------------------------------------------------------------------------------------ state


@dataclass(frozen=True)
class FormState:
    """What a submission carries back: the request type, and the request when fixing a sent-back one."""

    type_key: str
    request_id: int | None = None


def form_state(type_key: str, request_id: int | None = None) -> str:
    """The Form's `state`: short JSON, since Slack caps private_metadata at 3000 characters."""
    data: dict[str, Any] = {"t": type_key}
    if request_id is not None:
        data["r"] = request_id
    return json.dumps(data, separators=(",", ":"))


def read_state(state: str) -> FormState | None:
    """The state of a submitted form, or None if it is not ours (a platform client can send anything)."""
    try:
        data = json.loads(state)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        return None
    request_id = data.get("r")
    if request_id is not None and (not isinstance(request_id, int) or isinstance(request_id, bool)):
        return None
    return FormState(data["t"], request_id)


# ------------------------------------------------------------------------------------------------ the form


def form_for(type_key: str, spec: RequestTypeSpec, locale: str, *, initial: Mapping[str, Any] | None = None,
             errors: Mapping[str, LocalText] | None = None, note: str | None = None, item_slots: int = 3,
             request_id: int | None = None) -> Form:
    """The form of a request type in the reader's language.

    `initial` is an earlier payload (resubmitting a sent-back request) and prefills every input; `errors`
    are the engine's per-path errors, shown under their inputs (those that match no input at the top);
    `note` is a line of context at the top (e.g. the leave balance); `request_id` marks a resubmission.
    """
    values = initial or {}
    slots = _slot_counts(spec, values, item_slots)
    body, unplaced = _with_errors(list(_field_blocks(spec, locale, values, slots)), errors or {}, locale)
    top = _top_blocks(spec, locale, note, unplaced, _cut_notices(spec, locale, values, slots))
    return Form(title=spec.title(locale), callback=CALLBACK, blocks=tuple(top + body), submit=SUBMIT(locale),
                close=CANCEL(locale), state=form_state(type_key, request_id), locale=locale)


def _top_blocks(spec: RequestTypeSpec, locale: str, note: str | None, unplaced: list[str],
                cut: list[str]) -> list[Block]:
    top: list[Block] = []
    if unplaced:
        top.append(Text("\n".join([f"⚠️ *{PROBLEMS(locale)}*", *(f"• {m}" for m in unplaced)])))
    top += [Text(f"⚠️ {line}") for line in cut]
    if note:
        top.append(Context(note))
    if spec.description is not None:
        top.append(Context(spec.description(locale)))
    return top


def _field_blocks(spec: RequestTypeSpec, locale: str, initial: Mapping[str, Any],
                  slots: Mapping[str, int]) -> Iterator[Block]:
    controllers = _controllers(spec.fields)
    for field in spec.fields:
        if field.type == "line_items":
            yield from _line_item_blocks(field, locale, initial.get(field.id), slots[field.id])
        else:
            yield _input(field, field.id, locale, initial.get(field.id), required=field.required,
                         dispatch=field.id in controllers, siblings=spec.fields)


def _line_item_blocks(field: FieldSpec, locale: str, initial: Any, slots: int) -> Iterator[Block]:
    """`slots` numbered groups; only the groups the type insists on (min_items) have required inputs."""
    columns = field.fields or []
    rows = _rows_of(initial)
    required_groups = (field.min_items or 1) if field.required else 0
    controllers = _controllers(columns)
    if field.help is not None:
        yield Context(field.help(locale))
    for i in range(slots):
        row = rows[i] if i < len(rows) else {}
        yield Header(ITEM_HEADING(locale).format(n=i + 1))
        for column in columns:
            yield _input(column, f"{field.id}[{i}].{column.id}", locale, row.get(column.id),
                         required=column.required and i < required_groups, dispatch=column.id in controllers,
                         siblings=columns)


def _input(field: FieldSpec, name: str, locale: str, value: Any, *, required: bool, dispatch: bool,
           siblings: Sequence[FieldSpec]) -> Input:
    # A field shown only for some choices is never required by the platform: it cannot see the choice, and
    # the engine says what is missing (e.g. hours for hourly leave).
    return Input(
        name=name, label=field.label(locale), kind=_KINDS[field.type],
        required=required and not field.shown_when, hint=_hint(field, locale, siblings),
        options=tuple(Option(o.value, o.label(locale)) for o in field.options or ()),
        initial=_initial(field, value), min_value=_decimal_text(field.min),
        max_value=_decimal_text(field.max), max_length=field.max_length, dispatch=dispatch,
    )


def _controllers(fields: Sequence[FieldSpec]) -> set[str]:
    """The fields whose value decides whether another is asked for: the handler wants to hear of changes."""
    return {key for f in fields for key in (f.shown_when or {})}


def _hint(field: FieldSpec, locale: str, siblings: Sequence[FieldSpec]) -> str | None:
    parts = [field.help(locale)] if field.help is not None else []
    for key, wanted in (field.shown_when or {}).items():
        other = next((f for f in siblings if f.id == key), None)
        labels = {o.value: o.label(locale) for o in (other.options or [])} if other else {}
        choices = OPTION_JOIN(locale).join(labels.get(v, v) for v in wanted)
        parts.append(APPLIES_WHEN(locale).format(field=other.label(locale) if other else key, values=choices))
    return " ".join(parts) or None


def _initial(field: FieldSpec, value: Any) -> str | date | tuple[date, date] | None:
    """A payload value as the prefill of its input."""
    if value is None or value == "":
        return None
    if field.type == "date":
        return _as_date(value)
    if field.type == "date_range":
        start, end = _range_ends(value)
        first, last = _as_date(start), _as_date(end)
        return (first, last) if first and last else None
    if field.type == "file" and isinstance(value, Mapping):
        return str(value["url"]) if value.get("url") else None
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None  # a prefill the date picker cannot show; the person picks again


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _rows_of(value: Any) -> list[Mapping[str, Any]]:
    return [row for row in value if isinstance(row, Mapping)] if isinstance(value, list) else []


# ------------------------------------------------------------------------------------------- line-item slots


def _slot_counts(spec: RequestTypeSpec, initial: Mapping[str, Any], wanted: int) -> dict[str, int]:
    """How many groups each line-items field gets: what was asked or prefilled, within max_items and the
    platform's block limit (the space left by the other fields, shared among line-items fields)."""
    line_fields = [f for f in spec.fields if f.type == "line_items"]
    if not line_fields:
        return {}
    fixed = _TOP_RESERVE + sum(1 for f in spec.fields if f.type != "line_items")
    fixed += sum(1 for f in line_fields if f.help is not None)
    room = (MAX_FORM_BLOCKS - fixed) // len(line_fields)
    counts = {}
    for field in line_fields:
        fits = max(1, room // (1 + len(field.fields or [])))
        asked = max(wanted, len(_rows_of(initial.get(field.id))), field.min_items or 1)
        counts[field.id] = max(1, min(asked, field.max_items or 50, fits))
    return counts


def _cut_notices(spec: RequestTypeSpec, locale: str, initial: Mapping[str, Any],
                 slots: Mapping[str, int]) -> list[str]:
    """Say so when a prefill has more items than fit: a form must never drop something silently."""
    notices = []
    for field in spec.fields:
        total = len(_rows_of(initial.get(field.id))) if field.type == "line_items" else 0
        if total > slots.get(field.id, total):
            shown = slots[field.id]
            notices.append(ITEMS_CUT(locale).format(field=field.label(locale), shown=shown, total=total))
    return notices


# ------------------------------------------------------------------------------------------------ errors


def _with_errors(blocks: list[Block], errors: Mapping[str, LocalText],
                 locale: str) -> tuple[list[Block], list[str]]:
    """Attach each error to its input; return the blocks and the messages that belong to no input."""
    names = [b.name for b in blocks if isinstance(b, Input)]
    placed, unplaced = _place(errors, lambda path: _target(path, names), locale)
    out = [replace(b, error=placed[b.name]) if isinstance(b, Input) and b.name in placed else b
           for b in blocks]
    return out, unplaced


def _place(errors: Mapping[str, LocalText], resolve: Callable[[str], str | None],
           locale: str) -> tuple[dict[str, str], list[str]]:
    """Messages per input name (several on one input joined), and those `resolve` finds no input for."""
    placed: dict[str, str] = {}
    unplaced: list[str] = []
    for path, text in errors.items():
        message, name = text(locale), resolve(path)
        if name is None:
            if message not in unplaced:
                unplaced.append(message)
        elif name not in placed:
            placed[name] = message
        elif message not in placed[name]:
            placed[name] = f"{placed[name]} / {message}"
    return placed, unplaced


def _target(path: str, names: Sequence[str]) -> str | None:
    """The input an engine path belongs to: the input itself; else the first input inside it (a whole
    line-items error such as `items` goes on the first group); else that of the enclosing path
    (`period.end` -> `period`). An index the form has no group for matches nothing."""
    if path in names:
        return path
    inside = next((n for n in names if n.startswith((f"{path}.", f"{path}["))), None) if path else None
    if inside is not None:
        return inside
    return _target(path.rsplit(".", 1)[0], names) if "." in path else None


def input_errors(errors: Mapping[str, LocalText], locale: str,
                 values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Engine error paths -> input names, each with its message in one language.

    Pass the submitted `values` (keyed by input name, as given to `payload_from`): the payload skipped empty
    line-item groups, so the engine's `items[1]` may be the form's third group, and only `values` tells.
    With them every error lands on an input of the form (one matching none goes on the first input, since the
    platforms can show errors only under inputs); without them, paths are only mapped structurally.
    """
    if values is None:
        return _place(errors, _enclosing, locale)[0]
    names = list(values)
    filled = _filled_slots(values)
    placed, unplaced = _place(errors, lambda path: _target(_to_slot(path, filled), names), locale)
    if unplaced and names:
        first = names[0]
        placed[first] = " / ".join(([placed[first]] if first in placed else []) + unplaced)
    return placed


def _enclosing(path: str) -> str:
    """Without the form at hand: a date range's `period.start` is its one input `period`."""
    head, _, tail = path.rpartition(".")
    return head if tail in ("start", "end") and head and "[" not in head else path


def _filled_slots(values: Mapping[str, Any]) -> dict[str, list[int]]:
    """For each line-items field, the groups that were not wholly empty (what payload_from kept), in order."""
    filled: dict[str, set[int]] = {}
    for name, value in values.items():
        match = _ITEM_NAME.fullmatch(name)
        if match and _clean(value) is not None:
            filled.setdefault(match["field"], set()).add(int(match["index"]))
    return {field: sorted(indexes) for field, indexes in filled.items()}


def _to_slot(path: str, filled: Mapping[str, list[int]]) -> str:
    """`items[1].amount` of the payload -> `items[2].amount` of the form when its group 1 was left empty."""
    match = _ITEM_PATH.match(path)
    if match is None or match["field"] not in filled:
        return path
    slots, index = filled[match["field"]], int(match["index"])
    slot = slots[index] if index < len(slots) else index
    return f"{match['field']}[{slot}]{path[match.end():]}"


# ------------------------------------------------------------------------------------------------ answers


def payload_from(spec: RequestTypeSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The renderer's values as the payload the engine validates: empty answers left out, line-item groups
    gathered into a list (wholly empty groups skipped), scalars as strings. Values are not judged here."""
    payload: dict[str, Any] = {}
    for field in spec.fields:
        if field.type == "line_items":
            value: Any = _items(field, values) or None
        elif field.type == "date_range":
            value = _date_range(values.get(field.id))
        else:
            value = _clean(values.get(field.id))
        if value is not None:
            payload[field.id] = value
    return payload


def _items(field: FieldSpec, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups: dict[int, dict[str, Any]] = {}
    columns = {c.id: c for c in field.fields or []}
    for name, raw in values.items():
        match = _ITEM_NAME.fullmatch(name)
        if match is None or match["field"] != field.id or match["column"] not in columns:
            continue
        column = columns[match["column"]]
        value = _date_range(raw) if column.type == "date_range" else _clean(raw)
        if value is not None:
            groups.setdefault(int(match["index"]), {})[column.id] = value
    return [groups[i] for i in sorted(groups)]


def _date_range(value: Any) -> dict[str, str] | None:
    """{"start", "end"} as ISO strings. A range with one end given is that one day (a half-day leave is
    picked as one date); both ends missing is no answer."""
    start, end = (_clean(v) for v in _range_ends(value))
    if start is None and end is None:
        return None
    return {"start": start or end, "end": end or start}


def _range_ends(value: Any) -> tuple[Any, Any]:
    if isinstance(value, Mapping):
        return value.get("start"), value.get("end")
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    return value, None  # one date given where a range was expected: a one-day range


def _clean(value: Any) -> Any:
    """None for an empty answer; dates and numbers as the strings a person would type; the rest as given."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, Mapping):
        kept = {k: v for k, v in ((k, _clean(v)) for k, v in value.items()) if v is not None}
        return kept or None
    if isinstance(value, (list, tuple)):
        items = [v for v in (_clean(v) for v in value) if v is not None]
        return items or None
    return value
