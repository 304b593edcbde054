"""What a request is about, in a few label/value pairs: the key fields of an approver's card, a status line.

Everything comes from workflows.yaml (labels, option labels, field kinds), so a company's own type is
summarized with no code. Values are shown as a person reads them: option labels rather than codes, dates with
the weekday, yen with separators, line items as a count and a total, long text cut short.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from config.i18n import LocalText, normalize_locale
from config.policy import FieldSpec, RequestTypeSpec

TEXT_LIMIT = 100  # a card shows what the request is about; the full text is one click away

WEEKDAYS = {
    "ja": ("月", "火", "水", "木", "金", "土", "日"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
RANGE_DAYS = LocalText.of("{range}（{days}日）", "{range} ({days} days)")
ITEMS_TOTAL = LocalText.of("{count}件 合計 {total}", "{count} items, total {total}")
ONE_ITEM_TOTAL = LocalText.of("{count}件 合計 {total}", "{count} item, total {total}")
ITEMS = LocalText.of("{count}件", "{count} items")
ONE_ITEM = LocalText.of("{count}件", "{count} item")


def summary_fields(spec: RequestTypeSpec, payload: Mapping[str, Any], locale: str, max_fields: int = 6, *,
                   days: Decimal | None = None,
                   people: Mapping[int, str] | None = None) -> tuple[tuple[str, str], ...]:
    """Label/value pairs for the first `max_fields` answered fields, in the form's order.

    Files are left out (a card lists attachments as links; see `attachments`), and so are fields the form did
    not ask for given the choices made (hours of a full-day leave). A date range shows only its ends: how many
    days it takes needs the business calendar, so the caller passes `days` when it knows them (leave).
    `people` names the employees of user fields (employee id -> name).
    """
    pairs: list[tuple[str, str]] = []
    for field in spec.fields:
        value = payload.get(field.id)
        if len(pairs) >= max_fields:
            break
        if not _answered(value) or field.type == "file" or not _shown(field, payload):
            continue
        pairs.append((field.label(locale), _value_text(field, value, locale, days, people or {})))
    return tuple(pairs)


def attachments(spec: RequestTypeSpec, payload: Mapping[str, Any],
                locale: str) -> tuple[tuple[str, str], ...]:
    """Label/link pairs of the files of a request, line items' files included (e.g. each receipt)."""
    found: list[tuple[str, str]] = []
    for field in spec.fields:
        if field.type == "file" and (url := _url(payload.get(field.id))):
            found.append((field.label(locale), url))
        if field.type != "line_items" or not isinstance(payload.get(field.id), list):
            continue
        for n, row in enumerate(payload[field.id], start=1):
            for column in field.fields or []:
                if column.type == "file" and isinstance(row, Mapping) and (url := _url(row.get(column.id))):
                    found.append((f"{column.label(locale)} {n}", url))
    return tuple(found)


def _answered(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _shown(field: FieldSpec, payload: Mapping[str, Any]) -> bool:
    return all(str(payload.get(key)) in wanted for key, wanted in (field.shown_when or {}).items())


def _value_text(field: FieldSpec, value: Any, locale: str, days: Decimal | None,
                people: Mapping[int, str]) -> str:
    if field.type == "select":
        return next((o.label(locale) for o in field.options or [] if o.value == str(value)), str(value))
    if field.type == "date":
        return date_text(value, locale)
    if field.type == "date_range":
        return _range_text(value, locale, days)
    if field.type == "money":
        return money_text(value)
    if field.type == "number":
        return _number_text(value)
    if field.type == "line_items":
        return _items_text(field, value, locale)
    if field.type == "user":
        return people.get(_int(value) or 0, f"#{value}")
    return cut(str(value))


def date_text(value: Any, locale: str) -> str:
    """2026-06-08 (月) / 2026-06-08 (Mon); a value that is not a date is shown as it is."""
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    names = WEEKDAYS[normalize_locale(locale)]
    return f"{day.isoformat()} ({names[day.weekday()]})"


def _range_text(value: Any, locale: str, days: Decimal | None) -> str:
    start, end = (value.get("start"), value.get("end")) if isinstance(value, Mapping) else (value, value)
    shown = date_text(start, locale)
    if end != start:
        shown += f" – {date_text(end, locale)}"
    return shown if days is None else RANGE_DAYS(locale).format(range=shown, days=_number_text(days))


def money_text(value: Any) -> str:
    """¥12,800 (the same in both languages: yen amounts are whole numbers)."""
    amount = _int(value)
    return str(value) if amount is None else f"¥{amount:,}"


def _number_text(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _items_text(field: FieldSpec, value: Any, locale: str) -> str:
    """"3件 合計 ¥45,600": the count, and the total of the first money column when there is one."""
    rows = [row for row in value if isinstance(row, Mapping)] if isinstance(value, list) else []
    money = next((c.id for c in field.fields or [] if c.type == "money"), None)
    if money is None:
        return (ONE_ITEM if len(rows) == 1 else ITEMS)(locale).format(count=len(rows))
    total = sum(_int(row.get(money)) or 0 for row in rows)
    text = ONE_ITEM_TOTAL if len(rows) == 1 else ITEMS_TOTAL
    return text(locale).format(count=len(rows), total=money_text(total))


def _int(value: Any) -> int | None:
    try:
        return int(str(value).replace(",", "").replace("¥", "").strip())
    except ValueError:
        return None


def _url(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("url")
    return value if isinstance(value, str) and value else None


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    """The first `limit` characters, and "…" when there was more."""
    return text if len(text) <= limit else text[:limit].rstrip() + "…"
