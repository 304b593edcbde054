"""The schema of workflows.yaml: request types, forms, routes, SLAs and nudge policy, validated by pydantic.

A broken file never starts the app: `load_policy` raises `PolicyError` whose problems each name the file,
the path inside it (e.g. `types.expense.route[2].approver`) and what was expected.
"""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from config.i18n import LocalText

SLUG = r"^[a-z][a-z0-9_]{0,39}$"
ROLES = ("hr", "finance", "legal", "seal_keeper", "it", "admin", "general_affairs")
APPROVER_FORMS = (
    "manager, manager:N (N levels up), department_head, role:<name>, person:<email>"
)
_APPROVER_RE = re.compile(r"^(manager(:[1-9])?|department_head|role:[a-z][a-z0-9_]*|person:[^@\s]+@[^@\s]+)$")


def _check_approver(value: str) -> str:
    if not _APPROVER_RE.match(value):
        raise ValueError(f"unknown approver {value!r}; expected one of: {APPROVER_FORMS}")
    return value


ApproverRef = Annotated[str, AfterValidator(_check_approver)]
Slug = Annotated[str, Field(pattern=SLUG)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in the file must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Option(Strict):
    value: str
    label: LocalText


FieldType = Literal[
    "text", "multiline", "number", "money", "date", "date_range", "select", "user", "file", "line_items"
]


class FieldSpec(Strict):
    """One input on a request form."""

    id: Slug
    type: FieldType
    label: LocalText
    help: LocalText | None = None
    required: bool = True
    min: Decimal | None = None
    max: Decimal | None = None
    min_length: PositiveInt | None = None
    max_length: PositiveInt | None = None
    options: list[Option] | None = None
    fields: list[FieldSpec] | None = None  # the columns of a line_items field
    min_items: PositiveInt | None = None
    max_items: PositiveInt | None = None
    check: Literal["invoice_number"] | None = None
    # only ask for this field when another select field has one of these values (e.g. hours for hourly leave)
    shown_when: dict[str, list[str]] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.type == "select":
            if not self.options:
                raise ValueError("a select field needs a non-empty 'options' list")
            values = [o.value for o in self.options]
            if len(set(values)) != len(values):
                raise ValueError("select option values must be unique")
        elif self.options is not None:
            raise ValueError(f"'options' only applies to select fields, not {self.type}")
        if self.type == "line_items":
            if not self.fields:
                raise ValueError("a line_items field needs 'fields' (its columns)")
            if any(f.type == "line_items" for f in self.fields):
                raise ValueError("line_items cannot nest")
        elif self.fields is not None:
            raise ValueError(f"'fields' only applies to line_items fields, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Condition(Strict):
    """A test on a fact of the request: a payload field, a derived fact (total, days) or the requester."""

    fact: str
    gt: Decimal | None = None
    gte: Decimal | None = None
    lt: Decimal | None = None
    lte: Decimal | None = None
    eq: str | int | None = None
    in_: list[str | int] | None = Field(None, alias="in")
    not_in: list[str | int] | None = None

    @model_validator(mode="after")
    def _has_operator(self) -> Condition:
        ops = (self.gt, self.gte, self.lt, self.lte, self.eq, self.in_, self.not_in)
        if all(op is None for op in ops):
            raise ValueError("a condition needs an operator: gt, gte, lt, lte, eq, in or not_in")
        return self


class Sla(Strict):
    business_days: Decimal = Field(gt=0, le=60)


BusinessDays = Annotated[Decimal, Field(gt=0, le=60)]


class NudgePolicy(Strict):
    """When to remind an approver, when to escalate and what happens in the end (all in business days counted
    from the step's due time; reminders go out in the recipient's working hours only)."""

    before_due_business_days: list[BusinessDays] = [Decimal(1)]
    at_due: bool = True
    # back-off while overdue: the gaps between reminders, the last one repeating (every day, then every 2)
    overdue_every_business_days: list[BusinessDays] = [Decimal(1), Decimal(2)]
    escalate_after_business_days: BusinessDays | None = Decimal(3)
    escalate_to: ApproverRef = "manager"
    # What happens when nobody acts in the end, `final_after_business_days` after the due time (past the
    # escalation): `stay` (the request waits, reminders go on), `return_to_requester` (the system sends the request
    # back to the requester with a note, "overdue / 期限超過"; the requester may fix and resubmit or withdraw).
    # `auto_approve_inform` would complete only steps that need no judgement (回覧, kind: inform); those pass at
    # once in this engine and an approval or queue step is NEVER approved by the system, so the value is refused
    # by `madoguchi check` (see FINAL_AUTO_APPROVE_REFUSED). Carried out by the tick (workflow/nudges.py).
    final: Literal["stay", "auto_approve_inform", "return_to_requester"] = "stay"
    final_after_business_days: BusinessDays = Decimal(5)

    @model_validator(mode="after")
    def _final_after_escalation(self) -> NudgePolicy:
        if self.final != "stay" and self.escalate_after_business_days is not None \
                and self.final_after_business_days <= self.escalate_after_business_days:
            raise ValueError(
                f"final_after_business_days ({self.final_after_business_days}) must be more than "
                f"escalate_after_business_days ({self.escalate_after_business_days}): the final policy "
                f"({self.final}) acts only once a step has stayed overdue past its escalation")
        return self


class StepSpec(Strict):
    """One stage of a route: who decides (or is informed, or claims from a queue) and how many must agree."""

    id: Slug
    title: LocalText | None = None
    kind: Literal["approval", "inform", "queue"] = "approval"
    approver: ApproverRef | None = None
    approvers: list[ApproverRef] | None = None
    require: Literal["all", "any"] | PositiveInt = "all"
    when: list[Condition] = []
    sla: Sla | None = None
    # A queue's shared card goes to this chat channel (Slack: "#it-help", "#情シス" or a channel id), where
    # whoever of the queue is free claims it; without one, each holder gets the card by DM.
    channel: Annotated[str, Field(pattern=r"^(#[^\s#,]{1,80}|[CG][A-Z0-9]{6,20})$")] | None = None

    @model_validator(mode="after")
    def _channel_for_queues(self) -> StepSpec:
        if self.channel is not None and self.kind != "queue":
            raise ValueError("'channel' is only for queue steps (kind: queue): approvals and FYIs go to people")
        return self

    @model_validator(mode="after")
    def _one_approver_source(self) -> StepSpec:
        if (self.approver is None) == (self.approvers is None):
            raise ValueError("give exactly one of 'approver' (one resolver) or 'approvers' (a list, for 合議)")
        if self.approvers is not None and not self.approvers:
            raise ValueError("'approvers' must not be empty")
        return self

    @property
    def approver_refs(self) -> list[str]:
        return [self.approver] if self.approver is not None else list(self.approvers or [])


Behaviour = Literal["generic", "leave", "expense"]
Area = Literal["general_affairs", "hr", "labour", "finance", "legal", "it"]


class RequestTypeSpec(Strict):
    """A kind of request a company accepts: its form, its route, its deadlines."""

    prefix: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{1,5}$")]
    title: LocalText
    description: LocalText | None = None
    area: Area
    behaviour: Behaviour = "generic"
    fields: list[FieldSpec] = Field(min_length=1)
    route: list[StepSpec] = Field(min_length=1)
    sla: Sla | None = None
    nudges: NudgePolicy | None = None
    auto_close_after_business_days: Decimal | None = None

    def field(self, field_id: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.id == field_id), None)


class Closure(Strict):
    """An annual company closure, month-day to month-day inclusive; may wrap the year end."""

    from_: Annotated[str, Field(alias="from", pattern=r"^\d{2}-\d{2}$")]
    to: Annotated[str, Field(pattern=r"^\d{2}-\d{2}$")]
    name: LocalText | None = None

    @field_validator("from_", "to")
    @classmethod
    def _real_month_day(cls, value: str) -> str:
        month, day = (int(p) for p in value.split("-"))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            raise ValueError(f"{value!r} is not a month-day such as 12-29")
        return value

    def month_days(self) -> tuple[tuple[int, int], tuple[int, int]]:
        a, b = (tuple(int(p) for p in v.split("-")) for v in (self.from_, self.to))
        return (a[0], a[1]), (b[0], b[1])


class WorkingHours(Strict):
    start: time = time(9)
    end: time = time(18)

    @model_validator(mode="after")
    def _ordered(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError("working_hours.start must be before working_hours.end")
        return self


class Company(Strict):
    """Facts about the company that every rule needs: zone, calendar, fiscal year."""

    name: LocalText = LocalText(ja="サンプル株式会社", en="Sample Co., Ltd.")
    timezone: str = "Asia/Tokyo"
    default_locale: Literal["ja", "en"] = "ja"
    fiscal_year_start_month: int = Field(4, ge=1, le=12)
    working_hours: WorkingHours = WorkingHours()
    hours_per_day: Decimal = Field(Decimal(8), gt=0, le=24)
    closures: list[Closure] = [Closure(**{"from": "12-29", "to": "01-03"})]
    closed_dates: list[str] = []
    open_dates: list[str] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; expected an IANA name such as Asia/Tokyo") from None
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class FiveDayCampaign(Strict):
    """The 年5日 campaign: workers short of 5 days taken are reminded once per period (monthly, and weekly in
    the last `final_months` of their one-year window), on or after the given day, from `hour` (company time)
    on business days; their managers get a digest of their team's shortfall."""

    enabled: bool = True
    monthly_day: int = Field(1, ge=1, le=28)
    final_months: int = Field(3, ge=0, le=11)
    weekly_day: Weekday = "mon"
    hour: int = Field(10, ge=0, le=23)
    notify_managers: bool = True


class Campaigns(Strict):
    five_day: FiveDayCampaign = FiveDayCampaign()


class Defaults(Strict):
    sla: Sla = Sla(business_days=Decimal(2))
    nudges: NudgePolicy = NudgePolicy()


class Policy(Strict):
    """The whole of workflows.yaml."""

    version: Literal[1] = 1
    company: Company = Company()
    defaults: Defaults = Defaults()
    types: dict[Slug, RequestTypeSpec] = Field(min_length=1)
    campaigns: Campaigns = Campaigns()

    def type(self, key: str) -> RequestTypeSpec:
        return self.types[key]

    def sla_for(self, type_key: str, step: StepSpec) -> Sla:
        return step.sla or self.types[type_key].sla or self.defaults.sla

    def nudges_for(self, type_key: str) -> NudgePolicy:
        return self.types[type_key].nudges or self.defaults.nudges


# Facts a route condition may test besides the payload's own fields.
DERIVED_FACTS: dict[str, tuple[str, ...]] = {
    "generic": (),
    "leave": ("days",),
    "expense": ("total",),
}
REQUESTER_FACTS = ("requester.department", "requester.roles", "requester.work_days_per_week")

# Fields a behaviour relies on: id -> allowed types.
REQUIRED_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "leave": {"unit": ("select",), "period": ("date_range",), "hours": ("number",)},
    "expense": {"items": ("line_items",)},
    "generic": {},
}
REQUIRED_ITEM_FIELDS = {"amount": ("money",), "tax_rate": ("select",)}
LEAVE_UNITS = {"full", "am", "pm", "hourly"}


class PolicyError(Exception):
    """workflows.yaml is unusable; `problems` says where and why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def format_loc(loc: tuple[Any, ...]) -> str:
    """('types', 'expense', 'route', 2, 'approver') -> 'types.expense.route[2].approver'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[_check_approver(), str]",) or str(part).startswith(("function-", "literal[")):
            continue  # pydantic's validator labels say nothing to a person editing YAML
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _semantic_problems(policy: Policy) -> list[tuple[str, str]]:
    """Checks that need the whole type: condition facts exist, behaviours have their fields, ids unique."""
    problems: list[tuple[str, str]] = []
    for key, spec in policy.types.items():
        base = f"types.{key}"
        ids = [f.id for f in spec.fields]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            problems.append((f"{base}.fields", f"field id {dup!r} is used more than once"))
        step_ids = [s.id for s in spec.route]
        for dup in sorted({i for i in step_ids if step_ids.count(i) > 1}):
            problems.append((f"{base}.route", f"step id {dup!r} is used more than once"))
        problems += _behaviour_problems(base, spec)
        known = set(ids) | set(DERIVED_FACTS[spec.behaviour]) | set(REQUESTER_FACTS)
        for i, step in enumerate(spec.route):
            for j, cond in enumerate(step.when):
                if cond.fact not in known:
                    problems.append((
                        f"{base}.route[{i}].when[{j}].fact",
                        f"unknown fact {cond.fact!r}; expected one of: {', '.join(sorted(known))}",
                    ))
            if isinstance(step.require, int) and step.approvers is not None and step.require > len(step.approvers):
                problems.append((f"{base}.route[{i}].require", f"needs {step.require} approvals but lists "
                                 f"{len(step.approvers)} approvers"))
        if all(s.kind == "inform" for s in spec.route):
            problems.append((f"{base}.route", "a route needs at least one approval or queue step"))
    problems += _final_policy_problems(policy)
    return problems


# Step kinds that need nobody's judgement (a 回覧 only informs): the only ones `auto_approve_inform` may complete.
NO_JUDGEMENT_KINDS = frozenset({"inform"})
# Step kinds that wait for a person; an inform step never waits (it passes as soon as it starts).
WAITING_KINDS = frozenset({"approval", "queue"})
FINAL_AUTO_APPROVE_REFUSED = (
    "final: auto_approve_inform would never apply: it completes only steps that need no judgement (回覧, kind: "
    "inform), which pass at once and never wait, and an approval or queue step is never approved by the system; "
    "use stay (wait, with reminders) or return_to_requester (send it back with a note)")


def _final_policy_problems(policy: Policy) -> list[tuple[str, str]]:
    """`auto_approve_inform` with a route where no step that waits could be completed without judgement: in
    this engine every route (inform steps never wait), so the value is refused where it is set."""
    problems: list[tuple[str, str]] = []
    defaults_used = False
    for key, spec in policy.types.items():
        nudges = spec.nudges or policy.defaults.nudges
        if nudges.final != "auto_approve_inform":
            continue
        if any(s.kind in WAITING_KINDS and s.kind in NO_JUDGEMENT_KINDS for s in spec.route):
            continue  # a step that waits yet needs no judgement: none exists today
        if spec.nudges is not None:
            problems.append((f"types.{key}.nudges.final", FINAL_AUTO_APPROVE_REFUSED))
        else:
            defaults_used = True
    if defaults_used:
        problems.append(("defaults.nudges.final", FINAL_AUTO_APPROVE_REFUSED))
    return problems


def _behaviour_problems(base: str, spec: RequestTypeSpec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for fid, types in REQUIRED_FIELDS[spec.behaviour].items():
        field = spec.field(fid)
        if field is None or field.type not in types:
            problems.append((f"{base}.fields", f"a {spec.behaviour} type needs a field {fid!r} of type "
                             f"{' or '.join(types)}"))
    if spec.behaviour == "leave":
        unit = spec.field("unit")
        if unit is not None and unit.options and not {o.value for o in unit.options} <= LEAVE_UNITS:
            problems.append((f"{base}.fields", f"leave 'unit' options must be among {sorted(LEAVE_UNITS)}"))
    if spec.behaviour == "expense":
        items = spec.field("items")
        columns = {f.id: f.type for f in (items.fields or [])} if items else {}
        for fid, types in REQUIRED_ITEM_FIELDS.items():
            if items is not None and columns.get(fid) not in types:
                problems.append((f"{base}.fields.items", f"expense items need a column {fid!r} of type "
                                 f"{' or '.join(types)}"))
    return problems


def parse_policy(data: Any, source: str = "workflows.yaml") -> Policy:
    """Validate already-loaded YAML data; raise PolicyError naming `source` and each path."""
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError([
            f"{source}: {format_loc(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        ]) from None
    problems = _semantic_problems(policy)
    if problems:
        raise PolicyError([f"{source}: {path}: {msg}" for path, msg in problems])
    return policy


def _parsed(text: str) -> Any:
    """libyaml's parser where PyYAML has it (the shipped file in 8 ms instead of 150, a tenth of the server's
    start); a file it refuses is read again by the pure-Python one, whose error says more (which character)."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # noqa: S506 (CSafeLoader is the safe loader)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def load_policy(path: Path | str) -> Policy:
    """Read and validate workflows.yaml. Errors name the file, the place and what was expected."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([f"{path}: file not found"]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    try:
        data = _parsed(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([f"{path}{where}: invalid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise PolicyError([f"{path}: expected a mapping with 'types' at the top level"])
    return parse_policy(data, str(path))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of workflows.yaml, for editors (yaml-language-server)."""
    schema = Policy.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "madoguchi workflows.yaml"
    _pin_decimal_strings(schema)
    return schema


# A decimal written as a string ("0.5"). Pydantic <= 2.13 puts its own pattern on such strings, 2.14 none: the
# schema names one pattern itself, so the shipped file is the same whichever pydantic built it.
DECIMAL_STRING = {"pattern": r"^[+-]?(\d+\.?\d*|\.\d+)$", "type": "string"}


def _pin_decimal_strings(node: Any) -> None:
    if isinstance(node, dict):
        alternatives = node.get("anyOf")
        if isinstance(alternatives, list) and any(a.get("type") == "number" for a in alternatives
                                                   if isinstance(a, dict)):
            node["anyOf"] = [dict(DECIMAL_STRING) if isinstance(a, dict) and a.get("type") == "string" else a
                             for a in alternatives]
        for value in node.values():
            _pin_decimal_strings(value)
    elif isinstance(node, list):
        for item in node:
            _pin_decimal_strings(item)


def with_timezone(policy: Policy, timezone: str | None) -> Policy:
    """The policy with the company's zone replaced by an operator's MADOGUCHI_TIMEZONE (validated the same way)."""
    if not timezone:
        return policy
    try:
        company = Company.model_validate({**policy.company.model_dump(by_alias=True), "timezone": timezone})
    except ValidationError:
        raise PolicyError([f"MADOGUCHI_TIMEZONE: unknown time zone {timezone!r}; expected an IANA name such as "
                           "Asia/Tokyo"]) from None
    return policy.model_copy(update={"company": company})
