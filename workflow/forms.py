"""Request forms as pydantic models built from workflows.yaml, and their errors in Japanese and English.

Each request type gets one model (built once, cached); `validate_payload` returns the clean payload or,
per field path (`items[2].amount`), what is wrong in both languages. Nothing is stored by this module.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from config.i18n import LocalText
from config.policy import FieldSpec, RequestTypeSpec
from workflow import messages as msg

FieldErrors = dict[str, LocalText]


def _nfkc(value: Any) -> Any:
    """Full-width digits and letters (common in Japanese input) become ASCII; blank text becomes missing."""
    if isinstance(value, str):
        value = unicodedata.normalize("NFKC", value).strip()
        return value or None
    return value


def _yen(value: Any) -> Any:
    if isinstance(value, str):
        cleaned = re.sub(r"[,\s円¥￥]", "", unicodedata.normalize("NFKC", value))
        if not cleaned:
            return None
        if not re.fullmatch(r"-?\d+", cleaned):
            raise PydanticCustomError("money", "not a whole-yen amount")
        return int(cleaned)
    if isinstance(value, float) and not value.is_integer():
        raise PydanticCustomError("money", "not a whole-yen amount")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise PydanticCustomError("money", "not a whole-yen amount")
    return value


def _date(value: Any) -> Any:
    value = _nfkc(value)
    if isinstance(value, str):
        value = value.replace("/", "-").replace(".", "-")
        match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value)
        if match:
            return "{}-{:02d}-{:02d}".format(*(int(g) for g in match.groups()))
    return value


def _file(value: Any) -> Any:
    value = _nfkc(value)
    if value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("url"), str):
        value = value["url"]
    if not isinstance(value, str) or not re.fullmatch(r"(https?://\S+|file:\S+)", value) or len(value) > 2000:
        raise PydanticCustomError("file", "not a link or a file reference")
    return value


class DateRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Annotated[date, BeforeValidator(_date)]
    end: Annotated[date, BeforeValidator(_date)]

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise PydanticCustomError("range_order", "end before start")
        return self


def _annotation(spec: FieldSpec) -> Any:
    """The python type (with its constraints) of one form field."""
    bounds: dict[str, Any] = {}
    if spec.min is not None:
        bounds["ge"] = spec.min
    if spec.max is not None:
        bounds["le"] = spec.max
    if spec.type in ("text", "multiline"):
        return Annotated[str, BeforeValidator(_nfkc) if spec.type == "text" else BeforeValidator(_strip),
                         Field(min_length=spec.min_length or 1, max_length=spec.max_length or 3000)]
    if spec.type == "number":
        return Annotated[Decimal, BeforeValidator(_nfkc), Field(allow_inf_nan=False, **bounds)]
    if spec.type == "money":
        whole = {k: int(v) for k, v in bounds.items()}
        return Annotated[int, BeforeValidator(_yen), Field(ge=whole.get("ge"), le=whole.get("le"))]
    if spec.type == "date":
        return Annotated[date, BeforeValidator(_date)]
    if spec.type == "date_range":
        return DateRange
    if spec.type == "select":
        return Annotated[Literal[tuple(o.value for o in spec.options or [])], BeforeValidator(_option)]  # type: ignore[misc]
    if spec.type == "user":
        return Annotated[int, Field(ge=1)]
    if spec.type == "file":
        return Annotated[str, BeforeValidator(_file)]
    item_model = _model_for_fields(f"Item_{spec.id}", tuple(spec.fields or ()))
    return Annotated[list[item_model], Field(min_length=spec.min_items or 1,  # type: ignore[valid-type]
                                             max_length=spec.max_items or 50)]


def _plain(value: Any) -> Any:
    """Decimal('1') -> '1', 100000.0 -> '100,000': numbers as a person writes them."""
    if isinstance(value, str) and (m := re.fullmatch(r"Decimal\('(.*)'\)", value)):
        value = Decimal(m.group(1))
    if isinstance(value, (Decimal, int, float)) and not isinstance(value, bool):
        number = Decimal(str(value))
        return f"{number:,f}".rstrip("0").rstrip(".") if "." in f"{number:f}" else f"{number:,f}"
    return value


def _option(value: Any) -> Any:
    """Select values are strings; accept 10 for "10" (JSON clients send numbers)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    return _nfkc(value)


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def _model_for_fields(name: str, fields: tuple[FieldSpec, ...]) -> type[BaseModel]:
    definitions: dict[str, Any] = {}
    for spec in fields:
        annotation = _annotation(spec)
        if spec.required and spec.shown_when is None:
            definitions[spec.id] = (annotation, ...)
        else:
            definitions[spec.id] = (annotation | None, None)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **definitions)  # type: ignore[call-overload]


_MODELS: dict[int, tuple[RequestTypeSpec, type[BaseModel]]] = {}


def form_model(spec: RequestTypeSpec) -> type[BaseModel]:
    """The pydantic model of a request type's form (built once per loaded type; specs are immutable)."""
    cached = _MODELS.get(id(spec))
    if cached is None or cached[0] is not spec:
        cached = (spec, _model_for_fields(f"Form_{spec.prefix}", tuple(spec.fields)))
        _MODELS[id(spec)] = cached  # the tuple keeps spec alive, so its id is never reused for another
    return cached[1]


def error_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith(("function-", "literal[", "constrained-")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: dict[str, Any]) -> LocalText:
    kind = err["type"]
    ctx = {k: _plain(v) for k, v in (err.get("ctx") or {}).items()}
    if kind == "too_long" and isinstance(err.get("input"), str):
        kind = "string_too_long"
    blank = err.get("input") is None and kind != "extra_forbidden"
    if kind == "missing" or blank or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return msg.REQUIRED
    simple = {
        "string_too_short": (msg.TOO_SHORT, {"min": ctx.get("min_length")}),
        "string_too_long": (msg.TOO_LONG, {"max": ctx.get("max_length")}),
        "too_short": (msg.TOO_FEW_ITEMS, {"min": ctx.get("min_length")}),
        "too_long": (msg.TOO_MANY_ITEMS, {"max": ctx.get("max_length")}),
        "greater_than_equal": (msg.BELOW_MIN, {"min": ctx.get("ge")}),
        "greater_than": (msg.BELOW_MIN, {"min": ctx.get("gt")}),
        "less_than_equal": (msg.ABOVE_MAX, {"max": ctx.get("le")}),
        "less_than": (msg.ABOVE_MAX, {"max": ctx.get("lt")}),
        "literal_error": (msg.BAD_OPTION, {}),
        "extra_forbidden": (msg.UNKNOWN_FIELD, {}),
        "money": (msg.NOT_MONEY, {}),
        "range_order": (msg.RANGE_ORDER, {}),
        "file": (msg.BAD_FILE, {}),
        "model_type": (msg.NOT_AN_OBJECT, {}),
        "model_attributes_type": (msg.NOT_AN_OBJECT, {}),
        "list_type": (msg.NOT_AN_OBJECT, {}),
    }
    if kind in simple:
        text, values = simple[kind]
        return msg.fill(text, **values)
    if kind.startswith("date"):
        return msg.BAD_DATE
    if kind.startswith(("decimal", "float", "int", "finite")):
        return msg.NOT_MONEY if "money" in str(err.get("loc")) else msg.NOT_NUMBER
    return msg.fill(msg.CHECK_VALUE, detail=err.get("msg", kind))


def validate_payload(spec: RequestTypeSpec, payload: Any) -> tuple[dict[str, Any] | None, FieldErrors]:
    """Clean payload (JSON-safe) and no errors, or None and the errors per field path."""
    if not isinstance(payload, dict):
        return None, {"": msg.NOT_AN_OBJECT}
    try:
        model = form_model(spec).model_validate(_hide_unshown(spec, payload))
    except ValidationError as exc:
        errors: FieldErrors = {}
        for err in exc.errors(include_url=False):
            errors.setdefault(error_path(err["loc"]), _message(dict(err)))
        return None, errors
    return model.model_dump(mode="json", exclude_none=True), {}


def _hide_unshown(spec: RequestTypeSpec, payload: dict[str, Any]) -> dict[str, Any]:
    """Drop fields that the form does not show for the chosen options (e.g. hours for full-day leave)."""
    out = dict(payload)
    for field in spec.fields:
        if field.shown_when:
            shown = all(str(out.get(k)) in v for k, v in field.shown_when.items())
            if not shown:
                out.pop(field.id, None)
    return out
